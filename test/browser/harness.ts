import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ManualClock, systemClock } from "../../src/domain/clock.ts";
import { buildApp } from "../../src/http/app.ts";
import { OperatorAuth } from "../../src/http/auth.ts";
import { DASHBOARD_DIR } from "../../src/http/static.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { openStore } from "../../src/store/open.ts";

export const OPERATOR_KEY = "browser-test-operator-key-0123456789";
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SCREENSHOTS = join(process.cwd(), "test-results", "screenshots");

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface DashboardServer {
  base: string;
  engine: Engine;
  /** fetch JSON with a bearer credential. */
  call(method: string, path: string, secret: string, body?: unknown): Promise<{ status: number; body: Json }>;
  close(): Promise<void>;
}

/**
 * A real Tally server on a temporary SQLite file, serving the built dashboard, on an ephemeral port.
 * `seed` runs first on an engine whose clock is set by the test (to write history on past days).
 */
export type SeedCall = (method: string, path: string, body?: unknown) => Promise<Json>;

export async function startServer(
  seed?: (op: SeedCall, clock: ManualClock) => Promise<void>,
): Promise<DashboardServer> {
  if (!existsSync(join(DASHBOARD_DIR, "index.html")))
    throw new Error(`the dashboard is not built (${DASHBOARD_DIR}): run \`npm run build:web\` first`);
  const dir = mkdtempSync(join(tmpdir(), "tally-browser-"));
  const url = join(dir, "tally.db");
  if (seed) {
    const store = await openStore(url);
    const clock = new ManualClock(Date.now());
    const engine = new Engine(store, { clock });
    const { auth } = await OperatorAuth.setup(store, OPERATOR_KEY);
    const app = await buildApp({ engine, operator: auth, logLevel: "silent", dashboard: false });
    const op: SeedCall = async (method, path, body) => {
      const res = await app.inject({
        method: method as "GET",
        url: path,
        headers: { authorization: `Bearer ${OPERATOR_KEY}` },
        ...(body !== undefined ? { payload: body as object } : {}),
      });
      if (res.statusCode >= 300) throw new Error(`seed ${method} ${path}: ${res.statusCode} ${res.body}`);
      return res.json();
    };
    await seed(op, clock);
    await app.close();
    await engine.close();
  }
  const store = await openStore(url);
  const engine = new Engine(store, { clock: systemClock });
  const { auth } = await OperatorAuth.setup(store, OPERATOR_KEY);
  const app = await buildApp({ engine, operator: auth, logLevel: "silent" });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  // The local checkout page's links use the server's public address, known only now (purchases, issue #4).
  (
    app as unknown as { billing?: { purchases?: { setPublicUrl(u: string): void } } }
  ).billing?.purchases?.setPublicUrl(base);
  return {
    base,
    engine,
    async call(method, path, secret, body) {
      const res = await fetch(base + path, {
        method,
        headers: {
          authorization: `Bearer ${secret}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async close() {
      await app.close();
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does it), or set CHROMIUM_PATH`,
    );
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
}

export async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });
}
