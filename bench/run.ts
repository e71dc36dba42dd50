/**
 * `npm run bench`: engine-level debits per second on SQLite and PostgreSQL, beside the raw insert ceiling
 * of each store measured in the same run; every engine run is verified (audit, usage count, consumed total).
 * Writes the results section of docs/performance.md.
 *
 *   npm run bench                       # everything (about 2–3 minutes on 2 cores)
 *   npm run bench -- --quick            # small counts, for a smoke test
 *   npm run bench -- --only sqlite      # one store (sqlite | postgres)
 *   npm run bench -- --no-doc           # do not touch docs/performance.md
 *   npm run bench -- --no-http          # the engine part only
 *   npm run bench -- --http-only        # the HTTP part only (same as `npm run bench:http`, see bench/http.ts)
 *
 * PostgreSQL: creates its own databases on TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
 * and drops them at the end. SQLite: files in a temp directory, removed at the end.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_TEST_DATABASE_URL, Scratch } from "./databases.ts";
import { runEngineScenario, type EngineScenario } from "./engine-load.ts";
import { describeMachine } from "./machine.ts";
import { rawPostgres, rawSqlite, type RawScenario } from "./raw.ts";
import {
  engineLabel,
  renderResults,
  writeReport,
  type BenchRun,
  type StoreName,
  type StoreRun,
} from "./report.ts";
import { elapsedSeconds, errorText, log } from "./util.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "no-doc": { type: "boolean", default: false },
    doc: { type: "string", default: "docs/performance.md" },
    "no-http": { type: "boolean", default: false },
    "http-only": { type: "boolean", default: false },
  },
});

const quick = args.quick;
const stores: StoreName[] = args.only ? [args.only as StoreName] : ["sqlite", "postgres"];
if (stores.some((s) => s !== "sqlite" && s !== "postgres")) {
  console.error(`--only takes sqlite or postgres, not ${args.only}`);
  process.exit(2);
}

// Bounds: each measurement stops at its count or its duration, whichever comes first.
const RAW_SECONDS = quick ? 1 : 3;
const ENGINE_SECONDS = quick ? 2 : 12;
const ENGINE_DEBITS = quick ? 20_000 : 200_000;
const ACCOUNTS = 1_000;

function rawScenarios(store: StoreName): RawScenario[] {
  const connections = store === "postgres" ? [1, 4] : [1];
  return [1, 1000].flatMap((rowsPerTxn) =>
    connections.map((c) => ({
      rowsPerTxn,
      connections: c,
      maxSeconds: RAW_SECONDS,
      maxRows: rowsPerTxn === 1 ? 50_000 : quick ? 100_000 : 2_000_000,
    })),
  );
}

function engineScenarios(store: StoreName): EngineScenario[] {
  const base = {
    accounts: ACCOUNTS,
    maxDebits: ENGINE_DEBITS,
    maxSeconds: ENGINE_SECONDS,
    inFlight: 4_000,
    batchSize: 1_000,
  };
  return [
    { ...base, mode: "concurrent", callers: 1 },
    // PostgreSQL commits several batches at once (one per connection), so it gets several callers.
    { ...base, mode: "batch", callers: store === "postgres" ? 4 : 1 },
  ];
}

const adminUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL;
const scratch = new Scratch(adminUrl);
let interrupted = false;
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log("interrupted: removing scratch databases…");
  void scratch.cleanup().finally(() => process.exit(130));
});

async function benchSqlite(): Promise<StoreRun> {
  const run: StoreRun = {
    store: "sqlite",
    settings: "journal_mode=WAL, synchronous=FULL",
    raw: [],
    engine: [],
  };
  for (const sc of rawScenarios("sqlite")) {
    const label = `sqlite raw ${sc.rowsPerTxn} rows/commit`;
    log(`${label}…`);
    try {
      const r = await rawSqlite(label, scratch.sqlitePath(`raw-${sc.rowsPerTxn}`), sc);
      log(`  ${label}: ${Math.round(r.rowsPerSecond).toLocaleString("en-US")} rows/s`);
      run.raw.push(r);
    } catch (err) {
      run.raw.push({ scenario: sc, error: errorText(err) });
    }
  }
  for (const sc of engineScenarios("sqlite")) {
    const label = `sqlite ${engineLabel(sc).replace(/`/g, "")}`;
    log(`${label}…`);
    try {
      run.engine.push(await runEngineScenario(label, scratch.sqlitePath(`engine-${sc.mode}`), sc));
    } catch (err) {
      log(`  ${label}: FAILED: ${errorText(err)}`);
      run.engine.push({ scenario: sc, error: errorText(err) });
    }
  }
  return run;
}

async function benchPostgres(): Promise<StoreRun> {
  const run: StoreRun = { store: "postgres", settings: "", raw: [], engine: [] };
  try {
    const [sync, fsync, method] = await Promise.all(
      ["synchronous_commit", "fsync", "wal_sync_method"].map((s) => scratch.setting(s)),
    );
    run.settings = `synchronous_commit=${sync}, fsync=${fsync}, wal_sync_method=${method}`;
  } catch (err) {
    run.error = `PostgreSQL not reachable at ${adminUrl}: ${errorText(err)}`;
    log(run.error);
    return run;
  }
  const rawUrl = await scratch.postgres("raw");
  try {
    for (const sc of rawScenarios("postgres")) {
      const label = `postgres raw ${sc.rowsPerTxn} rows/commit, ${sc.connections} conn`;
      log(`${label}…`);
      try {
        const r = await rawPostgres(label, rawUrl, sc);
        log(`  ${label}: ${Math.round(r.rowsPerSecond).toLocaleString("en-US")} rows/s`);
        run.raw.push(r);
      } catch (err) {
        run.raw.push({ scenario: sc, error: errorText(err) });
      }
    }
  } finally {
    await scratch.dropPostgres(rawUrl);
  }
  for (const sc of engineScenarios("postgres")) {
    const label = `postgres ${engineLabel(sc).replace(/`/g, "")}`;
    log(`${label}…`);
    const url = await scratch.postgres(`engine_${sc.mode}`);
    try {
      run.engine.push(await runEngineScenario(label, url, sc));
    } catch (err) {
      log(`  ${label}: FAILED: ${errorText(err)}`);
      run.engine.push({ scenario: sc, error: errorText(err) });
    } finally {
      await scratch.dropPostgres(url);
    }
  }
  return run;
}

async function main(): Promise<number> {
  let pgVersion = "not reachable";
  try {
    pgVersion = await scratch.serverVersion();
  } catch {
    // reported by benchPostgres
  }
  const machine = describeMachine(pgVersion);
  log(
    `Tally benchmark on ${machine.cpu} (${machine.cores} cores), Node ${machine.node}, SQLite ${machine.sqlite}, PostgreSQL ${pgVersion}`,
  );
  const results: StoreRun[] = [];
  try {
    for (const s of stores) results.push(s === "sqlite" ? await benchSqlite() : await benchPostgres());
  } finally {
    await scratch.cleanup();
  }
  const argv = process.argv.slice(2);
  const run: BenchRun = {
    command: `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
    machine,
    seconds: elapsedSeconds(),
    stores: results,
  };
  const text = renderResults(run);
  if (!args["no-doc"]) {
    writeReport(args.doc, text);
    log(`wrote ${args.doc}`);
  }
  console.log(`\n${text}\n`);
  const failed = results.flatMap((s) => s.engine).some((e) => "check" in e && !e.check.ok);
  if (failed) console.error("VERIFICATION FAILED: see the Verified column");
  return failed ? 1 : 0;
}

/** The HTTP benchmark (bench/http.ts) in a process of its own, so its load generator starts on a fresh heap. */
async function runHttp(): Promise<number> {
  const argv = process.argv.slice(2);
  const pass = [
    ...(quick ? ["--quick"] : []),
    ...(args.only ? ["--only", args.only] : []),
    ...(args["no-doc"] ? ["--no-doc"] : []),
    "--doc",
    args.doc,
  ];
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("./http.ts", import.meta.url)), ...pass],
    {
      stdio: "inherit",
      env: {
        ...process.env,
        TALLY_BENCH_COMMAND: `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
      },
    },
  );
  return new Promise((resolve) => child.once("close", (code) => resolve(code ?? 1)));
}

let engineCode = 0;
if (args["http-only"]) await scratch.cleanup();
else engineCode = await main();
const httpCode = args["no-http"] ? 0 : await runHttp();
process.exitCode = engineCode || httpCode;
