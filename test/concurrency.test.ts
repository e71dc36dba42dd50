/**
 * Concurrency: no overdraft and no double application, whatever the number of concurrent writers —
 * callers in one process (group commit) and several OS processes on one database.
 */
import { afterEach, expect, it, onTestFinished } from "vitest";
import { TallyError } from "../src/domain/errors.ts";
import { Engine } from "../src/ledger/engine.ts";
import type { GroupCommitOptions } from "../src/ledger/group-commit.ts";
import { allEntries, allUsages, journalProblems } from "./support/ledger-scan.ts";
import { describeEachStore, freshDatabase, type StoreKind, type TestDatabase } from "./support/stores.ts";
import { killAllWriters, startTogether, Writer } from "./support/writer-process.ts";

/** Cost of one debit: odd, so that grant boundaries fall inside debits. */
const AMT = 1_234_567n;
const DEBITS = 1000;
const COVERED = 100n;
const DAY = 86_400_000;

afterEach(async () => {
  await killAllWriters();
});

interface Ctx {
  db: TestDatabase;
  engine: Engine;
}

async function setup(kind: StoreKind, groupCommit: Partial<GroupCommitOptions> = {}): Promise<Ctx> {
  const db = await freshDatabase(kind);
  let engine: Engine | null = null;
  onTestFinished(async () => {
    await killAllWriters();
    await engine?.close();
    await db.destroy();
  });
  engine = new Engine(await db.open(), { groupCommit });
  return { db, engine };
}

/**
 * Funds an account with exactly `n` debits of AMT, split over three grants whose boundaries fall inside
 * debits, so some debits draw from two grants.
 */
async function fundExactly(engine: Engine, account: string, n: bigint): Promise<void> {
  await engine.createAccount({ id: account });
  const total = AMT * n;
  const promo = AMT * (n / 3n) + 123n;
  const sub = AMT * (n / 3n) + 4_567n;
  await engine.grant({
    account_id: account,
    kind: "promotional",
    amount: promo,
    expires_at: Date.now() + DAY,
  });
  await engine.grant({ account_id: account, kind: "subscription", amount: sub });
  await engine.grant({ account_id: account, kind: "purchase", amount: total - promo - sub });
  expect((await engine.balance(account)).available).toBe(total);
}

/** The account is drained to exactly zero by exactly the given debits, and the ledger is consistent. */
async function expectDrainedBy(engine: Engine, account: string, succeeded: readonly string[]): Promise<void> {
  expect(new Set(succeeded).size).toBe(succeeded.length);
  expect(succeeded.length).toBe(Number(COVERED));
  const bal = await engine.balance(account);
  expect(bal.available).toBe(0n);
  expect(bal.total).toBe(0n);
  expect(bal.held).toBe(0n);
  expect(bal.overage).toBe(0n);
  for (const g of await engine.listGrants(account)) expect(g.remaining).toBe(0n);

  const usages = await allUsages(engine, account);
  expect(usages.map((u) => u.id).sort()).toEqual([...succeeded].sort());
  for (const u of usages) {
    expect(u.cost).toBe(AMT);
    expect(u.overage).toBe(0n);
  }
  expect(journalProblems(usages, await allEntries(engine, account))).toEqual([]);
  const report = await engine.audit();
  expect(report.discrepancies).toEqual([]);
  expect(report.ok).toBe(true);
}

describeEachStore("races", (kind) => {
  const configs: { name: string; gc: Partial<GroupCommitOptions> }[] = [
    { name: "default group commit", gc: {} },
    { name: "small batches", gc: { maxBatch: 8 } },
  ];
  for (const { name, gc } of configs) {
    it(`1,000 concurrent debits in one process, balance for 100 (${name}): exactly 100 succeed`, async () => {
      const { engine } = await setup(kind, gc);
      const account = "acct-race";
      await fundExactly(engine, account, COVERED);

      const ids = Array.from({ length: DEBITS }, (_, i) => `race-${i}`);
      const settled = await Promise.allSettled(
        ids.map((id) => engine.debit({ id, account_id: account, amount: AMT, service: "llm" })),
      );

      const succeeded: string[] = [];
      settled.forEach((s, i) => {
        if (s.status === "fulfilled") {
          expect(s.value.replay).toBe(false);
          expect(s.value.usage.id).toBe(ids[i]);
          succeeded.push(ids[i]!);
        } else {
          expect(s.reason).toBeInstanceOf(TallyError);
          expect((s.reason as TallyError).code).toBe("insufficient_credits");
        }
      });
      await expectDrainedBy(engine, account, succeeded);
    });
  }

  const processes = kind === "sqlite" ? 2 : 3;
  // All at once, and spread over a second so that the processes' commits interleave around the moment the
  // balance runs out (a process that holds SQLite's write lock tends to keep it while it has work).
  for (const spreadMs of [0, 1000])
    it(`1,000 concurrent debits from ${processes} OS processes${spreadMs ? `, spread over ${spreadMs} ms` : ""}, balance for 100: exactly 100 succeed`, async () => {
      const { db, engine } = await setup(kind);
      const account = "acct-race-procs";
      await fundExactly(engine, account, COVERED);

      // Each process gets an interleaved share of the ids and sends all of it at once; small batches make
      // the processes' transactions interleave on the database.
      const writers = Array.from(
        { length: processes },
        (_, p) =>
          new Writer(
            db.url,
            {
              mode: "burst",
              account,
              ids: Array.from({ length: DEBITS }, (_, i) => i)
                .filter((i) => i % processes === p)
                .map((i) => `race-${i}`),
              copies: 1,
              amount: AMT.toString(),
              gate: true,
              spreadMs,
            },
            { maxBatch: 16 },
          ),
      );
      await startTogether(writers);
      await Promise.all(writers.map((w) => w.finish()));

      const acks = writers.flatMap((w) => w.acks);
      const refusals = writers.flatMap((w) => w.refusals);
      expect(acks.length + refusals.length).toBe(DEBITS);
      expect(refusals.filter((r) => r.code !== "insufficient_credits")).toEqual([]);
      expect(acks.filter((a) => a.replay)).toEqual([]);
      console.log(
        `${kind} spread ${spreadMs}: successes per process`,
        writers.map((w) => w.acks.length),
      );
      // Every process answered every debit of its share.
      writers.forEach((w, p) =>
        expect(w.acks.length + w.refusals.length).toBe(Math.ceil((DEBITS - p) / processes)),
      );
      await expectDrainedBy(
        engine,
        account,
        acks.map((a) => a.id),
      );
    });
});

