/**
 * Two real server processes (`node bin/tally.js serve`) on one PostgreSQL database take usage for the same
 * accounts at once, including the same event ids sent to both: exactly the usages the grants cover succeed,
 * each event is applied once, every balance ends at exactly zero and the audit is clean.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, type TestDatabase } from "../support/stores.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ADMIN_KEY = "multi-server-operator-key-0123456789";

/** 4 accounts, each granted exactly enough for 60 `video_download` events (6 credits each). */
const ACCOUNTS = 4;
const COVERED_PER_ACCOUNT = 60;
const PRICE = 6;
/** Three times as many distinct events as the grants cover. */
const EVENTS_PER_ACCOUNT = COVERED_PER_ACCOUNT * 3;
/** Requests in flight per server. */
const IN_FLIGHT = 24;

interface ServerProcess {
  child: ChildProcess;
  base: string;
  output: string;
  exited: Promise<void>;
}

const servers: ServerProcess[] = [];
let db: TestDatabase | undefined;

/** A port nobody listens on right now (the server binds it a moment later). */
async function freePort(): Promise<number> {
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

function startServer(databaseUrl: string, port: number): ServerProcess {
  const child = spawn(process.execPath, ["bin/tally.js", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      TALLY_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p: ServerProcess = {
    child,
    base: `http://127.0.0.1:${port}`,
    output: "",
    exited: new Promise((resolve) => child.once("close", () => resolve())),
  };
  const keep = (d: Buffer) => {
    if (p.output.length < 20_000) p.output += d.toString();
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  servers.push(p);
  return p;
}

/** Polls /readyz until the server answers (bounded); fails with its output if it exits or never does. */
async function waitReady(p: ServerProcess, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(`server ${p.base} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output}`);
    try {
      const res = await fetch(`${p.base}/readyz`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server ${p.base} not ready after ${timeoutMs} ms:\n${p.output}`);
}

async function stopServers(): Promise<void> {
  await Promise.all(
    servers.map(async (p) => {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
      await p.exited;
    }),
  );
}

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** One operator request; a 429 is retried after its Retry-After (bounded), anything else is returned. */
async function call(base: string, method: string, path: string, body?: unknown): Promise<Answer> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    if (res.status === 429 && attempt < 20) {
      const wait = Math.min(1_000, Number(res.headers.get("retry-after") ?? "0.1") * 1000 || 100);
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  }
}

/** Runs the jobs with at most `limit` in flight. */
async function pool(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}

/** Deterministic shuffle (mulberry32), so a failure can be rerun with the same order. */
function shuffle<T>(xs: T[], seed: number): T[] {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

type Outcome = "created" | "replay" | "insufficient";

describe("two server processes on one PostgreSQL database", () => {
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    db = await freshDatabase("postgres");
    const [portA, portB] = [await freePort(), await freePort()];
    // Started together: both apply migrations to the same empty database at once.
    a = startServer(db.url, portA);
    b = startServer(db.url, portB === portA ? portA + 1 : portB);
    await Promise.all([waitReady(a), waitReady(b)]);
  });

  afterAll(async () => {
    await stopServers();
    await db?.destroy();
  });

  it("never overdraw: exactly the covered usages succeed, duplicates apply once, balances end at zero", async () => {
    const run = Date.now().toString(36);
    const accounts: string[] = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      const id = `acct_ms_${run}_${i}`;
      const created = await call(i % 2 ? b.base : a.base, "POST", "/v1/accounts", { id });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const grant = await call(i % 2 ? a.base : b.base, "POST", `/v1/accounts/${id}/grants`, {
        kind: "purchase",
        amount: String(PRICE * COVERED_PER_ACCOUNT),
      });
      expect(grant.status, JSON.stringify(grant.body)).toBe(201);
      accounts.push(id);
    }

    // Distinct events, interleaved across accounts so every account is contended from the start.
    type UsageEvent = { id: string; account_id: string; service: string; quantity: number };
    const events: UsageEvent[] = [];
    for (let n = 0; n < EVENTS_PER_ACCOUNT; n++)
      for (const account of accounts)
        events.push({
          id: `ev_${account}_${n}`,
          account_id: account,
          service: "video_download",
          quantity: 1,
        });
    const eventAccount = new Map(events.map((e) => [e.id, e.account_id]));

    // Every answer an event id got, from whichever server and route.
    const outcomes = new Map<string, Outcome[]>();
    const unexpected: string[] = [];
    const record = (id: string, o: Outcome) => outcomes.set(id, [...(outcomes.get(id) ?? []), o]);
    let sends = 0;

    const single = (server: ServerProcess, e: UsageEvent) => async () => {
      sends++;
      const r = await call(server.base, "POST", "/v1/usage", e);
      if (r.status === 201 && r.body.replay === false) record(e.id, "created");
      else if (r.status === 200 && r.body.replay === true) record(e.id, "replay");
      else if (r.status === 402 && r.body.error?.code === "insufficient_credits")
        record(e.id, "insufficient");
      else unexpected.push(`${server.base} ${e.id}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    };
    const batch = (server: ServerProcess, evs: UsageEvent[]) => async () => {
      sends += evs.length;
      const r = await call(server.base, "POST", "/v1/usage/batch", { events: evs });
      if (r.status !== 200 || !Array.isArray(r.body.results) || r.body.results.length !== evs.length) {
        unexpected.push(`${server.base} batch: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        return;
      }
      r.body.results.forEach(
        (
          x: { id: string; ok: boolean; usage?: { replay: boolean }; error?: { code: string } },
          i: number,
        ) => {
          if (x.id !== evs[i]!.id) unexpected.push(`batch result ${i} is for ${x.id}, not ${evs[i]!.id}`);
          else if (x.ok && x.usage?.replay === false) record(x.id, "created");
          else if (x.ok && x.usage?.replay === true) record(x.id, "replay");
          else if (!x.ok && x.error?.code === "insufficient_credits") record(x.id, "insufficient");
          else unexpected.push(`${server.base} batch ${x.id}: ${JSON.stringify(x).slice(0, 300)}`);
        },
      );
    };

    // Jobs: events alternate between the servers; every 4th event also goes to the other server (a
    // duplicate raced against the first send); events 8k+5 go in batches of 10 (alternating servers), and
    // some of those are sent as single events to the other server as well.
    const jobs: (() => Promise<void>)[] = [];
    const batched: UsageEvent[] = [];
    events.forEach((e, i) => {
      const mine = i % 2 ? b : a;
      const other = i % 2 ? a : b;
      if (i % 8 === 5) {
        batched.push(e);
        if (i % 3 === 0) jobs.push(single(other, e));
      } else {
        jobs.push(single(mine, e));
        if (i % 4 === 0) jobs.push(single(other, e));
      }
    });
    for (let i = 0; i < batched.length; i += 10)
      jobs.push(batch((i / 10) % 2 ? b : a, batched.slice(i, i + 10)));
    shuffle(jobs, 20261121);

    // Both servers at once: the shuffled jobs, up to IN_FLIGHT per server in flight.
    await pool(jobs, IN_FLIGHT * 2);

    expect(unexpected, unexpected.slice(0, 10).join("\n")).toEqual([]);
    expect(sends).toBeGreaterThan(events.length);
    expect(outcomes.size).toBe(events.length);

    // Each event id: applied exactly once (one `created`, any other answer a replay), or refused everywhere.
    const succeededPerAccount = new Map<string, number>(accounts.map((id) => [id, 0]));
    let duplicatesSent = 0;
    for (const [id, got] of outcomes) {
      if (got.length > 1) duplicatesSent++;
      const created = got.filter((o) => o === "created").length;
      const refused = got.filter((o) => o === "insufficient").length;
      if (refused > 0) expect(got, id).toEqual(got.map(() => "insufficient"));
      else {
        expect(created, `${id}: ${got.join(", ")}`).toBe(1);
        const acct = eventAccount.get(id)!;
        succeededPerAccount.set(acct, succeededPerAccount.get(acct)! + 1);
      }
    }
    expect(duplicatesSent).toBeGreaterThan(100);
    // Exactly N succeed: every account's grant covers exactly COVERED_PER_ACCOUNT events.
    expect([...succeededPerAccount.values()]).toEqual(accounts.map(() => COVERED_PER_ACCOUNT));

    // Both servers see the same state: nothing left, nothing overdrawn, one usage row per success.
    for (const id of accounts) {
      for (const s of [a, b]) {
        const bal = await call(s.base, "GET", `/v1/accounts/${id}/balance`);
        expect(bal.status).toBe(200);
        expect(bal.body, `${s.base} ${id}`).toMatchObject({ available: "0", total: "0", overage: "0" });
      }
      const usage = await call(a.base, "GET", `/v1/accounts/${id}/usage?limit=1000`);
      expect(usage.status).toBe(200);
      expect(usage.body.data).toHaveLength(COVERED_PER_ACCOUNT);
      expect(new Set(usage.body.data.map((u: { id: string }) => u.id)).size).toBe(COVERED_PER_ACCOUNT);
    }
    const audit = await call(b.base, "GET", "/v1/audit");
    expect(audit.status).toBe(200);
    expect(audit.body.ok, JSON.stringify(audit.body.discrepancies)).toBe(true);
    expect(audit.body.counts.usages).toBe(ACCOUNTS * COVERED_PER_ACCOUNT);

    // Neither server fell over.
    for (const s of [a, b]) expect(s.child.exitCode, s.output).toBeNull();
  });
});
