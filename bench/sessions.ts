/**
 * `npm run bench:sessions`: how many live sessions one Tally node sustains with an update every 10 s each,
 * and the latency of those updates, beside a same-run baseline: plain debits (POST /v1/usage) at the same
 * rate against the same server. Writes its section of docs/performance.md (between its own markers).
 *
 *   npm run bench:sessions                              # both stores, 10,000 sessions, 60 s of updates
 *   npm run bench:sessions -- --only sqlite --sessions 20000 --seconds 30
 *   npm run bench:sessions -- --quick --no-doc          # 500 sessions, 10 s: a smoke test
 *
 * The server is its own process, started as `npm start` starts it (`tally serve`, LOG_LEVEL=warn), on a
 * fresh SQLite file or a fresh PostgreSQL database on TEST_DATABASE_URL; both are removed at the end.
 * Updates are paced open-loop (request i at start + i / rate, latency measured from its scheduled time),
 * round-robin over the sessions, so each session is updated every `interval` seconds. Every refused or
 * failed update is counted, and the sessions still live at the end. The sessions' validity is 15 minutes
 * so that starting them (minutes, one at a time per connection) does not expire the first ones.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_TEST_DATABASE_URL, Scratch } from "./databases.ts";
import { paced, type PacedResult } from "./http-paced.ts";
import { ADMIN_KEY, startTally, stopAll, type ServerProcess } from "./http-servers.ts";
import { describeMachine, type Machine } from "./machine.ts";
import { elapsedSeconds, errorText, fmtInt, log } from "./util.ts";

type StoreName = "sqlite" | "postgres";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    sessions: { type: "string" },
    seconds: { type: "string" },
    interval: { type: "string", default: "10" },
    "no-doc": { type: "boolean", default: false },
    doc: { type: "string", default: "docs/performance.md" },
  },
});

const stores: StoreName[] = args.only ? [args.only as StoreName] : ["sqlite", "postgres"];
const SESSIONS = Number(args.sessions ?? (args.quick ? 500 : 10_000));
const SECONDS = Number(args.seconds ?? (args.quick ? 10 : 60));
const INTERVAL = Number(args.interval);
const RATE = SESSIONS / INTERVAL;
const ACCOUNTS = Math.max(1, Math.ceil(SESSIONS / 100));
const START_CONCURRENCY = 64;
/**
 * Validity of the benchmark's sessions: long enough that the first ones started are still live when the
 * last one starts (starting 10,000 takes minutes here); the updates then come every INTERVAL seconds.
 */
const VALIDITY_SECONDS = 900;
const MAX_SOCKETS = 256;
const MAX_SECONDS = args.quick ? 5 : 15;
const WORKERS = 64;

type Closed = Awaited<ReturnType<typeof closedLoop>>;

interface StoreRun {
  store: StoreName;
  started: number;
  startSeconds: number;
  maxUpdates: Closed;
  maxDebits: Closed;
  pacedRate: number;
  updates: PacedResult;
  debits: PacedResult;
  liveAtEnd: number;
  refused: number;
}

const auth = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(base: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(base + path, {
    method,
    headers: auth,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Closed loop: `workers` clients each send the next request as soon as the last is answered. */
async function closedLoop(
  seconds: number,
  workers: number,
  request: () => { path: string; body: string },
): Promise<{ perSecond: number; ok: number; failed: number; p50: number; p99: number }> {
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        const r = request();
        const started = performance.now();
        try {
          const res = await fetch(BASE + r.path, { method: "POST", headers: auth, body: r.body });
          await res.arrayBuffer();
          if (res.status < 300) ok++;
          else failed++;
        } catch {
          failed++;
        }
        latencies.push(performance.now() - started);
      }
    }),
  );
  const took = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)] ?? NaN;
  return { perSecond: ok / took, ok, failed, p50: pct(0.5), p99: pct(0.99) };
}

let BASE = "";