describeEachStore("writers in several processes see each other's writes", (kind) => {
  it("2 processes taking turns, with a top-up from a third: exactly the funded debits succeed", async () => {
    const { db, engine } = await setup(kind);
    const account = "acct-turns";
    // Half the credits now, the other half from the parent process while the writers are running.
    await fundExactly(engine, account, COVERED / 2n);
    const spec = { mode: "interactive" as const, account, amount: AMT.toString() };
    const writers = [new Writer(db.url, spec), new Writer(db.url, spec)];
    await Promise.all(writers.map((w) => w.ready()));

    const TURNS = 60;
    const PER_TURN = 3;
    for (let t = 0; t < TURNS; t++) {
      if (t === 20) {
        // Each process has already seen its grants, some partly spent: the new ones must be used too.
        await engine.grant({ account_id: account, kind: "purchase", amount: AMT * 30n + 999n });
        await engine.grant({ account_id: account, kind: "adjustment", amount: AMT * 20n - 999n });
      }
      await writers[t % 2]!.send(Array.from({ length: PER_TURN }, (_, k) => `turn-${t}-${k}`));
    }
    for (const w of writers) w.end();
    await Promise.all(writers.map((w) => w.finish()));

    const acks = writers.flatMap((w) => w.acks);
    const refusals = writers.flatMap((w) => w.refusals);
    expect(acks.length + refusals.length).toBe(TURNS * PER_TURN);
    expect(refusals.filter((r) => r.code !== "insufficient_credits")).toEqual([]);
    // Turns run one after another, so the successes are exactly the first 50 debits, then (after the
    // 10 refused before the top-up) the first 50 after it.
    const order = (id: string) => {
      const [, turn, k] = id.split("-");
      return Number(turn) * PER_TURN + Number(k);
    };
    const succeeded = acks.map((a) => a.id);
    const expected = [
      ...Array.from({ length: 50 }, (_, i) => i),
      ...Array.from({ length: 50 }, (_, i) => 60 + i),
    ];
    expect(succeeded.map(order).sort((a, b) => a - b)).toEqual(expected);
    for (const w of writers) expect(w.acks.length).toBeGreaterThan(0);
    await expectDrainedBy(engine, account, succeeded);
  });
});

