/**
 * The SQLite writer thread: ledger transactions of a file database run on a thread of their own (the
 * default), answers and refusals cross back intact, and a thread that dies is replaced without losing or
 * repeating a debit.
 */
import { statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Engine } from "../../src/ledger/engine.ts";
import { ThreadExecutor } from "../../src/ledger/writer-thread.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { cr, expectTallyError, fundedAccount, uid, withFreshEngine } from "./harness.ts";

/** The executor the engine's committer runs batches with (private, read for the test). */
function executorOf(engine: Engine): unknown {
  return (engine.committer as unknown as { executor: unknown }).executor;
}

describe("SQLite writer thread", () => {
  it("runs the ledger of a SQLite file on the writer thread; the main connection sees its commits", () =>
    withFreshEngine("sqlite", async ({ engine, store }) => {
      expect(executorOf(engine)).toBeInstanceOf(ThreadExecutor);
      const { account } = await fundedAccount(engine, [{ amount: cr(10), kind: "purchase" }]);
      const r = await engine.debit({ id: uid("use"), account_id: account, amount: cr(4), service: "tts" });
      expect(r.usage.cost).toBe(cr(4));
      expect((await store.getUsage(r.usage.id))?.cost).toBe(cr(4));
      expect((await engine.balance(account)).available).toBe(cr(6));
      // A refusal crosses back as the same typed error, bigint details included.
      const err = await expectTallyError(
        engine.debit({ id: uid("use"), account_id: account, amount: cr(7), service: "tts" }),
        "insufficient_credits",
      );
      expect(err.details.shortfall).toBe(cr(1));
    }));

  it("inline on request, and always for an in-memory database", async () => {
    const memory = new SqliteStore(":memory:");
    await memory.migrate();
    const e1 = new Engine(memory);
    expect(executorOf(e1)).not.toBeInstanceOf(ThreadExecutor);
    await e1.close();
    await withFreshEngine("sqlite", async ({ db }) => {
      const e2 = new Engine(await db.open(), { sqliteWriter: "inline" });
      expect(executorOf(e2)).not.toBeInstanceOf(ThreadExecutor);
      await e2.close();
    });
  });

  it("a writer thread that dies is replaced; every debit lands exactly once", () =>
    withFreshEngine("sqlite", async ({ engine, store }) => {
      const { account } = await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }]);
      const exec = executorOf(engine) as { worker: { terminate(): Promise<number> } | null };
      const ids = Array.from({ length: 200 }, () => uid("use"));
      const debits = ids.map((id) =>
        engine.debit({ id, account_id: account, amount: cr(1), service: "tts" }).then(
          () => "ok" as const,
          () => "failed" as const,
        ),
      );
      // Kill the thread while the batch is in flight.
      const killed = exec.worker!;
      await killed.terminate();
      const outcomes = await Promise.all(debits);
      // Retrying every debit (same ids) settles each exactly once, whatever the kill interrupted.
      for (const id of ids) await engine.debit({ id, account_id: account, amount: cr(1), service: "tts" });
      const usages = (await store.getUsages(ids)).length;
      expect(usages).toBe(200);
      expect((await engine.balance(account)).available).toBe(cr(800));
      expect(outcomes.length).toBe(200);
      expect(exec.worker).not.toBeNull();
      expect(exec.worker).not.toBe(killed);
      const report = await engine.audit();
      expect(report.ok).toBe(true);
    }));

  it("the checkpoint thread copies committed pages into the database file (commits never do it themselves)", () =>
    withFreshEngine("sqlite", async ({ engine, db }) => {
      const accounts: string[] = [];
      for (let i = 0; i < 20; i++)
        accounts.push((await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }])).account);
      await sleep(600);
      const before = statSync(db.url).size;
      // Far below the connections' own threshold: only the checkpoint thread moves these pages.
      await Promise.all(
        Array.from({ length: 2000 }, (_, i) =>
          engine.debit({ id: uid("use"), account_id: accounts[i % 20]!, amount: cr(0.01), service: "tts" }),
        ),
      );
      let after = before;
      for (let i = 0; i < 40 && after <= before; i++) {
        await sleep(100);
        after = statSync(db.url).size;
      }
      expect(after).toBeGreaterThan(before);
    }));
});
