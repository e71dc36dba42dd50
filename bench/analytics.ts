/**
 * Analytics benchmark: one account with 1,000,000 usage events spread over a year (every hour), recorded
 * through the engine (so the hourly rollup is maintained as in production), then a year of analytics
 * (daily series, by service, period figures, trend, forecast) read from the rollup, beside the same daily
 * and by-service figures computed from the raw usages in the same run. Results (and the check that both
 * give the same numbers) go to docs/performance.md between the analytics-bench markers.
 *
 *   npm run bench:analytics                       # both stores, 1,000,000 events
 *   npm run bench:analytics -- --events 100000 --stores sqlite
 */
import { readFileSync, writeFileSync } from "node:fs";
import { AnalyticsService } from "../src/analytics/service.ts";
import { DAY_MS, HOUR_MS } from "../src/domain/analytics.ts";
import { ManualClock } from "../src/domain/clock.ts";
import { sqlFor } from "../src/events/sql.ts";
import { Engine } from "../src/ledger/engine.ts";
import type { DebitInput } from "../src/ledger/types.ts";
import { openStore } from "../src/store/open.ts";
import { DEFAULT_TEST_DATABASE_URL, Scratch } from "./databases.ts";
import { describeMachine } from "./machine.ts";

const START = "<!-- analytics-bench:start -->";
const END = "<!-- analytics-bench:end -->";
const SERVICES: [string, bigint][] = [
  ["transcription", 55_000n],
  ["translation", 27_500n],
  ["voice_cloning_generation", 5_500n],
  ["music_generation", 88_000n],
  ["llm", 1_200n],
];
const YEAR_START = Date.UTC(2031, 0, 1);
const HOURS = 365 * 24;
const REPEATS = 7;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

interface StoreResult {
  store: string;
  events: number;
  load_s: number;
  load_events_per_s: number;
  rollup_rows: number;
  rollup_ms: number;
  raw_ms: number;
  ratio: number;
  same_numbers: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function runStore(kind: "sqlite" | "postgres", url: string, events: number): Promise<StoreResult> {
  const store = await openStore(url);
  const clock = new ManualClock(YEAR_START);
  const engine = new Engine(store, { clock });
  const { account } = await engine.createAccount({ id: `acct_bench_${kind}` });
  await engine.grant({ account_id: account.id, kind: "purchase", amount: 100_000_000n * 1_000_000n });
  const perHour = Math.ceil(events / HOURS);
  let made = 0;
  let rnd = 12345;
  const next = () => (rnd = (rnd * 1103515245 + 12345) % 2147483648);
  const t0 = performance.now();
  for (let h = 0; h < HOURS && made < events; h++) {
    clock.set(YEAR_START + h * HOUR_MS + (next() % 3_000_000));
    const batch: DebitInput[] = [];
    for (let i = 0; i < perHour && made < events; i++, made++) {
      const [service, unit] = SERVICES[next() % SERVICES.length]!;
      const qty = 1 + (next() % 120);
      batch.push({
        id: `u${made}`,
        account_id: account.id,
        amount: unit * BigInt(qty),
        service,
        quantity: String(qty),
      });
    }
    const r = await engine.debitBatch(batch);
    if (r.some((x) => !x.ok)) throw new Error(`debit failed at hour ${h}`);
    // A refund now and then, so the rollup's refund path is part of the figures.
    if (h % 97 === 0) await engine.refund({ usage_id: batch[0]!.id, amount: batch[0]!.amount / 2n });
  }
  const loadS = (performance.now() - t0) / 1000;
  const end = YEAR_START + HOURS * HOUR_MS;
  clock.set(end - 1);
  const analytics = new AnalyticsService(engine);
  const sql = sqlFor(store);

  const viaRollup = () => analytics.account(account.id, { from: YEAR_START, to: end });
  // Baseline: the same daily series and by-service figures from the raw usages.
  const viaRaw = async () => {
    const rows = await sql.all(
      `SELECT recorded_at / ${DAY_MS} AS day, service, SUM(cost - refunded) AS credits, COUNT(*) AS events,
         SUM(CAST(quantity AS REAL)) AS quantity
       FROM usages WHERE account_id = ? AND recorded_at >= ? AND recorded_at < ? GROUP BY recorded_at / ${DAY_MS}, service`,
      [account.id, YEAR_START, end],
    );
    const daily = new Map<number, bigint>();
    const byService = new Map<string, { credits: bigint; events: number }>();
    for (const r of rows) {
      const day = Number(r.day) * DAY_MS;
      const credits = BigInt(String(r.credits));
      daily.set(day, (daily.get(day) ?? 0n) + credits);
      const s = byService.get(String(r.service)) ?? { credits: 0n, events: 0 };
      s.credits += credits;
      s.events += Number(r.events);
      byService.set(String(r.service), s);
    }
    return { daily, byService };
  };

  // Warm both, then alternate so neither gets a cache the other lacks.
  const a = await viaRollup();
  const raw = await viaRaw();
  const same =
    a.daily.every((d) => (raw.daily.get(d.at) ?? 0n) === d.credits) &&
    a.by_service.every((s) => {
      const r = raw.byService.get(s.service);
      return r !== undefined && r.credits === s.credits && r.events === s.events;
    }) &&
    a.by_service.reduce((n, s) => n + s.events, 0) === events;
  const rollupTimes: number[] = [];
  const rawTimes: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    rollupTimes.push(await time(viaRollup));
    rawTimes.push(await time(viaRaw));
  }
  const rollupRows = Number(
    (await sql.one("SELECT COUNT(*) AS n FROM usage_hourly WHERE account_id = ?", [account.id]))?.n,
  );
  await engine.close();
  const rollupMs = median(rollupTimes);
  const rawMs = median(rawTimes);
  return {
    store: kind,
    events,
    load_s: loadS,
    load_events_per_s: events / loadS,
    rollup_rows: rollupRows,
    rollup_ms: rollupMs,
    raw_ms: rawMs,
    ratio: rawMs / rollupMs,
    same_numbers: same,
  };
}

