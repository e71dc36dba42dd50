/**
 * SQLite's per-account indexes off the commit path (src/store/sqlite/account-index.ts): every usage and
 * posting is either indexed or in the tail, never both and never neither, also while a merge is half
 * done; the writer thread indexes between batches, and commits do it themselves once a tail passes twice
 * `TALLY_SQLITE_INDEX_TAIL`; reads by account see both parts; a merge left half done by one connection is
 * finished by another; and the migrations index a ledger written before them.
 */
import { describe, expect, it } from "vitest";
import { Engine } from "../../src/ledger/engine.ts";
import { DEFAULT_TAIL_ROWS, indexTails, tailRowsSetting } from "../../src/store/sqlite/account-index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { cr, fundedAccount, uid, withFreshEngine, type EngineCtx } from "./harness.ts";

type Db = SqliteStore["db"];
const TABLES = ["usages", "postings"] as const;

/**
 * Each table: its marks, its highest seq, the rows not indexed, and what is wrong with the index (empty
 * when nothing is). A row is indexed when at or below the mark, or inside a merge's range with an account
 * sorting before `merged_below`.
 */
function indexState(db: Db) {
  // One read transaction: one snapshot, while the writer thread may be stepping a merge.
  return db.transaction(() =>
    TABLES.map((tbl) => {
      const n = (sql: string) => Number((db.prepare(sql).get() as { n: bigint | null }).n ?? 0n);
      const m = db
        .prepare("SELECT indexed_seq, merge_to_seq, merged_below FROM account_index_marks WHERE tbl = ?")
        .get(tbl) as { indexed_seq: bigint; merge_to_seq: bigint | null; merged_below: string | null };
      const mark = Number(m.indexed_seq);
      const mergeTo = m.merge_to_seq === null ? 0 : Number(m.merge_to_seq);
      const below = (m.merged_below ?? "").replaceAll("'", "''");
      const isIndexed = `(t.seq <= ${mark} OR (t.seq <= ${mergeTo} AND t.account_id < '${below}'))`;
      const top = n(`SELECT MAX(seq) AS n FROM ${tbl}`);
      const problems = {
        missing: n(`SELECT COUNT(*) AS n FROM ${tbl} t WHERE ${isIndexed}
        AND NOT EXISTS (SELECT 1 FROM ${tbl}_by_account x WHERE x.account_id = t.account_id AND x.seq = t.seq)`),
        extra: n(`SELECT COUNT(*) AS n FROM ${tbl}_by_account x WHERE NOT EXISTS
        (SELECT 1 FROM ${tbl} t WHERE t.seq = x.seq AND t.account_id = x.account_id AND ${isIndexed})`),
      };
      return {
        tbl,
        mark,
        merging: m.merge_to_seq !== null,
        top,
        tail: n(`SELECT COUNT(*) AS n FROM ${tbl} t WHERE NOT ${isIndexed}`),
        indexed: n(`SELECT COUNT(*) AS n FROM ${tbl}_by_account`),
        problems,
      };
    }),
  )();
}

/**
 * A fresh SQLite ledger with an engine that commits on the calling thread: no writer thread, so no index
 * steps between batches, and each commit's own steps are all there is (deterministic merges).
 */
function withInlineEngine(
  fn: (ctx: {
    engine: Engine;
    store: SqliteStore;
    clock: EngineCtx["clock"];
    db: EngineCtx["db"];
  }) => Promise<void>,
): Promise<void> {
  return withFreshEngine("sqlite", async ({ clock, db }) => {
    const store = (await db.open()) as SqliteStore;
    try {
      await fn({ engine: new Engine(store, { clock, sqliteWriter: "inline" }), store, clock, db });
    } finally {
      await store.close();
    }
  });
}

/** One idle step of the merges on `db`. */
function indexTailsOn(db: Db) {
  return indexTails((sql) => db.prepare(sql) as never, 5, { usages: 0, postings: 0 }, "idle");
}

async function allUsageIds(engine: Engine, account: string, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await engine.listUsages({ account_id: account, limit, ...(cursor ? { cursor } : {}) });
    ids.push(...page.data.map((u) => u.id));
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return ids;
}