describeEachStore("idempotency under concurrency", (kind) => {
  const GRANTED = 10_000_000_000n;
  const COST = 7_654_321n;

  async function fund(engine: Engine, account: string): Promise<void> {
    await engine.createAccount({ id: account });
    await engine.grant({ account_id: account, kind: "purchase", amount: GRANTED });
  }

  async function expectAppliedOnce(engine: Engine, account: string, ids: readonly string[]): Promise<void> {
    const usages = await allUsages(engine, account);
    expect(usages.map((u) => u.id).sort()).toEqual([...ids].sort());
    for (const u of usages) expect(u.cost).toBe(COST);
    const bal = await engine.balance(account);
    expect(bal.available).toBe(GRANTED - COST * BigInt(ids.length));
    expect(journalProblems(usages, await allEntries(engine, account))).toEqual([]);
    const report = await engine.audit();
    expect(report.discrepancies).toEqual([]);
    expect(report.ok).toBe(true);
  }

  const configs: { name: string; gc: Partial<GroupCommitOptions> }[] = [
    { name: "one batch", gc: {} },
    // One command per transaction: on PostgreSQL several transactions race to insert the same usage.
    { name: "one command per batch", gc: { maxBatch: 1, maxWaitMs: 0 } },
  ];
  for (const { name, gc } of configs) {
    it(`the same event sent 50 times at once is applied once (${name})`, async () => {
      const { engine } = await setup(kind, gc);
      const account = "acct-idem";
      await fund(engine, account);

      const event = {
        id: "evt-same",
        account_id: account,
        amount: COST,
        service: "tts",
        quantity: "1200",
        metadata: { voice: "alto" },
      };
      const results = await Promise.all(Array.from({ length: 50 }, () => engine.debit({ ...event })));

      expect(results.filter((r) => !r.replay)).toHaveLength(1);
      expect(results.filter((r) => r.replay)).toHaveLength(49);
      const first = results.find((r) => !r.replay)!.usage;
      for (const r of results) {
        expect(r.usage.id).toBe(event.id);
        expect(r.usage.txn_id).toBe(first.txn_id);
        expect(r.usage.cost).toBe(COST);
        expect(r.usage.recorded_at).toBe(first.recorded_at);
      }
      await expectAppliedOnce(engine, account, [event.id]);
    });
  }

  it("the same event sent 50 times at once from 2 processes is applied once", async () => {
    const { db, engine } = await setup(kind);
    const account = "acct-idem-procs";
    await fund(engine, account);

    const spec = {
      mode: "burst" as const,
      account,
      ids: ["evt-same"],
      copies: 25,
      amount: COST.toString(),
      service: "tts",
      gate: true,
    };
    const writers = [new Writer(db.url, spec, { maxBatch: 1 }), new Writer(db.url, spec, { maxBatch: 4 })];
    await startTogether(writers);
    await Promise.all(writers.map((w) => w.finish()));

    const acks = writers.flatMap((w) => w.acks);
    expect(writers.flatMap((w) => w.refusals)).toEqual([]);
    expect(acks).toHaveLength(50);
    expect(acks.filter((a) => !a.replay)).toHaveLength(1);
    expect(new Set(acks.map((a) => a.txn)).size).toBe(1);
    await expectAppliedOnce(engine, account, ["evt-same"]);
  });

  it("the same 200 events sent by 2 processes at once: each applied exactly once", async () => {
    const { db, engine } = await setup(kind);
    const account = "acct-idem-many";
    await fund(engine, account);

    const ids = Array.from({ length: 200 }, (_, i) => `evt-${i}`);
    const spec = { mode: "burst" as const, account, ids, copies: 1, amount: COST.toString(), gate: true };
    // One sends them in order, the other in reverse: they collide early, late and in the middle.
    const writers = [
      new Writer(db.url, spec, { maxBatch: 8 }),
      new Writer(db.url, { ...spec, ids: [...ids].reverse() }, { maxBatch: 8 }),
    ];
    await startTogether(writers);
    await Promise.all(writers.map((w) => w.finish()));

    expect(writers.flatMap((w) => w.refusals)).toEqual([]);
    const acks = writers.flatMap((w) => w.acks);
    expect(acks).toHaveLength(400);
    for (const id of ids) {
      const mine = acks.filter((a) => a.id === id);
      expect(
        mine.filter((a) => !a.replay),
        `fresh applications of ${id}`,
      ).toHaveLength(1);
      expect(new Set(mine.map((a) => a.txn)).size).toBe(1);
    }
    await expectAppliedOnce(engine, account, ids);
  });

  it("the same id with different content from 2 processes at once: one content wins, the other conflicts", async () => {
    const { db, engine } = await setup(kind);
    const account = "acct-idem-conflict";
    await fund(engine, account);

    const base = { mode: "burst" as const, account, ids: ["evt-contested"], copies: 25, gate: true };
    const amounts = [COST, COST + 1n];
    const writers = amounts.map(
      (a) => new Writer(db.url, { ...base, amount: a.toString() }, { maxBatch: 2 }),
    );
    await startTogether(writers);
    await Promise.all(writers.map((w) => w.finish()));

    const usage = await engine.getUsage("evt-contested");
    const winner = amounts.indexOf(usage.cost);
    expect(winner).toBeGreaterThanOrEqual(0);
    const [won, lost] = [writers[winner]!, writers[1 - winner]!];
    // The winner's copies: one application and 24 replays of it; the loser's: 25 conflicts, nothing applied.
    expect(won.refusals).toEqual([]);
    expect(won.acks.filter((a) => !a.replay)).toHaveLength(1);
    expect(won.acks.filter((a) => a.replay)).toHaveLength(24);
    for (const a of won.acks) expect(a.txn).toBe(usage.txn_id);
    expect(lost.acks).toEqual([]);
    expect(lost.refusals.map((r) => r.code)).toEqual(Array(25).fill("idempotency_conflict"));

    expect(await allUsages(engine, account)).toHaveLength(1);
    expect((await engine.balance(account)).available).toBe(GRANTED - usage.cost);
    const report = await engine.audit();
    expect(report.discrepancies).toEqual([]);
  });
});
