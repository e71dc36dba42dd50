import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The dashboard is built into web/dist, which the Tally server serves at / (src/http/static.ts).
// In development, `npx vite web` proxies the APIs to a server on :8080.
const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 800 },
  server: {
    proxy: Object.fromEntries(
      ["/v1", "/api/v1", "/checkout", "/healthz"].map((p) => [p, "http://127.0.0.1:8080"]),
    ),
  },
});
