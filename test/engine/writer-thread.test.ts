/**
 * The SQLite writer thread: ledger transactions of a file database run on a thread of their own (the
 * default), answers and refusals cross back intact, and a thread that dies is replaced without losing or
 * repeating a debit.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Engine } from "../../src/ledger/engine.ts";
import { keysOf } from "../../src/ledger/apply.ts";
import { Working } from "../../src/ledger/working.ts";
import { ThreadExecutor } from "../../src/ledger/writer-thread.ts";
import { walRestartPagesSetting } from "../../src/ledger/writer-wire.ts";
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

describe("SQLite WAL under steady load", () => {
  /** Salt-1 of the WAL header: SQLite changes it each time the log starts over from the top of the file. */
  function walSalt(path: string): number {
    const fd = openSync(`${path}-wal`, "r");
    try {
      const header = Buffer.alloc(32);
      readSync(fd, header, 0, 32, 0);
      return header.readUInt32BE(16);
    } finally {
      closeSync(fd);
    }
  }

  it("starts the log over once it passes TALLY_SQLITE_WAL_RESTART_PAGES, though commits and reads never pause", async () => {
    const before = process.env.TALLY_SQLITE_WAL_RESTART_PAGES;
    process.env.TALLY_SQLITE_WAL_RESTART_PAGES = "64";
    try {
      await withFreshEngine("sqlite", async ({ engine, db }) => {
        const accounts: string[] = [];
        for (let i = 0; i < 50; i++)
          accounts.push((await fundedAccount(engine, [{ amount: cr(1e6), kind: "purchase" }])).account);
        let stop = false;
        let debits = 0;
        // 20 clients debiting back to back, and one reading the main connection all the while: a passive
        // checkpoint alone never finds the moment to let the log start over (the salt would never change).
        const writers = Array.from({ length: 20 }, async (_, w) => {
          for (let i = w; !stop; i += 20) {
            await engine.debit({
              id: uid("use"),
              account_id: accounts[i % 50]!,
              amount: cr(0.01),
              service: "tts",
            });
            debits++;
          }
        });
        const reader = (async () => {
          for (let i = 0; !stop; i++) {
            await engine.balance(accounts[i % 50]!);
            await new Promise((r) => setImmediate(r));
          }
        })();
        const salts = new Set<number>();
        const t0 = Date.now();
        while (Date.now() - t0 < 3000) {
          await sleep(20);
          salts.add(walSalt(db.url));
        }
        stop = true;
        await Promise.all([...writers, reader]);
        expect(debits).toBeGreaterThan(3000);
        // The checkpoint thread looks every 250 ms and the log passes 64 pages between two looks.
        expect(salts.size).toBeGreaterThanOrEqual(4);
        expect((await engine.audit()).ok).toBe(true);
      });
    } finally {
      if (before === undefined) delete process.env.TALLY_SQLITE_WAL_RESTART_PAGES;
      else process.env.TALLY_SQLITE_WAL_RESTART_PAGES = before;
    }
  });

  it("refuses a TALLY_SQLITE_WAL_RESTART_PAGES that is not a page count", () => {
    for (const bad of ["0", "-5", "1.5", "abc", "1000001"])
      expect(() => walRestartPagesSetting({ TALLY_SQLITE_WAL_RESTART_PAGES: bad })).toThrow(
        /TALLY_SQLITE_WAL_RESTART_PAGES must be an integer/,
      );
    expect(walRestartPagesSetting({})).toBe(16_384);
    expect(walRestartPagesSetting({ TALLY_SQLITE_WAL_RESTART_PAGES: "100" })).toBe(100);
  });
});

describe("the main thread's other writes, through the writer thread", () => {
  it("statements sent together through the writer thread all land; one that fails fails alone; RETURNING comes back", () =>
    withFreshEngine("sqlite", async ({ engine, store }) => {
      const sqlite = store as SqliteStore;
      expect(sqlite.writer, "the engine routes the store's writes to its writer thread").not.toBeNull();
      const { account } = await fundedAccount(engine, [{ amount: cr(100), kind: "purchase" }]);
      const insert = (key: string) =>
        sqlite.writeSql(
          "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) RETURNING key",
          [key, "v", 1],
          "get",
        );
      // Debits in flight at the same time: the statements join their commits or run beside them.
      const debits = Array.from({ length: 20 }, () =>
        engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "tts" }),
      );
      const keys = Array.from({ length: 40 }, (_, i) => `wt-${i}`);
      const results = await Promise.allSettled([...keys.map(insert), insert("wt-3")]);
      await Promise.all(debits);
      for (let i = 0; i < keys.length; i++) {
        const r = results[i]!;
        expect(r.status).toBe("fulfilled");
        if (r.status === "fulfilled") expect(r.value).toEqual({ changes: 1, row: { key: keys[i] } });
      }
      // The same key again: a constraint error for that statement only.
      const dup = results[keys.length]!;
      expect(dup.status).toBe("rejected");
      if (dup.status === "rejected")
        expect((dup.reason as { code?: string }).code).toMatch(/SQLITE_CONSTRAINT/);
      for (const k of keys) expect(await store.getSetting(k)).toBe("v");
      const updated = await sqlite.writeSql("UPDATE settings SET value = ? WHERE key LIKE 'wt-%'", ["w"]);
      expect(updated).toEqual({ changes: 40, row: null });
      // The ledger's own tables are never written this way.
      await expect(sqlite.writeSql("UPDATE grants SET remaining = 0", [])).rejects.toThrow(
        /never writes the ledger/,
      );
      expect((await engine.balance(account)).available).toBe(cr(80));
      expect((await engine.audit()).ok).toBe(true);
    }));

  it("an engine without a writer thread leaves the store writing on its own connection", async () => {
    const memory = new SqliteStore(":memory:");
    await memory.migrate();
    const e = new Engine(memory);
    expect(memory.writer).toBeNull();
    expect(
      await memory.writeSql("INSERT INTO settings (key, value, updated_at) VALUES ('k', 'v', 1)", []),
    ).toEqual({
      changes: 1,
      row: null,
    });
    expect(await memory.getSetting("k")).toBe("v");
    await e.close();
  });
});

describe("statements folded into a ledger batch's transaction", () => {
  const noKeys = () => keysOf([]);
  const setting = (key: string) => ({
    sql: "INSERT INTO settings (key, value, updated_at) VALUES (?, 'v', 1)",
    params: [key],
    mode: "run" as const,
  });

  it("commit with the batch and report their results; a batch that fails takes them back", async () => {
    const store = new SqliteStore(":memory:");
    await store.migrate();
    try {
      store.preStatements = [setting("with-batch")];
      await store.runBatch(noKeys(), 1, (snap) => ({ changes: new Working(snap).changes(), result: null }));
      expect(store.preResults).toEqual([{ ok: true, result: { changes: 1, row: null } }]);
      expect(await store.getSetting("with-batch")).toBe("v");

      store.preStatements = [setting("with-failed-batch")];
      await expect(
        store.runBatch(noKeys(), 1, () => {
          throw new Error("the batch fails");
        }),
      ).rejects.toThrow("the batch fails");
      // Not committed: the writer thread runs them again on their own.
      expect(store.preResults).toBeNull();
      expect(await store.getSetting("with-failed-batch")).toBeNull();
      expect(store.preStatements, "taken by the batch, never left for the next one").toBeNull();
    } finally {
      await store.close();
    }
  });
});
