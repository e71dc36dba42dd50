/**
 * `npm run bench:http` (also the second half of `npm run bench`): the Tally server over HTTP, measured with
 * autocannon beside a bare `node:http` hello-world measured with the same load generator in the same run.
 * Writes the HTTP section of docs/performance.md (between its own markers).
 *
 *   npm run bench:http                        # both stores, about 3 minutes
 *   npm run bench:http -- --quick             # 2-second measurements, for a smoke test
 *   npm run bench:http -- --only sqlite       # one store (sqlite | postgres)
 *   npm run bench:http -- --no-doc            # print the results, leave docs/performance.md alone
 *   npm run bench:http -- --seconds 10 --connections 100 --batch-connections 2
 *   npm run bench:http -- --steps usage,batch    # some of: fastify, estimate, usage, half, paced, idem, balance, batch
 *   npm run bench:http -- --only sqlite --no-doc --cpu-prof /tmp/prof   # V8 profile of the Tally server; then
 *   npx tsx bench/cpuprofile-summary.ts /tmp/prof/<the largest file>.cpuprofile
 *   npm run bench:http -- --only sqlite --no-doc --steps usage,paced --rate 3500   # half-rate lines at 3,500/s
 *   npm run bench:http -- --only sqlite --no-doc --steps paced --rate 5000 --timeline /tmp/paced
 *     # /tmp/paced-sqlite: every request of the paced usage line, its scheduled time (epoch ms) and latency
 *   BENCH_SERVER_NODE_ARGS="--max-semi-space-size=32 --trace-gc" BENCH_SERVER_LOG=/tmp/gc.log npm run bench:http …
 *     # the servers' Node flags (instead of npm start's), and everything they print appended to a file
 *
 * Every server is its own process, started as `npm start` starts it (`tally serve`, LOG_LEVEL=warn): one on
 * a fresh SQLite file in a temp directory, one on a fresh PostgreSQL database on TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres). Both are removed at the end, also on Ctrl-C.
 */
import autocannon from "autocannon";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_TEST_DATABASE_URL, Scratch } from "./databases.ts";
import {
  renderHttpResults,
  writeHttpReport,
  type HttpBenchRun,
  type Measured,
  type StoreHttpRun,
} from "./http-report.ts";
import {
  ADMIN_KEY,
  startFastifyHello,
  startHello,
  startTally,
  stopAll,
  type ServerProcess,
} from "./http-servers.ts";
import { paced, type PacedRequest, type PacedResult } from "./http-paced.ts";
import { describeMachine } from "./machine.ts";
import type { StoreName } from "./report.ts";
import { elapsedSeconds, errorText, fmtInt, log, seededRandom } from "./util.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "no-doc": { type: "boolean", default: false },
    doc: { type: "string", default: "docs/performance.md" },
    seconds: { type: "string" },
    connections: { type: "string", default: "100" },
    "batch-connections": { type: "string" },
    "cpu-prof": { type: "string" },
    /** Writes the paced usage line's every request as `scheduled_epoch_ms latency_ms` lines to FILE-<store>. */
    timeline: { type: "string" },
    /** The rate of the half-rate lines, instead of half of what the max line measured. */
    rate: { type: "string" },
    steps: { type: "string", default: "fastify,estimate,usage,half,paced,idem,balance,batch" },
  },
});

const quick = args.quick;
const stores: StoreName[] = args.only ? [args.only as StoreName] : ["sqlite", "postgres"];
if (stores.some((s) => s !== "sqlite" && s !== "postgres")) {
  console.error(`--only takes sqlite or postgres, not ${args.only}`);
  process.exit(2);
}
const SECONDS = Number(args.seconds ?? (quick ? 2 : 8));
const WARMUP_SECONDS = quick ? 1 : 3;
const CONNECTIONS = Number(args.connections);
/** Batch requests in flight: SQLite commits one batch at a time, PostgreSQL up to four (group-commit lanes). */
const BATCH_CONNECTIONS: Record<StoreName, number> = {
  sqlite: Number(args["batch-connections"] ?? 2),
  postgres: Number(args["batch-connections"] ?? 4),
};
const STEPS = new Set(args.steps.split(","));
const ACCOUNTS = 1_000;
const BATCH_EVENTS = 1_000;
/** video_download: 6 credits per request on the default rate card. */
const SERVICE = "video_download";
const GRANT = "1000000000";

