/**
 * Server processes for the HTTP benchmark: the Tally server started as `npm start` starts it (the CLI's
 * `serve`, here through bin/tally.js), and a bare `node:http` hello-world, each in its own process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { appendFileSync } from "node:fs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

export const ADMIN_KEY = "bench-operator-key-0123456789abcdef";

export interface ServerProcess {
  name: string;
  base: string;
  child: ChildProcess;
  /** The last 20 kB of its stdout and stderr. */
  output(): string;
  /** SIGTERM (graceful: in-flight commits finish), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ServerProcess>();

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function track(name: string, child: ChildProcess, base: string): ServerProcess {
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  // For investigations: BENCH_SERVER_LOG=FILE appends everything the servers print (with --trace-gc, say).
  const log = process.env.BENCH_SERVER_LOG;
  if (log) {
    const tee = (d: Buffer) => appendFileSync(log, d);
    child.stdout?.on("data", tee);
    child.stderr?.on("data", tee);
  }
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const p: ServerProcess = {
    name,
    base,
    child,
    output: () => out,
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await closed;
        clearTimeout(t);
      }
      live.delete(p);
    },
  };
  live.add(p);
  return p;
}

/** `tally serve` on `databaseUrl` (migrations applied at start), LOG_LEVEL=warn unless told. */
export async function startTally(
  name: string,
  databaseUrl: string,
  opts: { logLevel?: string; nodeArgs?: string[] } = {},
): Promise<ServerProcess> {
  const port = await freePort();
  // As `npm start` runs it (package.json), young-generation size included.
  const child = spawn(
    process.execPath,
    [...SERVER_NODE_ARGS, ...(opts.nodeArgs ?? []), "bin/tally.js", "serve"],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PORT: String(port),
        HOST: "127.0.0.1",
        TALLY_ADMIN_KEY: ADMIN_KEY,
        LOG_LEVEL: opts.logLevel ?? "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const p = track(name, child, `http://127.0.0.1:${port}`);
  await waitReady(p, "/readyz");
  return p;
}

/**
 * Node options of `npm start`: a 32 MB young generation (V8's default is 16 MB) halves the scavenges a busy
 * server runs; measured +8–20% single-event requests/s in back-to-back runs (docs/performance.md).
 */
export const SERVER_NODE_ARGS = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [
  "--max-semi-space-size=32",
];

const HELLO = `
const http = require("node:http");
const body = JSON.stringify({ hello: "world" });
http
  .createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

/** The framework's own ceiling: Fastify with one route answering the same small JSON body, nothing else. */
const FASTIFY_HELLO = `
import Fastify from "fastify";
const app = Fastify({ logger: false });
app.get("/", async () => ({ hello: "world" }));
await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.on("SIGTERM", () => process.exit(0));
`;

export function startFastifyHello(): Promise<ServerProcess> {
  return startScript("Fastify hello-world", ["--input-type=module", "-e", FASTIFY_HELLO]);
}

/** The baseline: a bare node:http server answering every request with a small JSON body. */
export function startHello(): Promise<ServerProcess> {
  return startScript("node:http hello-world", ["-e", HELLO]);
}

/** A one-file server run by node with these arguments, on a free port, ready when `GET /` answers. */
async function startScript(name: string, nodeArgs: string[]): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, nodeArgs, {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p = track(name, child, `http://127.0.0.1:${port}`);
  await waitReady(p, "/");
  return p;
}

async function waitReady(p: ServerProcess, path: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output()}`);
    try {
      const res = await fetch(p.base + path, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await p.stop(0);
  throw new Error(`${p.name} not ready after ${timeoutMs} ms:\n${p.output()}`);
}

/** Stops every server still running (on errors and Ctrl-C). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(5_000)));
}
