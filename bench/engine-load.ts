import { formatCredits } from "../src/domain/amount.ts";
import { Engine } from "../src/ledger/engine.ts";
import type { DebitInput } from "../src/ledger/types.ts";
import { openStore } from "../src/store/open.ts";
import { instrumentStore, type PhaseTimes } from "./phases.ts";
import { errorText, fmtInt, log, seededRandom, withProgress } from "./util.ts";

/**
 * Engine-level load: debits through the public Engine API against a real store, with durable commits.
 * - `concurrent`: `inFlight` clients, each awaiting one `engine.debit` at a time (closed loop), so the
 *   group committer sees many concurrent single commands and batches them;
 * - `batch`: `callers` clients, each awaiting one `engine.debitBatch` of `batchSize` events at a time.
 * Every account has one grant far larger than the run can consume, so every debit must succeed.
 */
export interface EngineScenario {
  mode: "concurrent" | "batch";
  accounts: number;
  /** Stop after this many measured debits… */
  maxDebits: number;
  /** …or after this long, whichever comes first. */
  maxSeconds: number;
  /** concurrent: commands in flight. */
  inFlight: number;
  /** batch: events per debitBatch call, and callers in parallel. */
  batchSize: number;
  callers: number;
}

export interface EngineResult {
  scenario: EngineScenario;
  debits: number;
  seconds: number;
  perSecond: number;
  /** Group-commit batches during the measured part, and their mean size. */
  batches: number;
  meanBatch: number;
  phases: PhaseTimes;
  /** Latency of one call (a debit, or a whole debitBatch), in ms. */
  latency: { p50: number; p99: number; max: number };
  /** Debits per second over the first and the last two seconds of the run. */
  trend: { first: number; last: number };
  check: { ok: boolean; problems: string[]; auditSeconds: number; usages: number };
}

const DEBIT_AMOUNT = 1_000n; // 0.001 credit
const GRANT_AMOUNT = 1_000_000_000n * 1_000_000n; // a billion credits per account
const WARMUP = 2_000;

