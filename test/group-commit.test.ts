import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/ledger/engine.ts";
import type { SqliteStore } from "../src/store/sqlite/store.ts";
import type { Store } from "../src/store/types.ts";
import { describeEachStore, freshDatabase, type TestDatabase } from "./support/stores.ts";

const C = 1_000_000n;

/** A real store failure for one command: a database trigger that rejects usages of the service "poison". */
async function installPoison(db: TestDatabase, store: Store): Promise<void> {
  if (db.kind === "sqlite") {
    (store as SqliteStore).db.exec(
      "CREATE TRIGGER poison BEFORE INSERT ON usages WHEN NEW.service = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
    );
    return;
  }
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query(`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.service = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$`);
  await c.query("CREATE TRIGGER poison BEFORE INSERT ON usages FOR EACH ROW EXECUTE FUNCTION poison()");
  await c.end();
}

describeEachStore("group commit", (kind) => {
  let db: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    db = await freshDatabase(kind);
    store = await db.open();
    await installPoison(db, store);
  });
  afterAll(async () => {
    await store.close();
    await db.destroy();
  });

  async function fundedAccount(engine: Engine, credits: bigint) {
    const { account } = await engine.createAccount();
    await engine.grant({ account_id: account.id, kind: "purchase", amount: credits * C });
    return account.id;
  }

  it("groups concurrent commands into few transactions, bounded by the batch size", async () => {
    const engine = new Engine(store, { groupCommit: { maxBatch: 50, maxWaitMs: 5 } });
    const acct = await fundedAccount(engine, 1000n);
    const before = { ...engine.committer.stats };
    const n = 400;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        engine.debit({ id: `gc-${acct}-${i}`, account_id: acct, amount: C, service: "tts" }),
      ),
    );
    expect(results.every((r) => !r.replay)).toBe(true);
    const batches = engine.committer.stats.batches - before.batches;
    const commands = engine.committer.stats.commands - before.commands;
    expect(commands).toBe(n);
    // Never more than maxBatch per transaction, and far fewer transactions than commands.
    expect(batches).toBeGreaterThanOrEqual(n / 50);
    expect(batches).toBeLessThan(n / 4);
    expect((await engine.balance(acct)).available).toBe(600n * C);
    await engine.drain();
  });

  it("a refused command does not fail its batch-mates", async () => {
    const engine = new Engine(store);
    const acct = await fundedAccount(engine, 10n);
    const batchesBefore = engine.committer.stats.batches;
    const settled = await Promise.allSettled([
      engine.debit({ id: `ok1-${acct}`, account_id: acct, amount: 3n * C, service: "tts" }),
      engine.debit({ id: `big-${acct}`, account_id: acct, amount: 100n * C, service: "tts" }),
      engine.debit({ id: `ok2-${acct}`, account_id: acct, amount: 3n * C, service: "tts" }),
      engine.debit({ id: `nobody-${acct}`, account_id: "acct_missing", amount: C, service: "tts" }),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected"]);
    expect((settled[1] as PromiseRejectedResult).reason.code).toBe("insufficient_credits");
    expect((settled[3] as PromiseRejectedResult).reason.code).toBe("not_found");
    expect((await engine.balance(acct)).available).toBe(4n * C);
    // The account's three commands shared one transaction (the unknown account may be routed to another
    // lane): the refusals split nothing.
    expect(engine.committer.stats.batches - batchesBefore).toBeLessThanOrEqual(2);
    expect(engine.committer.stats.splits).toBe(0);
  });

  it("a store failure in one command re-runs the batch-mates alone: only the culprit fails", async () => {
    const engine = new Engine(store);
    const acct = await fundedAccount(engine, 10n);
    const settled = await Promise.allSettled(
      ["tts", "tts", "poison", "tts"].map((service, i) =>
        engine.debit({ id: `p${i}-${acct}`, account_id: acct, amount: C, service }),
      ),
    );
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(String((settled[2] as PromiseRejectedResult).reason)).toMatch(/poisoned row/);
    expect(engine.committer.stats.splits).toBe(1);
    expect((await engine.balance(acct)).available).toBe(7n * C);
    expect(await store.getUsage(`p2-${acct}`)).toBeNull();
    expect((await engine.audit()).ok).toBe(true);
  });

  it("debitBatch returns a result per event, in order", async () => {
    const engine = new Engine(store);
    const acct = await fundedAccount(engine, 5n);
    const events = Array.from({ length: 8 }, (_, i) => ({
      id: `batch-${acct}-${i}`,
      account_id: acct,
      amount: C,
      service: "tts",
    }));
    const results = await engine.debitBatch([...events, events[0]!]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, false, false, false, true]);
    const last = results[8]!;
    expect(last.ok && last.value.replay).toBe(true);
    const refused = results[5]!;
    expect(!refused.ok && refused.error.code).toBe("insufficient_credits");
    await expect(engine.debitBatch(new Array(1001).fill(events[0]))).rejects.toMatchObject({
      code: "validation_error",
      details: { field: "events" },
    });
  });

  it("close finishes in-flight commits before the store closes", async () => {
    const db2 = await freshDatabase(kind);
    const engine = new Engine(await db2.open());
    const acct = await fundedAccount(engine, 100n);
    const pending = Array.from({ length: 50 }, (_, i) =>
      engine.debit({ id: `close-${i}`, account_id: acct, amount: C, service: "tts" }),
    );
    await engine.close();
    const results = await Promise.allSettled(pending);
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    const reopened = new Engine(await db2.open());
    expect((await reopened.balance(acct)).available).toBe(50n * C);
    await reopened.close();
    await db2.destroy();
  });
});

describe("group commit options", () => {
  it("defaults: one lane on SQLite (one connection), several on PostgreSQL", async () => {
    for (const [kind, lanes] of [
      ["sqlite", 1],
      ["postgres", 4],
    ] as const) {
      const db = await freshDatabase(kind);
      const engine = new Engine(await db.open());
      expect(engine.committer.opts.lanes).toBe(lanes);
      await engine.close();
      await db.destroy();
    }
  });
});
