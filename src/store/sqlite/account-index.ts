/**
 * Per-account indexes of the usages and the journal, kept off the commit path (SQLite only).
 *
 * An index keyed by account puts every new usage and posting at a random place in a B-tree: a batch of
 * 1,000 debits over 1,000 accounts dirtied ~630 leaf pages per index, and those pages were most of what a
 * commit wrote (docs/performance.md). Instead, `usages_by_account` and `postings_by_account` hold
 * `(account_id, seq)` for every row up to a mark (`account_index_marks.indexed_seq`); rows above the mark
 * are the *tail*, read by a scan of the rowid range. Once a tail holds more than `tailRows` rows, it is
 * indexed sorted by account, so each account's leaf is written once per many batches instead of once per
 * batch.
 *
 * Indexing a whole tail in one commit held that commit up for 15–50 ms (8,192 rows over 1,000 accounts:
 * the sort, ~1,000 leaf pages, their WAL write), and every request queued behind it waited: it set the
 * p99 of single debits at half the maximum rate. So a tail is indexed in steps, one per commit, in
 * account order: a merge fixes its range `(indexed_seq, merge_to_seq]`, and each step indexes the range's
 * rows of the next accounts and moves `merged_below` past them. The range's rows sorted by account wait in
 * a temporary (in-memory, per-connection) table, rebuilt from the marks whenever this connection's copy is
 * not of the current merge. A row is indexed when `seq <= indexed_seq`, or when `seq <= merge_to_seq` and
 * its account sorts before `merged_below`; every other row is in the tail. Marks and index rows change in
 * the same transaction, so a reader sees them at one instant: every row is in exactly one of the two.
 */
import type Database from "better-sqlite3";
import { intSetting } from "../../domain/env-setting.ts";

export const ACCOUNT_INDEX_MIGRATION_SQLITE = `
CREATE TABLE usages_by_account (
  account_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE postings_by_account (
  account_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE account_index_marks (tbl TEXT PRIMARY KEY, indexed_seq INTEGER NOT NULL);
INSERT INTO usages_by_account SELECT account_id, seq FROM usages ORDER BY account_id, seq;
INSERT INTO postings_by_account SELECT account_id, seq FROM postings ORDER BY account_id, seq;
INSERT INTO account_index_marks VALUES
  ('usages', (SELECT COALESCE(MAX(seq), 0) FROM usages)),
  ('postings', (SELECT COALESCE(MAX(seq), 0) FROM postings));
DROP INDEX usages_account;
DROP INDEX postings_account;
`;

/** Migration 11: a merge in progress (none: both NULL). */
export const ACCOUNT_INDEX_STEPS_MIGRATION_SQLITE = `
ALTER TABLE account_index_marks ADD COLUMN merge_to_seq INTEGER;
ALTER TABLE account_index_marks ADD COLUMN merged_below TEXT;
`;

/** The per-connection queues of a merge: created when a connection opens (temporary tables are not shared). */
export const MERGE_QUEUE_SQL = `
CREATE TEMP TABLE IF NOT EXISTS merge_queue_meta (tbl TEXT PRIMARY KEY, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, filled_to INTEGER NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS merge_queue_usages (account_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (account_id, seq)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS merge_queue_postings (account_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (account_id, seq)) WITHOUT ROWID;
`;
export type IndexedTable = "usages" | "postings";

/** Rows a tail may hold before a merge indexes them: the default, and its bounds. */
export const DEFAULT_TAIL_ROWS = 8192;
const MAX_TAIL_ROWS = 1_000_000;

/** `TALLY_SQLITE_INDEX_TAIL` when set (tests set it small, so every path runs with both parts). */
export function tailRowsSetting(env: NodeJS.ProcessEnv = process.env): number {
  return intSetting(env, "TALLY_SQLITE_INDEX_TAIL", DEFAULT_TAIL_ROWS, 0, MAX_TAIL_ROWS);
}

const marks = (tbl: IndexedTable, column: string) =>
  `(SELECT ${column} FROM account_index_marks WHERE tbl = '${tbl}')`;

/**
 * One account's rows of `tbl` as a query: the tail scanned, then the indexed part through the index
 * table. `where(seq)` filters rows aliased `t` (`seq` is the column to compare seqs with: the index's in
 * the indexed part, so a cursor is an index range); with `limited`, each part is ordered newest first
 * and stops at a `LIMIT ?`. Parameters, twice: account id, the filter's, then the limit when limited.
 */
export function accountRowsSql(
  tbl: IndexedTable,
  where: (seq: string) => string = () => "",
  limited = false,
): string {
  const part = (seq: string) => {
    const w = where(seq);
    return `${w ? ` AND ${w}` : ""}${limited ? ` ORDER BY ${seq} DESC LIMIT ?` : ""}`;
  };
  // The tail: above the mark, less what a merge in progress has indexed already.
  return `SELECT * FROM (SELECT t.* FROM ${tbl} t WHERE t.seq > ${marks(tbl, "indexed_seq")} AND t.account_id = ?
      AND NOT (t.seq <= ${marks(tbl, "COALESCE(merge_to_seq, 0)")} AND t.account_id < ${marks(tbl, "COALESCE(merged_below, '')")})${part("t.seq")})
  UNION ALL SELECT * FROM (SELECT t.* FROM ${tbl}_by_account x JOIN ${tbl} t ON t.seq = x.seq
    WHERE x.account_id = ?${part("x.seq")})`;
}

type Prepare = (sql: string) => Database.Statement<unknown[], Record<string, unknown>>;

/** A merge is indexed in at least this many steps (the fill of its queue as many again). */
const STEPS_PER_MERGE = 16;

