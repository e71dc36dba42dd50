/**
 * Crash: a writer process streaming debits is killed with SIGKILL at random moments, several times over.
 * After each kill a fresh store on the same database must show: a clean audit, every acknowledged debit
 * present exactly once with the content that was sent, nothing half-written, and a restarted writer that
 * re-sends the same stream gets replays for what was persisted and applies the rest.
 *
 * The random choices come from a seed printed with the test (set CRASH_SEED to replay a run).
 */
import { afterEach, expect, it, onTestFinished } from "vitest";
import { formatCredits } from "../src/domain/amount.ts";
import { Engine } from "../src/ledger/engine.ts";
import { allEntries, allUsages, journalProblems } from "./support/ledger-scan.ts";
import { describeEachStore, freshDatabase, type StoreKind, type TestDatabase } from "./support/stores.ts";
import { STREAM_SERVICE, streamAmount } from "./support/writer.ts";
import { killAllWriters, Writer } from "./support/writer-process.ts";

const KILLS = 4;
const ACCOUNT = "acct-crash";
const PREFIX = "ev-";
/** Upper bound of the stream: never reached before a kill; bounds the writer if a kill never comes. */
const STREAM_END = 50_000;
const PROMO = 555_555n;
const PURCHASE = 1_000n * 1_000_000n;
const GRANTED = PROMO + PURCHASE;

