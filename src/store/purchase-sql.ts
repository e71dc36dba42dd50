import type Database from "better-sqlite3";
import type pg from "pg";

type Row = Record<string, unknown>;

/** The few statements purchases need, written once: `?` placeholders, rows out, changed-row counts. */
export interface Sql {
  readonly dialect: "sqlite" | "postgres";
  all(sql: string, params: unknown[]): Promise<Row[]>;
  run(sql: string, params: unknown[]): Promise<number>;
}

export class SqliteSql implements Sql {
  readonly dialect = "sqlite" as const;
  private readonly stmts = new Map<string, Database.Statement<unknown[], Row>>();
  constructor(private readonly db: Database.Database) {}
  private s(sql: string) {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql) as Database.Statement<unknown[], Row>;
      this.stmts.set(sql, st);
    }
    return st;
  }
  async all(sql: string, params: unknown[]): Promise<Row[]> {
    return this.s(sql).all(...params.map(sqliteValue));
  }
  async run(sql: string, params: unknown[]): Promise<number> {
    return this.s(sql).run(...params.map(sqliteValue)).changes;
  }
}

function sqliteValue(v: unknown): unknown {
  return typeof v === "boolean" ? (v ? 1 : 0) : v;
}

export class PostgresSql implements Sql {
  readonly dialect = "postgres" as const;
  private readonly texts = new Map<string, string>();
  constructor(private readonly pool: pg.Pool) {}
  private t(sql: string): string {
    let text = this.texts.get(sql);
    if (!text) {
      let i = 0;
      text = sql.replace(/\?/g, () => `$${++i}`);
      this.texts.set(sql, text);
    }
    return text;
  }
  private params(params: unknown[]): unknown[] {
    return params.map((v) =>
      typeof v === "bigint" ? v.toString() : typeof v === "boolean" ? (v ? 1 : 0) : v,
    );
  }
  async all(sql: string, params: unknown[]): Promise<Row[]> {
    return (await this.pool.query(this.t(sql), this.params(params))).rows as Row[];
  }
  async run(sql: string, params: unknown[]): Promise<number> {
    return (await this.pool.query(this.t(sql), this.params(params))).rowCount ?? 0;
  }
}