/**
 * When index steps run. `idle`: in a transaction of its own while the writer has nothing else to do (the
 * writer thread, between batches): merges start once a tail passes `tailRows`, and each step is 1/16 of
 * that. `inline`: inside a batch's commit, only once a tail has passed twice `tailRows` (the writer has had
 * no idle moment: a process without a writer thread, or a writer kept busy), with steps of at least four
 * times the rows the commit added, so a merge always catches up with the rows arriving meanwhile.
 */
export type IndexMode = "idle" | "inline";

/**
 * One step of each table's merge, inside the caller's write transaction (see `IndexMode` for when it acts).
 * `added`: the rows this commit wrote to each table. Returns the rows indexed, and whether work is left
 * for the idle steps (a merge in progress, or a tail past `tailRows`).
 */
export function indexTails(
  prepare: Prepare,
  tailRows: number,
  added: Record<IndexedTable, number>,
  mode: IndexMode,
): { indexed: number; more: boolean } {
  let indexed = 0;
  let more = false;
  for (const tbl of ["usages", "postings"] as const) {
    const row = prepare(
      `SELECT indexed_seq AS m, merge_to_seq AS to_seq, merged_below AS below, (SELECT MAX(seq) FROM ${tbl}) AS top
       FROM account_index_marks WHERE tbl = ?`,
    ).get(tbl)!;
    const from = BigInt(row.m as bigint);
    const top = row.top === null ? from : BigInt(row.top as bigint);
    let to = row.to_seq === null ? null : BigInt(row.to_seq as bigint);
    let below = (row.below as string | null) ?? "";
    // Rows above the mark: the tail, plus a merge's rows not yet indexed (an upper bound of the unindexed).
    const above = top - from;
    const behind = above > BigInt(2 * tailRows);
    if (mode === "inline" && !behind) {
      more ||= to !== null || above > BigInt(tailRows);
      continue;
    }
    if (to === null) {
      if (above <= BigInt(tailRows)) continue;
      to = top;
      below = "";
      prepare("UPDATE account_index_marks SET merge_to_seq = ?, merged_below = '' WHERE tbl = ?").run(
        to,
        tbl,
      );
    }
    const floor = Math.max(1, Math.ceil(tailRows / STEPS_PER_MERGE));
    const step = mode === "idle" ? floor : Math.max(floor, 4 * added[tbl]);
    // First the queue fills, a step at a time; then each step indexes from it.
    if (!fillQueue(prepare, tbl, from, to, step)) {
      more = true;
      continue;
    }
    const queue = `temp.merge_queue_${tbl}`;
    // Whole accounts from `below`, through the one holding the step's last row: at least `step` rows.
    const last = prepare(
      `SELECT account_id FROM ${queue} WHERE account_id >= ? ORDER BY account_id, seq LIMIT 1 OFFSET ?`,
    ).get(below, step - 1)?.account_id as string | undefined;
    const next =
      last === undefined
        ? null
        : (prepare(`SELECT MIN(account_id) AS a FROM ${queue} WHERE account_id > ?`).get(last)!.a as
            string | null);
    if (next === null) {
      indexed += prepare(
        `INSERT INTO ${tbl}_by_account (account_id, seq) SELECT account_id, seq FROM ${queue} WHERE account_id >= ?`,
      ).run(below).changes;
      prepare(
        "UPDATE account_index_marks SET indexed_seq = merge_to_seq, merge_to_seq = NULL, merged_below = NULL WHERE tbl = ?",
      ).run(tbl);
      prepare(`DELETE FROM ${queue}`).run();
      prepare("DELETE FROM temp.merge_queue_meta WHERE tbl = ?").run(tbl);
      more ||= top - to > BigInt(tailRows);
    } else {
      more = true;
      indexed += prepare(
        `INSERT INTO ${tbl}_by_account (account_id, seq)
         SELECT account_id, seq FROM ${queue} WHERE account_id >= ? AND account_id < ?`,
      ).run(below, next).changes;
      prepare("UPDATE account_index_marks SET merged_below = ? WHERE tbl = ?").run(next, tbl);
    }
  }
  return { indexed, more };
}

/**
 * Fills this connection's queue with the merge's rows, sorted by account (its primary key), `rows` seqs
 * per call; true once it holds the whole range. Kept across commits while it is of the same merge; its
 * description rolls back with it, so neither a failed commit nor another process's progress can leave a
 * queue that claims rows it lacks.
 */
function fillQueue(prepare: Prepare, tbl: IndexedTable, from: bigint, to: bigint, rows: number): boolean {
  const meta = prepare("SELECT from_seq, to_seq, filled_to FROM temp.merge_queue_meta WHERE tbl = ?").get(
    tbl,
  );
  let filled = from;
  if (meta && BigInt(meta.from_seq as bigint) === from && BigInt(meta.to_seq as bigint) === to) {
    filled = BigInt(meta.filled_to as bigint);
    if (filled >= to) return true;
  } else prepare(`DELETE FROM temp.merge_queue_${tbl}`).run();
  const upto = filled + BigInt(rows) < to ? filled + BigInt(rows) : to;
  prepare(
    `INSERT INTO temp.merge_queue_${tbl} (account_id, seq) SELECT account_id, seq FROM ${tbl} WHERE seq > ? AND seq <= ?`,
  ).run(filled, upto);
  prepare(
    `INSERT INTO temp.merge_queue_meta (tbl, from_seq, to_seq, filled_to) VALUES (?, ?, ?, ?)
     ON CONFLICT (tbl) DO UPDATE SET from_seq = excluded.from_seq, to_seq = excluded.to_seq, filled_to = excluded.filled_to`,
  ).run(tbl, from, to, upto);
  return false;
}
