import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where `npm run build:web` (run by `npm install`/`npm ci` through `prepare`) puts the dashboard. */
export const DASHBOARD_DIR = fileURLToPath(new URL("../../web/dist/", import.meta.url));

// The dashboard talks only to this server; it loads nothing from elsewhere and is never framed.
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/**
 * Serves the dashboard (web/dist) at /. Only the files that exist at start get routes (no wildcard), so
 * /v1, /api/v1, /docs, /openapi.json, /metrics and /healthz, and the JSON 404 of unknown paths, are
 * untouched. Without a build the server still starts, and / says how to build the dashboard.
 */
export async function registerDashboard(app: FastifyInstance, dir = DASHBOARD_DIR): Promise<boolean> {
  if (!existsSync(`${dir}/index.html`)) {
    app.log.warn({ dir }, "the dashboard is not built: run `npm run build:web` (npm install runs it too)");
    app.get("/", { schema: { hide: true } }, async (_req, reply) => {
      reply.code(503).type("text/plain; charset=utf-8");
      return (
        "The Tally dashboard is not built on this server.\n" +
        "Build it with `npm run build:web` (npm install and npm ci run it), then restart the server.\n" +
        "The APIs work without it: see /docs.\n"
      );
    });
    return false;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/",
    wildcard: false,
    index: ["index.html"],
    // Hashed assets never change; index.html must be revalidated so a new build is picked up.
    cacheControl: false,
    setHeaders(res, path) {
      if (/[/\\]assets[/\\]/.test(path))
        res.setHeader("cache-control", "public, max-age=31536000, immutable");
      else res.setHeader("cache-control", "no-cache");
      if (path.endsWith(".html")) {
        res.setHeader("content-security-policy", CSP);
        res.setHeader("x-content-type-options", "nosniff");
        res.setHeader("referrer-policy", "same-origin");
      }
    },
  });
  return true;
}
