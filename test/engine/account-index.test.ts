/**
 * SQLite's per-account indexes off the commit path (src/store/sqlite/account-index.ts): every usage and
 * posting is either indexed (seq at or below the mark, one index row) or in the tail (above it), never
 * both and never neither; a commit leaves at most `TALLY_SQLITE_INDEX_TAIL` rows in a tail; reads by
 * account see both parts; and the migration indexes a ledger written before it.
 */
import { describe, expect, it } from "vitest";
import { Engine } from "../../src/ledger/engine.ts";
import { DEFAULT_TAIL_ROWS, tailRowsSetting } from "../../src/store/sqlite/account-index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { cr, fundedAccount, uid, withFreshEngine } from "./harness.ts";

type Db = SqliteStore["db"];
const TABLES = ["usages", "postings"] as const;

/** Each table: its mark, its highest seq, and what is wrong with the index (empty when nothing is). */
function indexState(db: Db) {
  return TABLES.map((tbl) => {
    const n = (sql: string) => Number((db.prepare(sql).get() as { n: bigint | null }).n ?? 0n);
    const mark = n(`SELECT indexed_seq AS n FROM account_index_marks WHERE tbl = '${tbl}'`);
    const top = n(`SELECT MAX(seq) AS n FROM ${tbl}`);
    const problems = {
      missing: n(`SELECT COUNT(*) AS n FROM ${tbl} t WHERE t.seq <= ${mark}
        AND NOT EXISTS (SELECT 1 FROM ${tbl}_by_account x WHERE x.account_id = t.account_id AND x.seq = t.seq)`),
      extra: n(`SELECT COUNT(*) AS n FROM ${tbl}_by_account x WHERE x.seq > ${mark}
        OR NOT EXISTS (SELECT 1 FROM ${tbl} t WHERE t.seq = x.seq AND t.account_id = x.account_id)`),
    };
    return {
      tbl,
      mark,
      top,
      tail: top - mark,
      indexed: n(`SELECT COUNT(*) AS n FROM ${tbl}_by_account`),
      problems,
    };
  });
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
    withFreshEngine("sqlite", async ({ engine, store }) => {
      const db = (store as SqliteStore).db;
      const accounts = await Promise.all(
        [0, 1, 2].map(
          async () => (await fundedAccount(engine, [{ amount: cr(1000), kind: "purchase" }])).account,
        ),
      );
      const sent = new Map<string, string[]>(accounts.map((a) => [a, []]));
      const spent = new Map<string, bigint>(accounts.map((a) => [a, 0n]));
      // Single debits, then batches: commits of every size, so tails cross the threshold at odd places.
      for (let i = 0; i < 23; i++) {
        const account = accounts[i % 3]!;
        const id = uid("use");
        await engine.debit({ id, account_id: account, amount: cr(1), service: "tts" });
        sent.get(account)!.push(id);
        spent.set(account, spent.get(account)! + cr(1));
        const [u, p] = indexState(db);
        expect(u!.tail, "a commit leaves at most 5 usages unindexed").toBeLessThanOrEqual(5);
        expect(p!.tail, "and at most 5 postings").toBeLessThanOrEqual(5);
      }
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
        expect(s.indexed, `${s.tbl}: indexed rows are those up to the mark`).toBeLessThanOrEqual(s.mark);
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

  it("the migration indexes a ledger written before it", async () => {
    await withFreshEngine("sqlite", async ({ engine, store, clock, db: testDb }) => {
      const { account } = await fundedAccount(engine, [{ amount: cr(100), kind: "purchase" }]);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const id = uid("use");
        await engine.debit({ id, account_id: account, amount: cr(1), service: "tts" });
        ids.push(id);
      }
      // Back to the schema before migration 10: the old indexes, no index tables, no mark.
      const db = (store as SqliteStore).db;
      db.exec(`DROP TABLE usages_by_account; DROP TABLE postings_by_account; DROP TABLE account_index_marks;
        CREATE INDEX usages_account ON usages (account_id, seq);
        CREATE INDEX postings_account ON postings (account_id, seq);
        DELETE FROM schema_migrations WHERE version = 10;`);
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