afterEach(async () => {
  await killAllWriters();
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function indexOf(id: string): number {
  const m = /^[a-z]+-(\d+)$/.exec(id);
  if (!m) throw new Error(`unexpected usage id ${id}`);
  return Number(m[1]);
}

/**
 * Opens a new store on the database (a restart) and checks everything that must hold after a crash.
 * Returns the ids of the persisted usages.
 */
async function verifyAfterCrash(
  db: TestDatabase,
  acked: ReadonlyMap<string, string>,
  checkEach: readonly string[],
): Promise<Set<string>> {
  const engine = new Engine(await db.open());
  try {
    const report = await engine.audit();
    expect(report.discrepancies).toEqual([]);
    expect(report.ok).toBe(true);

    const usages = await allUsages(engine, ACCOUNT);
    const persisted = new Set(usages.map((u) => u.id));
    expect(persisted.size, "a usage listed twice").toBe(usages.length);
    let sum = 0n;
    for (const u of usages) {
      const i = indexOf(u.id);
      expect(u.cost, `cost of ${u.id}`).toBe(streamAmount(i));
      expect(u.service).toBe(STREAM_SERVICE);
      expect(u.metadata).toEqual({ i });
      expect(u.refunded).toBe(0n);
      sum += u.cost;
    }

    // Every acknowledged debit is there, as the very transaction that was acknowledged.
    const missing = [...acked.keys()].filter((id) => !persisted.has(id));
    expect(missing, "acknowledged debits missing after the crash").toEqual([]);
    const byId = new Map(usages.map((u) => [u.id, u]));
    for (const [id, txn] of acked) expect(byId.get(id)!.txn_id, `transaction of ${id}`).toBe(txn);
    for (const id of checkEach) {
      const u = await engine.getUsage(id);
      expect(u.txn_id).toBe(acked.get(id));
      expect(u.cost).toBe(streamAmount(indexOf(id)));
    }

    // Nothing half-written: each usage has exactly its one whole debit transaction, and no debit
    // transaction lacks its usage.
    expect(journalProblems(usages, await allEntries(engine, ACCOUNT))).toEqual([]);

    // Total consumed is exactly the sum of the persisted usages.
    const bal = await engine.balance(ACCOUNT);
    expect(bal.held).toBe(0n);
    expect(bal.overage).toBe(0n);
    expect(GRANTED - bal.available).toBe(sum);
    expect(report.totals.consumed ?? "0").toBe(formatCredits(sum));
    return persisted;
  } finally {
    await engine.close();
  }
}

/** A fresh database with the account and its grants, removed when the test ends. */
async function fundedDatabase(kind: StoreKind): Promise<TestDatabase> {
  const db = await freshDatabase(kind);
  onTestFinished(async () => {
    await killAllWriters();
    await db.destroy();
  });
  const engine = new Engine(await db.open());
  try {
    await engine.createAccount({ id: ACCOUNT });
    // The promotional grant runs out inside the stream, so some debits draw from both grants.
    await engine.grant({
      account_id: ACCOUNT,
      kind: "promotional",
      amount: PROMO,
      expires_at: Date.now() + 86_400_000,
    });
    await engine.grant({ account_id: ACCOUNT, kind: "purchase", amount: PURCHASE });
  } finally {
    await engine.close();
  }
  return db;
}

describeEachStore("crash: kill -9 of a writer during a stream of debits", (kind) => {
  const title = `acknowledged debits survive ${KILLS} kills at random moments, exactly once; a restarted writer continues`;
  it(title, { timeout: 90_000 }, async () => {
    const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`crash test [${kind}] seed ${seed} (CRASH_SEED=${seed} replays it)`);
    const rand = mulberry32(seed);
    const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

    const db = await fundedDatabase(kind);

    /** Every debit ever acknowledged, with the transaction id it was acknowledged with. */
    const acked = new Map<string, string>();
    let persisted = new Set<string>();

    /** Acks of a run of the stream: replays exactly for what was persisted before it, same transactions. */
    const checkRun = (w: Writer, concurrency: number) => {
      expect(w.refusals, "refusals in the stream").toEqual([]);
      const seen = new Set<string>();
      const wrong: string[] = [];
      for (const a of w.acks) {
        if (seen.has(a.id)) wrong.push(`${a.id} acknowledged twice`);
        seen.add(a.id);
        if (a.replay !== persisted.has(a.id))
          wrong.push(`${a.id} replay=${a.replay}, persisted=${persisted.has(a.id)}`);
        const before = acked.get(a.id);
        if (before !== undefined && before !== a.txn)
          wrong.push(`${a.id} transaction ${a.txn}, was ${before}`);
        acked.set(a.id, a.txn);
      }
      expect(wrong).toEqual([]);
      return (next: Set<string>) => {
        // Persisted by this run but never acknowledged: at most what was in flight when it died.
        const unacked = [...next].filter((id) => !persisted.has(id) && !seen.has(id));
        expect(unacked.length, `committed but unacknowledged: ${unacked.join(",")}`).toBeLessThanOrEqual(
          concurrency,
        );
      };
    };

    for (let round = 1; round <= KILLS; round++) {
      const concurrency = between(4, 32);
      // Each restart re-sends the stream from its start: first replays, then new debits.
      const tStart = Date.now();
      const w = new Writer(db.url, {
        mode: "stream",
        account: ACCOUNT,
        prefix: PREFIX,
        from: 0,
        to: STREAM_END,
        concurrency,
      });
      // Kill after some hundreds of new acknowledgements (sometimes still among the replays), then a
      // random few milliseconds more, so the kill lands anywhere in a batch.
      const threshold = Math.max(50, persisted.size + (round === 1 ? between(200, 600) : between(-150, 450)));
      await w.until(`${threshold} acknowledgements`, () => w.acks.length >= threshold, 30_000);
      await new Promise((r) => setTimeout(r, between(0, 25)));
      await w.kill();
      expect(w.done, "the writer finished before the kill").toBe(false);

      const tKill = Date.now();
      const bound = checkRun(w, concurrency);
      const next = await verifyAfterCrash(
        db,
        acked,
        w.acks.filter((a) => !a.replay).map((a) => a.id),
      );
      bound(next);
      const neverAcked = [...next].filter((id) => !acked.has(id)).length;
      console.log(
        `[${kind}] kill ${round}: ${concurrency} in flight, ${w.acks.length} acknowledged, ${next.size} persisted ` +
          `(${neverAcked} never acknowledged), run ${tKill - tStart} ms, check ${Date.now() - tKill} ms`,
      );
      for (const id of persisted) expect(next.has(id), `${id} vanished`).toBe(true);
      persisted = next;
    }

    // A restarted writer runs the stream to a bounded end: replays for everything persisted, then the rest.
    const end = Math.max(...[...persisted].map(indexOf)) + 100;
    const w = new Writer(db.url, {
      mode: "stream",
      account: ACCOUNT,
      prefix: PREFIX,
      from: 0,
      to: end,
      concurrency: 16,
    });
    await w.finish();
    checkRun(w, 16);
    expect(w.acks).toHaveLength(end);
    expect(w.acks.filter((a) => a.replay)).toHaveLength(persisted.size);
    const final = await verifyAfterCrash(
      db,
      acked,
      w.acks.filter((a) => !a.replay).map((a) => a.id),
    );
    expect(final.size).toBe(end);
  });

  it("a writer killed while another writes to the same account: the survivor finishes, nothing is lost", async () => {
    const db = await fundedDatabase(kind);
    const victim = new Writer(db.url, {
      mode: "stream",
      account: ACCOUNT,
      prefix: "victim-",
      from: 0,
      to: STREAM_END,
      concurrency: 16,
    });
    await victim.until("150 acknowledgements", () => victim.acks.length >= 150, 30_000);
    const SURVIVOR_DEBITS = 1_000;
    const survivor = new Writer(db.url, {
      mode: "stream",
      account: ACCOUNT,
      prefix: "survivor-",
      from: 0,
      to: SURVIVOR_DEBITS,
      concurrency: 16,
    });
    // Both write; the victim dies mid-stream, possibly inside a transaction holding locks the survivor
    // waits for. The survivor must carry on to the end.
    await survivor.until("100 acknowledgements", () => survivor.acks.length >= 100, 30_000);
    await victim.kill();
    expect(survivor.done).toBe(false);
    await survivor.finish();

    for (const w of [victim, survivor]) {
      expect(w.refusals).toEqual([]);
      expect(w.acks.filter((a) => a.replay)).toEqual([]);
    }
    expect(survivor.acks).toHaveLength(SURVIVOR_DEBITS);
    const acked = new Map([...victim.acks, ...survivor.acks].map((a) => [a.id, a.txn]));
    const persisted = await verifyAfterCrash(db, acked, [...acked.keys()]);
    // Persisted but unacknowledged: only the victim's debits in flight when it died.
    const unacked = [...persisted].filter((id) => !acked.has(id));
    expect(unacked.every((id) => id.startsWith("victim-"))).toBe(true);
    expect(unacked.length).toBeLessThanOrEqual(16);
  });
});