const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };
const JSON_AUTH = { ...AUTH, "content-type": "application/json" };

const adminUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL;
const scratch = new Scratch(adminUrl);
let interrupted = false;
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log("interrupted: stopping servers, removing scratch databases…");
  void stopAll()
    .then(() => scratch.cleanup())
    .finally(() => process.exit(130));
});

/** One autocannon run, with a progress line about once a second. */
async function cannon(label: string, opts: autocannon.Options): Promise<autocannon.Result> {
  let n = 0;
  let last = 0;
  const timer = setInterval(() => {
    log(`  ${label}: ${fmtInt(n - last)} answers in the last second`);
    last = n;
  }, 1000);
  try {
    return await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon({ timeout: 30, ...opts }, (err: unknown, result) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(result),
      );
      instance.on("response", () => n++);
    });
  } finally {
    clearInterval(timer);
  }
}

function measured(
  label: string,
  route: string,
  r: autocannon.Result,
  extra: Partial<Measured> = {},
): Measured {
  const statusCodes = Object.fromEntries(
    Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]),
  );
  const m: Measured = {
    label,
    route,
    connections: r.connections,
    seconds: r.duration,
    requestsPerSecond: r["2xx"] / r.duration,
    latency: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes,
    ...extra,
  };
  log(
    `  ${label}: ${fmtInt(m.requestsPerSecond)} req/s` +
      (m.eventsPerSecond !== undefined ? `, ${fmtInt(m.eventsPerSecond)} events/s` : "") +
      `, p50 ${m.latency.p50} ms, p99 ${m.latency.p99} ms` +
      (m.non2xx + m.errors > 0 ? `, non-2xx ${m.non2xx}, errors ${m.errors}` : ""),
  );
  return m;
}

async function measureHello(): Promise<Measured> {
  const hello = await startHello();
  try {
    log("hello-world: warm-up…");
    await cannon("warm-up", { url: hello.base, connections: CONNECTIONS, duration: WARMUP_SECONDS });
    log(`hello-world GET /, ${CONNECTIONS} connections, ${SECONDS} s…`);
    const r = await cannon("hello-world", { url: hello.base, connections: CONNECTIONS, duration: SECONDS });
    return measured("node:http hello-world", "GET /", r);
  } finally {
    await hello.stop();
  }
}

/** Bare Fastify, same generator: what the framework alone costs over node:http on this machine. */
async function measureFastifyHello(): Promise<Measured> {
  const hello = await startFastifyHello();
  try {
    await cannon("warm-up", { url: hello.base, connections: CONNECTIONS, duration: WARMUP_SECONDS });
    log(`Fastify hello-world GET /, ${CONNECTIONS} connections, ${SECONDS} s…`);
    const r = await cannon("fastify", { url: hello.base, connections: CONNECTIONS, duration: SECONDS });
    return measured("Fastify hello-world (the framework alone)", "GET /", r);
  } finally {
    await hello.stop();
  }
}

/** A paced generator's result as a line of the table. */
function pacedLine(label: string, route: string, p: PacedResult, extra: Partial<Measured> = {}): Measured {
  return {
    label,
    route,
    connections: CONNECTIONS,
    rate: p.rate,
    seconds: p.seconds,
    requestsPerSecond: p.achieved,
    latency: { p50: p.latency.p50, p99: p.latency.p99, max: p.latency.max },
    non2xx: p.non2xx,
    errors: p.errors + (p.sent - p.answered),
    timeouts: p.sent - p.answered,
    statusCodes: {},
    paced: true,
    ...extra,
  };
}

/** A paced line's measurement: this run's length, warm-up and connections, at `rate` against `base`. */
function pacedRun(
  base: string,
  rate: number,
  request: () => PacedRequest,
  onAnswer?: (scheduledEpochMs: number, latencyMs: number) => void,
): Promise<PacedResult> {
  return paced({
    base,
    rate,
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    maxSockets: CONNECTIONS,
    request,
    ...(onAnswer ? { onAnswer } : {}),
  });
}

/**
 * The node:http hello-world under the paced generator at `rate`, while the Tally server waits idle: the
 * latency the generator, loopback and machine add by themselves (the floor of the paced Tally line).
 */
