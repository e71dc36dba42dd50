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
    // SQLite indexes a per-account tail once it passes this many rows (8,192 in production): small here,
    // so every SQLite test reads across both the indexed part and the tail (src/store/sqlite/account-index.ts).
    env: { TALLY_SQLITE_INDEX_TAIL: "5" },
  },
});
