/**
 * Per-account indexes of the usages and the journal, kept off the commit path (SQLite only).
 *
 * An index keyed by account puts every new usage and posting at a random place in a B-tree: a batch of
 * 1,000 debits over 1,000 accounts dirtied ~630 leaf pages per index, and those pages were most of what a
 * commit wrote (docs/performance.md). Instead, `usages_by_account` and `postings_by_account` hold
 * `(account_id, seq)` for every row up to a mark (`account_index_marks.indexed_seq`); rows above the mark
 * are the *tail*, read by a scan of the rowid range. A commit that leaves more than `tailRows` rows in a
 * tail indexes the whole tail, sorted by account: each account's leaf is then written once per many
 * batches instead of once per batch. The mark moves in the same transaction as the rows it covers, so a
 * reader sees index, mark and tail at one instant: every row is in exactly one of the two.
 */
import type Database from "better-sqlite3";

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

export type IndexedTable = "usages" | "postings";

/** Rows a tail may hold before the commit that grows past it indexes them: the default, and its bounds. */
export const DEFAULT_TAIL_ROWS = 8192;
const MAX_TAIL_ROWS = 1_000_000;

/** `TALLY_SQLITE_INDEX_TAIL` when set (tests set it small, so every path runs with both parts). */
export function tailRowsSetting(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TALLY_SQLITE_INDEX_TAIL;
  if (raw === undefined || raw === "") return DEFAULT_TAIL_ROWS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > MAX_TAIL_ROWS)
    throw new Error(`TALLY_SQLITE_INDEX_TAIL must be an integer from 0 to ${MAX_TAIL_ROWS}, not ${raw}`);
  return n;
}

const mark = (tbl: IndexedTable) => `(SELECT indexed_seq FROM account_index_marks WHERE tbl = '${tbl}')`;

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
  return `SELECT * FROM (SELECT t.* FROM ${tbl} t WHERE t.seq > ${mark(tbl)} AND t.account_id = ?${part("t.seq")})
  UNION ALL SELECT * FROM (SELECT t.* FROM ${tbl}_by_account x JOIN ${tbl} t ON t.seq = x.seq
    WHERE x.account_id = ?${part("x.seq")})`;
}

type Prepare = (sql: string) => Database.Statement<unknown[], Record<string, unknown>>;

/**
 * Indexes a tail that has grown past `tailRows`, inside the caller's write transaction. Returns the rows
 * it indexed (0 when every tail was short enough).
 */
export function indexTails(prepare: Prepare, tailRows: number): number {
  let indexed = 0;
  for (const tbl of ["usages", "postings"] as const) {
    const row = prepare(`SELECT ${mark(tbl)} AS m, (SELECT MAX(seq) FROM ${tbl}) AS top`).get()!;
    const from = BigInt(row.m as bigint);
    const to = row.top === null ? from : BigInt(row.top as bigint);
    if (to - from <= BigInt(tailRows)) continue;
    indexed += prepare(
      `INSERT INTO ${tbl}_by_account (account_id, seq)
       SELECT account_id, seq FROM ${tbl} WHERE seq > ? AND seq <= ? ORDER BY account_id, seq`,
    ).run(from, to).changes;
    prepare("UPDATE account_index_marks SET indexed_seq = ? WHERE tbl = ?").run(to, tbl);
  }
  return indexed;
}