describe("SQLite per-account indexes off the commit path", () => {
  it("the tests run with a small tail, so every read crosses both parts", () => {
    expect(tailRowsSetting()).toBe(5);
    expect(tailRowsSetting({})).toBe(DEFAULT_TAIL_ROWS);
    for (const bad of ["-1", "1.5", "lots", "2000000"])
      expect(() => tailRowsSetting({ TALLY_SQLITE_INDEX_TAIL: bad }), bad).toThrow(/TALLY_SQLITE_INDEX_TAIL/);
  });

  it("every row is indexed or in the tail, exactly once; reads by account see both parts", () =>
    withInlineEngine(async ({ engine, store }) => {
      const db = (store as SqliteStore).db;
      const accounts = await Promise.all(
        [0, 1, 2].map(
          async () => (await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }])).account,
        ),
      );
      const sent = new Map<string, string[]>(accounts.map((a) => [a, []]));
      const spent = new Map<string, bigint>(accounts.map((a) => [a, 0n]));
      let sawMerging = false;
      // Single debits, then batches: commits of every size, so tails cross the threshold at odd places.
      for (let i = 0; i < 23; i++) {
        const account = accounts[i % 3]!;
        const id = uid("use");
        await engine.debit({ id, account_id: account, amount: cr(1), service: "tts" });
        sent.get(account)!.push(id);
        spent.set(account, spent.get(account)! + cr(1));
        const [u, p] = indexState(db);
        // With no writer thread to index between batches, the commits index past twice the threshold: a
        // tail stays within 3 × 5 rows plus three commits' worth (23 debits without any merge would leave
        // 23 usages and 46 postings unindexed).
        expect(u!.tail, "usages unindexed").toBeLessThanOrEqual(3 * 5 + 3 * 1);
        expect(p!.tail, "postings unindexed").toBeLessThanOrEqual(3 * 5 + 3 * 2);
        if (u!.merging || p!.merging) sawMerging = true;
        // Mid-merge too, each account's history is every row once.
        for (const a of accounts)
          expect(await allUsageIds(engine, a, 2)).toEqual([...sent.get(a)!].reverse());
      }
      expect(sawMerging, "some merge took several commits").toBe(true);
      for (let b = 0; b < 3; b++) {
        const batch = Array.from({ length: 7 + b }, (_, i) => ({
          id: uid("use"),
          account_id: accounts[(i * 7 + b) % 3]!,
          amount: cr(0.5),
          service: "stt",
        }));
        const results = await engine.debitBatch(batch);
        expect(results.every((r) => r.ok)).toBe(true);
        for (const d of batch) {
          sent.get(d.account_id)!.push(d.id);
          spent.set(d.account_id, spent.get(d.account_id)! + d.amount);
        }
      }
      const state = indexState(db);
      for (const s of state) {
        expect(s.problems, s.tbl).toEqual({ missing: 0, extra: 0 });
        expect(s.indexed, `${s.tbl}: some rows are indexed`).toBeGreaterThan(0);
        expect(s.indexed + s.tail, `${s.tbl}: every row once`).toBe(s.top);
      }
      for (const account of accounts) {
        const want = [...sent.get(account)!].reverse();
        expect(await allUsageIds(engine, account, 3), "newest first, paged").toEqual(want);
        expect(await allUsageIds(engine, account, 100), "one page").toEqual(want);
        expect((await engine.balance(account)).available).toBe(cr(1000) - spent.get(account)!);
        const totals = await store.accountTotals(account);
        expect(totals.consumed, "consumed, summed over both parts of the journal").toBe(spent.get(account)!);
        const entries = await engine.listEntries({ account_id: account, limit: 1000 });
        expect(entries.data.filter((e) => e.ledger === "consumed").length).toBe(sent.get(account)!.length);
      }
      expect((await engine.audit()).ok).toBe(true);
    }));

  it("the writer thread indexes between batches; without idle moments, commits index past twice the threshold", () =>
    withFreshEngine("sqlite", async ({ engine, store, clock, db: testDb }) => {
      const accounts = await Promise.all(
        [0, 1, 2, 3, 4].map(
          async () => (await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }])).account,
        ),
      );
      // A batch of 30 leaves 30 usages and 60 postings above the marks; the idle writer indexes them.
      const batch = accounts.flatMap((a) =>
        Array.from({ length: 6 }, () => ({ id: uid("use"), account_id: a, amount: cr(1), service: "tts" })),
      );
      expect((await engine.debitBatch(batch)).every((r) => r.ok)).toBe(true);
      const db = (store as SqliteStore).db;
      let state = indexState(db);
      for (let i = 0; i < 100 && state.some((s) => s.merging || s.tail > 5); i++) {
        await new Promise((r) => setTimeout(r, 10));
        state = indexState(db);
      }
      for (const s of state) {
        expect(s.merging, `${s.tbl}: no merge left`).toBe(false);
        expect(s.tail, `${s.tbl}: tail within the threshold`).toBeLessThanOrEqual(5);
        expect(s.problems, s.tbl).toEqual({ missing: 0, extra: 0 });
      }
      // An engine that commits inline never idles: its commits index once a tail passes 10.
      const other = await testDb.open();
      try {
        const inline = new Engine(other, { clock, sqliteWriter: "inline" });
        const odb = (other as SqliteStore).db;
        for (let i = 0; i < 40; i++) {
          await inline.debit({ id: uid("use"), account_id: accounts[i % 5]!, amount: cr(1), service: "tts" });
          const [u, p] = indexState(odb);
          expect(u!.tail).toBeLessThanOrEqual(3 * 5 + 3 * 1);
          expect(p!.tail).toBeLessThanOrEqual(3 * 5 + 3 * 2);
          expect(u!.problems).toEqual({ missing: 0, extra: 0 });
          expect(p!.problems).toEqual({ missing: 0, extra: 0 });
        }
        expect((await inline.audit()).ok).toBe(true);
      } finally {
        await other.close();
      }
    }));

  it("a merge left half done is finished by another connection; a commit that fails undoes its step", () =>
    withInlineEngine(async ({ engine, store, clock, db: testDb }) => {
      const db = (store as SqliteStore).db;
      const accounts = await Promise.all(
        [0, 1, 2, 3].map(
          async () => (await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }])).account,
        ),
      );
      const sent = new Map<string, string[]>(accounts.map((a) => [a, []]));
      const debit = async (e: Engine, i: number) => {
        const account = accounts[i % 4]!;
        const id = uid("use");
        await e.debit({ id, account_id: account, amount: cr(1), service: "tts" });
        sent.get(account)!.push(id);
      };
      // Single debits until the usages are mid-merge on this engine's connection.
      let i = 0;
      while (!indexState(db)[0]!.merging) await debit(engine, i++);
      // Another connection (another process, or a writer thread that was replaced) carries on from the marks.
      const other = await testDb.open();
      try {
        const e2 = new Engine(other, { clock, sqliteWriter: "inline" });
        const odb = (other as SqliteStore).db;
        // A step that rolls back with its commit: the queue it built goes with it, the marks stay.
        const before = indexState(odb);
        expect(() =>
          odb.transaction(() => {
            indexTailsOn(odb);
            throw new Error("the commit fails");
          })(),
        ).toThrow("the commit fails");
        expect(indexState(odb)).toEqual(before);
        for (let k = 0; k < 30; k++) await debit(k % 2 === 0 ? e2 : engine, i++);
        for (const s of indexState(odb)) {
          expect(s.problems, s.tbl).toEqual({ missing: 0, extra: 0 });
          expect(s.indexed + s.tail, s.tbl).toBe(s.top);
        }
        for (const a of accounts) {
          const want = [...sent.get(a)!].reverse();
          expect(await allUsageIds(e2, a, 3)).toEqual(want);
          expect(await allUsageIds(engine, a, 3)).toEqual(want);
        }
        expect((await e2.audit()).ok).toBe(true);
      } finally {
        await other.close();
      }
    }));

  it("the migration indexes a ledger written before it", async () => {
    await withFreshEngine("sqlite", async ({ engine, store, clock, db: testDb }) => {
      const { account } = await fundedAccount(engine, [{ amount: cr(100), kind: "purchase" }]);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const id = uid("use");
        await engine.debit({ id, account_id: account, amount: cr(1), service: "tts" });
        ids.push(id);
      }
      // Back to the schema before migration 10: the old indexes, no index tables, no marks.
      const db = (store as SqliteStore).db;
      db.exec(`DROP TABLE usages_by_account; DROP TABLE postings_by_account; DROP TABLE account_index_marks;
        CREATE INDEX usages_account ON usages (account_id, seq);
        CREATE INDEX postings_account ON postings (account_id, seq);
        DELETE FROM schema_migrations WHERE version >= 10;`);
      const reopened = await testDb.open();
      try {
        const rdb = (reopened as SqliteStore).db;
        for (const s of indexState(rdb)) {
          expect(s.problems, s.tbl).toEqual({ missing: 0, extra: 0 });
          expect(s.tail, `${s.tbl}: everything written before is indexed`).toBe(0);
          expect(s.indexed, s.tbl).toBe(
            Number((rdb.prepare(`SELECT COUNT(*) AS n FROM ${s.tbl}`).get() as { n: bigint }).n),
          );
        }
        const old = rdb
          .prepare("SELECT name FROM sqlite_master WHERE name IN ('usages_account', 'postings_account')")
          .all();
        expect(old).toEqual([]);
        const e2 = new Engine(reopened, { clock, sqliteWriter: "inline" });
        expect(await allUsageIds(e2, account, 5)).toEqual([...ids].reverse());
        expect((await e2.balance(account)).available).toBe(cr(88));
      } finally {
        await reopened.close();
      }
    });
  });
});
