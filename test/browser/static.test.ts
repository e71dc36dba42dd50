import Fastify from "fastify";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { registerDashboard } from "../../src/http/static.ts";
import { useServer } from "../http/harness.ts";

// No browser here: how the server serves the dashboard, and how it behaves without a build.
describe("serving the dashboard", () => {
  const t = useServer("sqlite");
  // Bodies are always read, so no connection stays open when the server closes.
  const get = async (path: string) => {
    const res = await fetch(t.base + path);
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  it("serves index.html and hashed assets at / and leaves every API path alone", async () => {
    const index = await get("/");
    expect(index.status).toBe(200);
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = index.text;
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeTruthy();
    const js = await get(asset!);
    expect(js.status).toBe(200);
    expect(js.headers.get("cache-control")).toContain("immutable");

    for (const path of ["/healthz", "/openapi.json", "/metrics", "/docs/"])
      expect((await get(path)).status).toBe(200);
    expect((await t.op("GET", "/v1/accounts")).status).toBe(200);
    expect((await get("/api/v1/credits")).status).toBe(401);
    const missing = await get("/no/such/page");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text).error.code).toBe("not_found");
    // Paths outside web/dist are never read.
    expect((await get("/..%2Fpackage.json")).status).toBe(404);
  });

  it("starts without a build and says how to make one", async () => {
    const empty = mkdtempSync(join(tmpdir(), "tally-nodist-"));
    const app = Fastify({ logger: false });
    try {
      expect(await registerDashboard(app, empty)).toBe(false);
      const res = await app.inject({ method: "GET", url: "/" });
      expect(res.statusCode).toBe(503);
      expect(res.body).toContain("npm run build:web");
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