async function measurePacedHello(rate: number): Promise<Measured> {
  const hello = await startHello();
  try {
    log(`hello-world GET / at ${fmtInt(rate)} req/s, evenly paced (open loop), ${SECONDS} s…`);
    const p = await pacedRun(hello.base, rate, () => ({ method: "GET", path: "/", headers: {} }));
    log(`  paced hello-world: p50 ${p.latency.p50.toFixed(1)} ms, p99 ${p.latency.p99.toFixed(1)} ms`);
    return pacedLine("node:http hello-world, ½ max rate (evenly paced: the generator's floor)", "GET /", p, {
      floor: true,
    });
  } finally {
    await hello.stop();
  }
}

/** Group commits so far, from the server's Prometheus metrics. */
async function commitBatches(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const m = /^tally_commit_batches_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function op(server: ServerProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(server.base + path, {
    method,
    headers: body === undefined ? AUTH : JSON_AUTH,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(300_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function seed(server: ServerProcess, accounts: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < accounts.length) {
      const id = accounts[next++]!;
      await op(server, "POST", "/v1/accounts", { id });
      await op(server, "POST", `/v1/accounts/${id}/grants`, {
        id: `grant-${id}`,
        kind: "purchase",
        amount: GRANT,
      });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

async function benchStore(store: StoreName): Promise<StoreHttpRun> {
  const run: StoreHttpRun = { store, settings: "", measurements: [] };
  let url: string;
  if (store === "sqlite") {
    url = scratch.sqlitePath("http");
    run.settings = "journal_mode=WAL, synchronous=FULL";
  } else {
    try {
      const [sync, fsync] = await Promise.all(["synchronous_commit", "fsync"].map((s) => scratch.setting(s)));
      run.settings = `synchronous_commit=${sync}, fsync=${fsync}`;
      url = await scratch.postgres("http");
    } catch (err) {
      run.error = `PostgreSQL not reachable at ${adminUrl}: ${errorText(err)}`;
      log(run.error);
      return run;
    }
  }

  run.hello = await measureHello();
  if (STEPS.has("fastify")) {
    try {
      run.measurements.push(await measureFastifyHello());
    } catch (err) {
      run.measurements.push({ label: "Fastify hello-world", error: errorText(err) });
    }
  }

  log(`${store}: starting tally serve…`);
  const server = await startTally(`tally serve (${store})`, url, {
    nodeArgs: args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : [],
  });
  const step = async (name: string, label: string, fn: () => Promise<Measured>) => {
    if (!STEPS.has(name)) return;
    try {
      run.measurements.push(await fn());
    } catch (err) {
      log(`  ${label}: FAILED: ${errorText(err)}`);
      run.measurements.push({ label, error: errorText(err) });
    }
  };
  try {
    const accounts = Array.from({ length: ACCOUNTS }, (_, i) => `acct-${String(i).padStart(6, "0")}`);
    log(`${store}: ${fmtInt(ACCOUNTS)} accounts with one grant each…`);
    await seed(server, accounts);
    const random = seededRandom(store === "sqlite" ? 11 : 12);
    const account = () => accounts[Math.floor(random() * accounts.length)]!;
    const tag = Date.now().toString(36);
    let nextEvent = 0;
    /** Events the load generators built, and events the server acknowledged (201, or ok in a batch). */
    let built = 0;
    let acked = 0;
    const eventBody = () => {
      built++;
      return JSON.stringify({
        id: `ev-${tag}-${nextEvent++}`,
        account_id: account(),
        service: SERVICE,
        quantity: 1,
      });
    };
    const usageRequest: autocannon.Request = {
      method: "POST",
      path: "/v1/usage",
      headers: JSON_AUTH,
      setupRequest: (req) => ({ ...req, body: eventBody() }),
      onResponse: (status) => {
        if (status === 201) acked++;
      },
    };

    log(`${store}: warm-up, POST /v1/usage for ${WARMUP_SECONDS} s…`);
    await cannon("warm-up", {
      url: server.base,
      connections: CONNECTIONS,
      duration: WARMUP_SECONDS,
      requests: [usageRequest],
    });

    // (0) the same event priced but not recorded: auth, validation, pricing and the answer, no database.
    await step("estimate", "POST /v1/estimate", async () => {
      log(`${store}: POST /v1/estimate, ${CONNECTIONS} connections, ${SECONDS} s…`);
      const body = JSON.stringify({ service: SERVICE, quantity: 1 });
      const r = await cannon("estimate", {
        url: server.base,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [{ method: "POST", path: "/v1/estimate", headers: JSON_AUTH, body }],
      });
      return measured("the same event priced, nothing recorded", "POST /v1/estimate", r);
    });

    // (a) single-event durable usage, as fast as it goes.
    let max = 0;
    await step("usage", "POST /v1/usage, max", async () => {
      log(`${store}: POST /v1/usage, ${CONNECTIONS} connections, ${SECONDS} s…`);
      const b0 = await commitBatches(server);
      const a0 = acked;
      const r = await cannon("usage", {
        url: server.base,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [usageRequest],
      });
      const batches = (await commitBatches(server)) - b0;
      max = r["2xx"] / r.duration;
      return measured("single event, max rate", "POST /v1/usage", r, {
        commits: { batches, meanSize: (acked - a0) / batches },
      });
    });

    // (a') the same at half that rate: autocannon's overallRate, then evenly paced.
    if (args.rate) max = 2 * Number(args.rate);
    if (max > 2) {
      const half = Math.floor(max / 2);
      await step("half", "POST /v1/usage, half rate", async () => {
        log(`${store}: POST /v1/usage at ${fmtInt(half)} req/s (autocannon overallRate), ${SECONDS} s…`);
        const r = await cannon("usage, half rate", {
          url: server.base,
          connections: CONNECTIONS,
          duration: SECONDS,
          overallRate: half,
          // autocannon's correction assumes an interval of ceil(1 / rate) = 1 ms (seconds taken for ms).
          ignoreCoordinatedOmission: true,
          requests: [usageRequest],
        });
        return measured("single event, ½ max rate (autocannon `overallRate`)", "POST /v1/usage", r, {
          rate: half,
        });
      });
      await step("paced", "POST /v1/usage, half rate, paced", async () => {
        log(`${store}: POST /v1/usage at ${fmtInt(half)} req/s, evenly paced (open loop), ${SECONDS} s…`);
        const b0 = await commitBatches(server);
        const timeline: string[] = [];
        const p = await pacedRun(
          server.base,
          half,
          () => ({ method: "POST", path: "/v1/usage", headers: JSON_AUTH, body: eventBody() }),
          args.timeline ? (at, ms) => timeline.push(`${at.toFixed(1)} ${ms.toFixed(2)}`) : undefined,
        );
        if (args.timeline) writeFileSync(`${args.timeline}-${store}`, timeline.join("\n") + "\n");
        acked += p.ok;
        const batches = (await commitBatches(server)) - b0;
        const m = pacedLine("single event, ½ max rate (evenly paced, open loop)", "POST /v1/usage", p, {
          commits: { batches, meanSize: p.ok / batches },
        });
        log(
          `  paced: ${fmtInt(m.requestsPerSecond)} req/s, p50 ${m.latency.p50.toFixed(1)} ms, p99 ${m.latency.p99.toFixed(1)} ms, max ${m.latency.max.toFixed(0)} ms`,
        );
        return m;
      });
      await step("paced", "hello-world, half rate, paced", () => measurePacedHello(half));
      // (a'') the same rate, each request with its own Idempotency-Key (as API clients are told to send).
      await step("idem", "POST /v1/usage with Idempotency-Key, half rate, paced", async () => {
        log(
          `${store}: POST /v1/usage with Idempotency-Key at ${fmtInt(half)} req/s, evenly paced, ${SECONDS} s…`,
        );
        let k = 0;
        const p = await pacedRun(server.base, half, () => ({
          method: "POST",
          path: "/v1/usage",
          headers: { ...JSON_AUTH, "idempotency-key": `bench-idem-${k++}` },
          body: eventBody(),
        }));
        acked += p.ok;
        log(`  idempotent: p50 ${p.latency.p50.toFixed(1)} ms, p99 ${p.latency.p99.toFixed(1)} ms`);
        return pacedLine(
          "single event with `Idempotency-Key`, ½ max rate (evenly paced)",
          "POST /v1/usage",
          p,
          {
            idempotencyKey: true,
          },
        );
      });
    }

    // (b) balance reads.
    await step("balance", "GET balance", async () => {
      log(`${store}: GET /v1/accounts/:id/balance, ${CONNECTIONS} connections, ${SECONDS} s…`);
      const r = await cannon("balance", {
        url: server.base,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [
          {
            method: "GET",
            headers: AUTH,
            setupRequest: (req) => ({ ...req, path: `/v1/accounts/${account()}/balance` }),
          },
        ],
      });
      return measured("balance", "GET /v1/accounts/:id/balance", r);
    });

    // (c) batch ingestion, 1,000 events per request.
    await step("batch", "POST /v1/usage/batch", async () => {
      const conns = BATCH_CONNECTIONS[store];
      log(`${store}: POST /v1/usage/batch of ${fmtInt(BATCH_EVENTS)}, ${conns} connections, ${SECONDS} s…`);
      let okEvents = 0;
      let refused = 0;
      const b0 = await commitBatches(server);
      const r = await cannon("batch", {
        url: server.base,
        connections: conns,
        duration: SECONDS,
        requests: [
          {
            method: "POST",
            path: "/v1/usage/batch",
            headers: JSON_AUTH,
            setupRequest: (req) => {
              const events: string[] = [];
              for (let i = 0; i < BATCH_EVENTS; i++) events.push(eventBody());
              return { ...req, body: `{"events":[${events.join(",")}]}` };
            },
            onResponse: (status, body) => {
              if (status !== 200) return;
              const failed = body.split('"ok":false').length - 1;
              refused += failed;
              okEvents += BATCH_EVENTS - failed;
            },
          },
        ],
      });
      acked += okEvents;
      const batches = (await commitBatches(server)) - b0;
      return measured(`batch of ${fmtInt(BATCH_EVENTS)} events`, "POST /v1/usage/batch", r, {
        eventsPerSecond: okEvents / r.duration,
        refusedEvents: refused,
        commits: { batches, meanSize: okEvents / batches },
      });
    });

    // Verification: the audit is clean, and every acknowledged event is there (events still in flight
    // when a measurement stopped may have been committed too, so the count lies between the two).
    log(`${store}: audit…`);
    const t0 = performance.now();
    const audit = (await op(server, "GET", "/v1/audit")) as {
      ok: boolean;
      counts: { usages: number };
      discrepancies: unknown[];
    };
    const problems: string[] = [];
    if (!audit.ok) problems.push(`audit: ${JSON.stringify(audit.discrepancies).slice(0, 300)}`);
    const usages = audit.counts.usages;
    if (usages < acked || usages > built)
      problems.push(`${fmtInt(usages)} usages, expected between ${fmtInt(acked)} and ${fmtInt(built)}`);
    run.check = {
      ok: problems.length === 0,
      problems,
      usages,
      acked,
      built,
      auditSeconds: (performance.now() - t0) / 1000,
    };
    log(
      `  ${run.check.ok ? "verified" : "VERIFICATION FAILED"}: audit ${audit.ok ? "ok" : "NOT ok"}, ` +
        `${fmtInt(usages)} usages for ${fmtInt(acked)} acknowledged events` +
        (problems.length ? `; ${problems.join("; ")}` : ""),
    );
  } catch (err) {
    run.error = errorText(err);
    log(`${store}: FAILED: ${run.error}`);
  } finally {
    await server.stop();
    if (store === "postgres") await scratch.dropPostgres(url).catch(() => {});
  }
  return run;
}

async function main(): Promise<number> {
  let pgVersion = "not reachable";
  try {
    pgVersion = await scratch.serverVersion();
  } catch {
    // reported by benchStore
  }
  const machine = describeMachine(pgVersion);
  log(
    `Tally HTTP benchmark on ${machine.cpu} (${machine.cores} cores), Node ${machine.node}, autocannon, ` +
      `${SECONDS} s per measurement, ${CONNECTIONS} connections`,
  );
  const results: StoreHttpRun[] = [];
  try {
    for (const s of stores) results.push(await benchStore(s));
  } finally {
    await stopAll();
    await scratch.cleanup();
  }
  const argv = process.argv.slice(2);
  const run: HttpBenchRun = {
    command:
      process.env.TALLY_BENCH_COMMAND ?? `npm run bench:http${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
    machine,
    seconds: elapsedSeconds(),
    measurementSeconds: SECONDS,
    stores: results,
  };
  const text = renderHttpResults(run);
  if (!args["no-doc"]) {
    writeHttpReport(args.doc, text);
    log(`wrote ${args.doc}`);
  }
  console.log(`\n${text}\n`);
  const failed = results.some((s) => s.error || (s.check && !s.check.ok));
  if (failed) console.error("HTTP BENCHMARK FAILED: see the Verified line");
  return failed ? 1 : 0;
}

process.exitCode = await main();