/** Runs `f` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}

async function runStore(store: StoreName, scratch: Scratch): Promise<StoreRun> {
  const url = store === "sqlite" ? scratch.sqlitePath("sessions") : await scratch.postgres("sessions");
  const server: ServerProcess = await startTally(`tally (${store})`, url);
  try {
    const base = server.base;
    BASE = base;
    await call(base, "PUT", "/v1/rate-card", {
      services: { ai_voice: { unit: "second", price: 6, per: 60, increment: 6, minimum: 30, fee: 0.5 } },
    });
    const accounts: string[] = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      const a = await call(base, "POST", "/v1/accounts", {});
      await call(base, "POST", `/v1/accounts/${a.id}/grants`, { kind: "purchase", amount: "100000000" });
      accounts.push(a.id);
    }
    log(`${store}: starting ${fmtInt(SESSIONS)} sessions over ${ACCOUNTS} accounts`);
    const ids: string[] = [];
    const t0 = performance.now();
    const answeredAt = new Date().toISOString();
    await pool(
      Array.from({ length: SESSIONS }, (_, i) => i),
      START_CONCURRENCY,
      async (i) => {
        const s = await call(base, "POST", "/v1/sessions", {
          account_id: accounts[i % ACCOUNTS],
          service: "ai_voice",
          answered_at: answeredAt,
          validity_seconds: VALIDITY_SECONDS,
          grant_seconds: 60,
        });
        ids.push(s.id);
      },
    );
    const startSeconds = (performance.now() - t0) / 1000;
    log(
      `${store}: started in ${startSeconds.toFixed(1)} s; updating each every ${INTERVAL} s for ${SECONDS} s`,
    );
    // 1. The most updates per second the node answers (closed loop), beside the most plain debits.
    let k = 0;
    const maxUpdates = await closedLoop(MAX_SECONDS, WORKERS, () => ({
      path: `/v1/sessions/${ids[k++ % ids.length]}/update`,
      body: "{}",
    }));
    log(`${store}: max updates ${maxUpdates.perSecond.toFixed(0)}/s (p99 ${maxUpdates.p99.toFixed(1)} ms)`);
    let d = 0;
    const maxDebits = await closedLoop(MAX_SECONDS, WORKERS, () => ({
      path: "/v1/usage",
      body: JSON.stringify({
        id: `bench-max-${d}`,
        account_id: accounts[d++ % ACCOUNTS],
        service: "ai_voice",
        quantity: 60,
      }),
    }));
    log(`${store}: max debits ${maxDebits.perSecond.toFixed(0)}/s (p99 ${maxDebits.p99.toFixed(1)} ms)`);
    // 2. Paced at the target rate (every session every INTERVAL s), or at 80% of the measured maximum
    //    when the node cannot take the target on this machine now.
    const pacedRate = Math.min(RATE, Math.max(1, Math.floor(maxUpdates.perSecond * 0.8)));
    log(`${store}: paced updates at ${pacedRate}/s for ${SECONDS} s`);
    const updates = await paced({
      base,
      rate: pacedRate,
      seconds: SECONDS,
      maxSockets: MAX_SOCKETS,
      request: () => ({
        method: "POST",
        path: `/v1/sessions/${ids[k++ % ids.length]}/update`,
        headers: auth,
        body: "{}",
      }),
    });
    log(
      `${store}: updates p50 ${updates.latency.p50.toFixed(1)} ms, p99 ${updates.latency.p99.toFixed(1)} ms`,
    );
    const debits = await paced({
      base,
      rate: pacedRate,
      seconds: Math.min(SECONDS, 20),
      maxSockets: MAX_SOCKETS,
      request: () => ({
        method: "POST",
        path: "/v1/usage",
        headers: auth,
        body: JSON.stringify({
          id: `bench-${d}`,
          account_id: accounts[d++ % ACCOUNTS],
          service: "ai_voice",
          quantity: 60,
        }),
      }),
    });
    log(`${store}: debits  p50 ${debits.latency.p50.toFixed(1)} ms, p99 ${debits.latency.p99.toFixed(1)} ms`);
    const limits = await Promise.all(
      accounts.slice(0, 5).map((a) => call(base, "GET", `/v1/accounts/${a}/session-limit`)),
    );
    const liveSample = limits.reduce((sum, l) => sum + (l.active as number), 0);
    const liveAtEnd = Math.round((liveSample / Math.min(5, ACCOUNTS)) * ACCOUNTS);
    return {
      store,
      started: ids.length,
      startSeconds,
      maxUpdates,
      maxDebits,
      pacedRate,
      updates,
      debits,
      liveAtEnd,
      refused: updates.non2xx + updates.errors,
    };
  } finally {
    await server.stop();
  }
}

function ms(n: number): string {
  return `${n.toFixed(1)} ms`;
}

function render(machine: Machine, runs: StoreRun[]): string {
  const lines = [
    "<!-- sessions-bench:start (generated by `npm run bench:sessions`; edit outside these markers) -->",
    "",
    `Measured ${machine.date} on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB} GiB), ${machine.os}, ` +
      `Node ${machine.node}, SQLite ${machine.sqlite}, PostgreSQL ${machine.postgres}; ${machine.disk}; ` +
      `load average at start ${machine.loadAverage.toFixed(2)}. The load generator runs on the same machine.`,
    "",
    `Command: \`npm run bench:sessions -- --sessions ${SESSIONS} --seconds ${SECONDS} --interval ${INTERVAL}\`` +
      ` — ${fmtInt(SESSIONS)} live sessions, each updated every ${INTERVAL} s (${fmtInt(RATE)} updates/s, paced` +
      ` open-loop, latency from each request's scheduled time), then plain debits at the same rate on the same` +
      ` server as the baseline. Sessions: validity ${VALIDITY_SECONDS} s, grant 60 s, debit interval 60 s,` +
      ` ${fmtInt(ACCOUNTS)} accounts of ${fmtInt(Math.ceil(SESSIONS / ACCOUNTS))} live calls each.`,
    "",
    "| store | live sessions (start time) | max updates/s (closed loop, 64 clients) | max debits/s (same) | update/debit | sessions sustained at one update / " +
      `${INTERVAL} s | paced rate | updates sent / ok / refused | update p50 / p90 / p99 / max | debit p50 / p99 (same rate) | p99 update/debit | live at end |`,
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of runs) {
    const u = r.updates.latency;
    const d = r.debits.latency;
    lines.push(
      `| ${r.store} | ${fmtInt(r.started)} (${r.startSeconds.toFixed(0)} s) | ${fmtInt(r.maxUpdates.perSecond)} (p99 ${ms(r.maxUpdates.p99)}) | ` +
        `${fmtInt(r.maxDebits.perSecond)} (p99 ${ms(r.maxDebits.p99)}) | ${(r.maxUpdates.perSecond / r.maxDebits.perSecond).toFixed(2)} | ` +
        `~${fmtInt(r.maxUpdates.perSecond * INTERVAL)} | ${fmtInt(r.pacedRate)}/s | ${fmtInt(r.updates.sent)} / ${fmtInt(r.updates.ok)} / ${fmtInt(r.refused)} | ` +
        `${ms(u.p50)} / ${ms(u.p90)} / ${ms(u.p99)} / ${ms(u.max)} | ${ms(d.p50)} / ${ms(d.p99)} | ` +
        `${(u.p99 / d.p99).toFixed(2)} | ~${fmtInt(r.liveAtEnd)} |`,
    );
  }
  lines.push("", "<!-- sessions-bench:end -->");
  return lines.join("\n");
}

function writeDoc(path: string, section: string): void {
  let doc = readFileSync(path, "utf8");
  const start = doc.indexOf("<!-- sessions-bench:start");
  const end = doc.indexOf("<!-- sessions-bench:end -->");
  if (start >= 0 && end > start)
    doc = doc.slice(0, start) + section + doc.slice(end + "<!-- sessions-bench:end -->".length);
  else doc = doc.trimEnd() + "\n\n## Live sessions\n\n" + section + "\n";
  writeFileSync(path, doc);
}

async function main(): Promise<void> {
  const scratch = new Scratch(process.env.TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL);
  const onSignal = () => {
    void stopAll().finally(() => scratch.cleanup().finally(() => process.exit(130)));
  };
  process.once("SIGINT", onSignal);
  try {
    const machine = describeMachine(await scratch.serverVersion());
    const runs: StoreRun[] = [];
    for (const s of stores) runs.push(await runStore(s, scratch));
    const section = render(machine, runs);
    console.log(section);
    if (!args["no-doc"]) writeDoc(args.doc, section);
    log(`done in ${elapsedSeconds().toFixed(0)} s`);
  } catch (err) {
    console.error(errorText(err));
    process.exitCode = 1;
  } finally {
    await stopAll();
    await scratch.cleanup();
  }
}

await main();