export async function runEngineScenario(
  label: string,
  url: string,
  sc: EngineScenario,
): Promise<EngineResult> {
  const store = await openStore(url);
  // Inline: the phase timings wrap this store object, which a writer thread would not use.
  const engine = new Engine(store, { sqliteWriter: "inline" });
  try {
    // Setup: accounts with one large grant each, through the engine itself.
    const accounts = Array.from({ length: sc.accounts }, (_, i) => `acct-${String(i).padStart(6, "0")}`);
    await Promise.all(accounts.map((id) => engine.createAccount({ id })));
    await Promise.all(
      accounts.map((account_id) =>
        engine.grant({ id: `grant-${account_id}`, account_id, kind: "purchase", amount: GRANT_AMOUNT }),
      ),
    );

    const random = seededRandom(sc.mode === "concurrent" ? 1 : 2);
    let next = 0;
    const input = (): DebitInput => ({
      id: `evt-${sc.mode}-${next++}`,
      account_id: accounts[Math.floor(random() * accounts.length)]!,
      amount: DEBIT_AMOUNT,
      service: "llm",
    });

    // Warm-up (not timed): JIT, prepared statements, connection pools.
    const warm = await Promise.allSettled(Array.from({ length: WARMUP }, () => engine.debit(input())));
    const warmFailed = warm.filter((w) => w.status === "rejected");
    if (warmFailed.length > 0) throw (warmFailed[0] as PromiseRejectedResult).reason;

    const phases = instrumentStore(store);
    const before = { ...engine.committer.stats };
    let done = 0;
    let failed = 0;
    let firstError: unknown = null;
    const latencies: number[] = [];
    const t0 = performance.now();
    const deadline = t0 + sc.maxSeconds * 1000;
    // Throughput over time: the ledger grows during the run, and so may the cost of a commit.
    const samples: { t: number; n: number }[] = [{ t: t0, n: 0 }];
    const sampler = setInterval(() => samples.push({ t: performance.now(), n: done }), 500);
    const more = (n: number) => next - WARMUP + n <= sc.maxDebits && performance.now() < deadline;

    if (sc.mode === "concurrent") {
      const client = async () => {
        while (more(1)) {
          try {
            const s0 = performance.now();
            await engine.debit(input());
            latencies.push(performance.now() - s0);
            done++;
          } catch (err) {
            failed++;
            firstError ??= err;
          }
        }
      };
      await withProgress(
        `${label}`,
        () => done,
        sc.maxDebits,
        () => Promise.all(Array.from({ length: sc.inFlight }, client)),
      );
    } else {
      const caller = async () => {
        while (more(sc.batchSize)) {
          const items = Array.from({ length: sc.batchSize }, input);
          const s0 = performance.now();
          const results = await engine.debitBatch(items);
          latencies.push(performance.now() - s0);
          for (const r of results) {
            if (r.ok) done++;
            else {
              failed++;
              firstError ??= r.error;
            }
          }
        }
      };
      await withProgress(
        `${label}`,
        () => done,
        sc.maxDebits,
        () => Promise.all(Array.from({ length: sc.callers }, caller)),
      );
    }
    clearInterval(sampler);
    const seconds = (performance.now() - t0) / 1000;
    samples.push({ t: t0 + seconds * 1000, n: done });
    const batches = engine.committer.stats.batches - before.batches;
    const commands = engine.committer.stats.commands - before.commands;

    // Correctness: the audit passes, and exactly the acknowledged debits are there.
    log(`  ${label}: ${fmtInt(done)} debits in ${seconds.toFixed(2)} s; auditing…`);
    const a0 = performance.now();
    const report = await engine.audit();
    const auditSeconds = (performance.now() - a0) / 1000;
    const expected = WARMUP + done;
    const problems: string[] = [];
    if (failed > 0) problems.push(`${failed} debits failed, first: ${errorText(firstError)}`);
    if (!report.ok)
      problems.push(
        `audit found ${report.discrepancies.length} discrepancies, first: ${JSON.stringify(report.discrepancies[0])}`,
      );
    if (report.counts.usages !== expected)
      problems.push(`usages: expected ${expected}, found ${report.counts.usages}`);
    const consumed = formatCredits(BigInt(expected) * DEBIT_AMOUNT);
    if (report.totals.consumed !== consumed)
      problems.push(`consumed: expected ${consumed}, journal says ${report.totals.consumed ?? "nothing"}`);
    const perSecond = done / seconds;
    log(
      `  ${label}: ${fmtInt(perSecond)} debits/s; audit ${report.ok ? "ok" : "FAILED"} in ${auditSeconds.toFixed(1)} s; ` +
        (problems.length === 0 ? "verified" : `PROBLEMS: ${problems.join("; ")}`),
    );
    return {
      scenario: sc,
      debits: done,
      seconds,
      perSecond,
      batches,
      meanBatch: batches > 0 ? commands / batches : 0,
      phases,
      latency: percentiles(latencies),
      trend: trend(samples),
      check: { ok: problems.length === 0, problems, auditSeconds, usages: report.counts.usages },
    };
  } finally {
    await engine.close();
  }
}

function percentiles(ms: number[]): { p50: number; p99: number; max: number } {
  if (ms.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(ms).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

function trend(samples: { t: number; n: number }[]): { first: number; last: number } {
  const rate = (a: { t: number; n: number }, b: { t: number; n: number }) =>
    ((b.n - a.n) / (b.t - a.t)) * 1000;
  const first = samples[0]!;
  const end = samples[samples.length - 1]!;
  const early = samples.find((s) => s.t - first.t >= 2000) ?? end;
  const late = [...samples].reverse().find((s) => end.t - s.t >= 2000) ?? first;
  return { first: rate(first, early), last: rate(late, end) };
}
