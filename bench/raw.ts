import Database from "better-sqlite3";
import pg from "pg";
import { withProgress } from "./util.ts";

/**
 * The raw ceiling of a store: plain inserts into a scratch table (no indexes beyond the primary key, no
 * reads), N rows per durable transaction, with the same durability settings the engine's store uses.
 */
export interface RawScenario {
  rowsPerTxn: number;
  /** Connections inserting in parallel (PostgreSQL; SQLite has one writer). */
  connections: number;
  maxSeconds: number;
  maxRows: number;
}

export interface RawResult {
  scenario: RawScenario;
  rows: number;
  txns: number;
  seconds: number;
  rowsPerSecond: number;
  txnsPerSecond: number;
}

const SCRATCH_COLUMNS =
  "id TEXT NOT NULL, account_id TEXT NOT NULL, amount BIGINT NOT NULL, at BIGINT NOT NULL";

/** Enough commits to fill the WAL to its 1,000-page checkpoint (a row is about 50 bytes of a 4 KiB page). */
function warmupCommits(rowsPerTxn: number): number {
  return Math.ceil(1_100 / Math.min(1_000, Math.ceil(rowsPerTxn / 60)));
}

function result(scenario: RawScenario, rows: number, txns: number, seconds: number): RawResult {
  return { scenario, rows, txns, seconds, rowsPerSecond: rows / seconds, txnsPerSecond: txns / seconds };
}

/** SQLite: its own file, WAL and synchronous=FULL like the store, one BEGIN IMMEDIATE transaction per commit. */
export async function rawSqlite(label: string, path: string, sc: RawScenario): Promise<RawResult> {
  const db = new Database(path);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(`CREATE TABLE IF NOT EXISTS scratch (seq INTEGER PRIMARY KEY, ${SCRATCH_COLUMNS})`);
    const insert = db.prepare("INSERT INTO scratch (id, account_id, amount, at) VALUES (?, ?, ?, ?)");
    let rows = 0;
    let txns = 0;
    const txn = db.transaction((n: number) => {
      const at = Date.now();
      for (let i = 0; i < n; i++)
        insert.run(`evt-${sc.rowsPerTxn}-${rows + i}`, `acct-${(rows + i) % 1000}`, 1000, at);
    });
    // Warm-up (not timed) past the first WAL checkpoint: until then every commit also grows the WAL file.
    for (let k = 0; k < warmupCommits(sc.rowsPerTxn); k++) txn.immediate(sc.rowsPerTxn);
    const t0 = performance.now();
    const deadline = t0 + sc.maxSeconds * 1000;
    await withProgress(
      label,
      () => rows,
      sc.maxRows,
      async () => {
        while (rows < sc.maxRows && performance.now() < deadline) {
          // Let the progress timer run now and then: better-sqlite3 blocks the event loop.
          for (let k = 0; k < 50 && rows < sc.maxRows; k++) {
            txn.immediate(sc.rowsPerTxn);
            rows += sc.rowsPerTxn;
            txns++;
          }
          await new Promise((r) => setImmediate(r));
        }
      },
    );
    return result(sc, rows, txns, (performance.now() - t0) / 1000);
  } finally {
    db.close();
  }
}

/**
 * PostgreSQL: default durability (synchronous_commit as the server has it), each transaction one
 * autocommitted statement — a single-row INSERT, or an INSERT … SELECT FROM unnest() of N rows.
 */
export async function rawPostgres(label: string, url: string, sc: RawScenario): Promise<RawResult> {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`CREATE TABLE IF NOT EXISTS scratch (seq BIGSERIAL PRIMARY KEY, ${SCRATCH_COLUMNS})`);
  await setup.end();
  const clients = await Promise.all(
    Array.from({ length: sc.connections }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  const insertOnce = async (c: pg.Client, base: number) => {
    const at = Date.now();
    if (sc.rowsPerTxn === 1) {
      await c.query({
        name: "raw-insert-1",
        text: "INSERT INTO scratch (id, account_id, amount, at) VALUES ($1, $2, $3, $4)",
        values: [`evt-1-${base}`, `acct-${base % 1000}`, 1000, at],
      });
      return;
    }
    const ids: string[] = [];
    const accounts: string[] = [];
    const amounts: number[] = [];
    const ats: number[] = [];
    for (let i = 0; i < sc.rowsPerTxn; i++) {
      ids.push(`evt-${sc.rowsPerTxn}-${base + i}`);
      accounts.push(`acct-${(base + i) % 1000}`);
      amounts.push(1000);
      ats.push(at);
    }
    await c.query({
      name: "raw-insert-n",
      text: `INSERT INTO scratch (id, account_id, amount, at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])`,
      values: [ids, accounts, amounts, ats],
    });
  };
  // Warm-up (not timed): prepared statements, first pages of the table.
  await Promise.all(
    clients.map(async (c) => {
      for (let k = 0; k < (sc.rowsPerTxn === 1 ? 200 : 5); k++) await insertOnce(c, -1);
    }),
  );
  let rows = 0;
  let txns = 0;
  let issued = 0;
  const t0 = performance.now();
  const deadline = t0 + sc.maxSeconds * 1000;
  try {
    const worker = async (c: pg.Client) => {
      while (issued < sc.maxRows && performance.now() < deadline) {
        const base = issued;
        issued += sc.rowsPerTxn;
        await insertOnce(c, base);
        rows += sc.rowsPerTxn;
        txns++;
      }
    };
    await withProgress(
      label,
      () => rows,
      sc.maxRows,
      () => Promise.all(clients.map(worker)),
    );
    return result(sc, rows, txns, (performance.now() - t0) / 1000);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}
