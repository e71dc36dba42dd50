import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    // Files share one PostgreSQL server; each file gets its own schema-free database via the store factory.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