async function main() {
  const events = Number(arg("events", "1000000"));
  const stores = arg("stores", "sqlite,postgres").split(",") as ("sqlite" | "postgres")[];
  const scratch = new Scratch(process.env.TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL);
  process.once("SIGINT", () => void scratch.cleanup().then(() => process.exit(130)));
  const results: StoreResult[] = [];
  let pgVersion = "not run";
  try {
    for (const kind of stores) {
      const url = kind === "sqlite" ? scratch.sqlitePath("analytics") : await scratch.postgres("analytics");
      if (kind === "postgres") pgVersion = await scratch.serverVersion();
      console.log(`${kind}: recording ${events.toLocaleString("en")} usage events over a year…`);
      const r = await runStore(kind, url, events);
      console.log(r);
      results.push(r);
      if (kind === "postgres") await scratch.dropPostgres(url);
    }
  } finally {
    await scratch.cleanup();
  }
  const m = describeMachine(pgVersion);
  const lines = [
    START,
    "",
    `Run ${m.date} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, SQLite ${m.sqlite}, ` +
      `PostgreSQL ${m.postgres}, temp files on ${m.disk}; load average at start ${m.loadAverage.toFixed(2)}.`,
    `Command: \`npm run bench:analytics -- --events ${events} --stores ${stores.join(",")}\`.`,
    "",
    "One account, usage events every hour of a year (5 services), recorded through the engine (the hourly rollup is",
    "written in each usage's transaction), with a refund every 97 hours. Query: a year of account analytics",
    "(`AnalyticsService.account` with from/to = the year: daily series, by service, period, trend, rate, forecast).",
    "Baseline, same run: the daily series and by-service figures from the raw `usages` rows. Median of 7 runs each.",
    "",
    "| store | events | recorded in | events/s (recording) | rollup rows | year of analytics (rollup) | same from raw usages | ratio | same numbers |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...results.map(
      (r) =>
        `| ${r.store} | ${r.events.toLocaleString("en")} | ${r.load_s.toFixed(0)} s | ${Math.round(r.load_events_per_s).toLocaleString("en")} | ` +
        `${r.rollup_rows.toLocaleString("en")} | ${r.rollup_ms.toFixed(1)} ms | ${r.raw_ms.toFixed(1)} ms | ` +
        `${r.ratio.toFixed(0)}x faster | ${r.same_numbers ? "yes" : "NO"} |`,
    ),
    "",
    END,
  ];
  const path = new URL("../docs/performance.md", import.meta.url);
  const doc = readFileSync(path, "utf8");
  const block = lines.join("\n");
  const i = doc.indexOf(START);
  const j = doc.indexOf(END);
  const out =
    i >= 0 && j > i
      ? doc.slice(0, i) + block + doc.slice(j + END.length)
      : `${doc.trimEnd()}\n\n## Analytics (a year of usage, one account)\n\n${block}\n`;
  writeFileSync(path, out);
  console.log(block);
  if (results.some((r) => !r.same_numbers)) process.exitCode = 1;
}

await main();
