/**
 * A tiny dialect-neutral query runner for the alerts, webhooks, budgets and analytics tables: `?` placeholders
 * (numbered for PostgreSQL), rows as plain objects, integers read back through `int`/`big`. Every write these
 * modules make is one statement (conditional updates, INSERT … ON CONFLICT), so no transaction is needed
 * and nothing interleaves with the SQLite store's synchronous ledger transactions.
 */
import type Database from "better-sqlite3";
import type pg from "pg";
import type { SqliteStore } from "../store/sqlite/store.ts";
import type { PostgresStore } from "../store/postgres/store.ts";
import type { Dialect, Store } from "../store/types.ts";

export type Row = Record<string, unknown>;

export interface Sql {
  readonly dialect: Dialect;
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  one(sql: string, params?: unknown[]): Promise<Row | null>;
  /** Rows changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

class SqliteSql implements Sql {
  readonly dialect = "sqlite" as const;
  private readonly stmts = new Map<string, Database.Statement<unknown[], Row>>();
  private readonly db: Database.Database;
  /** Writes go through the store's `writeSql`: with a writer thread, they join its commits. */
  constructor(private readonly store: SqliteStore) {
    this.db = store.db;
  }
  private st(sql: string) {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql) as Database.Statement<unknown[], Row>));
    return s;
  }
  async all(sql: string, params: unknown[] = []) {
    return this.st(sql).all(...params.map(lite));
  }
  async one(sql: string, params: unknown[] = []) {
    return this.st(sql).get(...params.map(lite)) ?? null;
  }
  async run(sql: string, params: unknown[] = []) {
    return (await this.store.writeSql(sql, params.map(lite))).changes;
  }
}

/** SQLite has no booleans; bigint binds as INTEGER. */
function lite(v: unknown): unknown {
  return typeof v === "boolean" ? (v ? 1 : 0) : v;
}

class PgSql implements Sql {
  readonly dialect = "postgres" as const;
  private readonly texts = new Map<string, string>();
  constructor(private readonly pool: pg.Pool) {}
  private text(sql: string): string {
    let t = this.texts.get(sql);
    if (!t) {
      let n = 0;
      t = sql.replace(/\?/g, () => `$${++n}`);
      this.texts.set(sql, t);
    }
    return t;
  }
  private args(params: unknown[]) {
    return params.map((v) => (typeof v === "bigint" ? v.toString() : v));
  }
  async all(sql: string, params: unknown[] = []) {
    return (await this.pool.query(this.text(sql), this.args(params))).rows as Row[];
  }
  async one(sql: string, params: unknown[] = []) {
    return ((await this.pool.query(this.text(sql), this.args(params))).rows[0] as Row | undefined) ?? null;
  }
  async run(sql: string, params: unknown[] = []) {
    return (await this.pool.query(this.text(sql), this.args(params))).rowCount ?? 0;
  }
}

const cache = new WeakMap<Store, Sql>();

export function sqlFor(store: Store): Sql {
  let s = cache.get(store);
  if (!s) {
    s =
      store.dialect === "sqlite"
        ? new SqliteSql(store as SqliteStore)
        : new PgSql((store as PostgresStore).pool);
    cache.set(store, s);
  }
  return s;
}

export const int = (v: unknown): number => Number(v);
export const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const big = (v: unknown): bigint =>
  typeof v === "bigint" ? v : BigInt(typeof v === "number" ? Math.trunc(v) : String(v ?? 0));
export const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
