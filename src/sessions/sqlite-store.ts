import type Database from "better-sqlite3";
import type { SqliteStore } from "../store/sqlite/store.ts";
import { decodeIdCursor, encodeCursor } from "../store/types.ts";
import {
  decodeSession,
  encodeSession,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
} from "./types.ts";

type Row = { data: string };

const UPDATE_SESSION =
  "UPDATE sessions SET status = ?, valid_until = ?, version = ?, data = ? WHERE id = ? AND version = ?";

/**
 * Sessions in the SQLite store: reads on its connection, writes through `writeSql` (with a writer thread
 * they join its commits and never block the event loop). The concurrency check and the insert are one
 * statement, so one writer at a time sees the count it inserts against.
 */
export class SqliteSessionStore implements SessionStore {
  private readonly stmts = new Map<string, Database.Statement>();
  private pending: {
    s: SessionRecord;
    expectedVersion: number;
    resolve: (ok: boolean) => void;
    reject: (err: unknown) => void;
  }[] = [];

  private readonly db: Database.Database;

  constructor(private readonly store: SqliteStore) {
    this.db = store.db;
  }

  private s(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  async insert(s: SessionRecord, maxConcurrent: number | null): Promise<boolean> {
    const { changes } = await this.store.writeSql(
      `INSERT INTO sessions (id, account_id, status, valid_until, version, created_at, data)
       SELECT ?, ?, ?, ?, ?, ?, ?
       WHERE ? IS NULL OR (SELECT COUNT(*) FROM sessions WHERE account_id = ? AND status = 'active') < ?`,
      [
        s.id,
        s.account_id,
        s.status,
        s.valid_until,
        s.version,
        s.created_at,
        encodeSession(s),
        maxConcurrent,
        s.account_id,
        maxConcurrent,
      ],
    );
    return changes === 1;
  }

  private count(accountId: string): number {
    const r = this.s("SELECT COUNT(*) AS n FROM sessions WHERE account_id = ? AND status = 'active'").get(
      accountId,
    ) as { n: bigint | number };
    return Number(r.n);
  }

  async countActive(accountId: string): Promise<number> {
    return this.count(accountId);
  }

  async get(id: string): Promise<SessionRecord | null> {
    const r = this.s("SELECT data FROM sessions WHERE id = ?").get(id) as Row | undefined;
    return r ? decodeSession(r.data) : null;
  }

  /**
   * A conditional write (the version it was read at). Thousands of live sessions update every few
   * seconds: through a writer thread, the updates that arrive together share one commit; without one,
   * those of one turn of the event loop are written in one transaction here.
   */
  update(s: SessionRecord, expectedVersion: number): Promise<boolean> {
    if (this.store.writer)
      return this.store
        .writeSql(UPDATE_SESSION, [
          s.status,
          s.valid_until,
          s.version,
          encodeSession(s),
          s.id,
          expectedVersion,
        ])
        .then((r) => r.changes === 1);
    return new Promise((resolve, reject) => {
      this.pending.push({ s, expectedVersion, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const results = this.store.runStatements(
      batch.map((u) => ({
        sql: UPDATE_SESSION,
        params: [u.s.status, u.s.valid_until, u.s.version, encodeSession(u.s), u.s.id, u.expectedVersion],
        mode: "run" as const,
      })),
    );
    batch.forEach((u, i) => {
      const r = results[i]!;
      if (r.ok) u.resolve(r.result.changes === 1);
      else u.reject(r.error);
    });
  }

  async listActive(accountId: string): Promise<SessionRecord[]> {
    const rows = this.s(
      "SELECT data FROM sessions WHERE account_id = ? AND status = 'active' ORDER BY id",
    ).all(accountId) as Row[];
    return rows.map((r) => decodeSession(r.data));
  }

  async listDueOf(accountId: string, now: number): Promise<SessionRecord[]> {
    const rows = this.s(
      "SELECT data FROM sessions WHERE account_id = ? AND status = 'active' AND valid_until <= ? ORDER BY id LIMIT 1000",
    ).all(accountId, now) as Row[];
    return rows.map((r) => decodeSession(r.data));
  }

  async listDue(now: number, limit: number): Promise<SessionRecord[]> {
    const rows = this.s(
      "SELECT data FROM sessions WHERE status = 'active' AND valid_until <= ? ORDER BY valid_until LIMIT ?",
    ).all(now, limit) as Row[];
    return rows.map((r) => decodeSession(r.data));
  }

  async list(q: SessionQuery): Promise<{ data: SessionRecord[]; next_cursor: string | null }> {
    const after = decodeIdCursor(q.cursor) ?? "";
    const rows = (
      q.status
        ? this.s(
            "SELECT data FROM sessions WHERE account_id = ? AND status = ? AND id > ? ORDER BY id LIMIT ?",
          ).all(q.account_id, q.status, after, q.limit + 1)
        : this.s("SELECT data FROM sessions WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?").all(
            q.account_id,
            after,
            q.limit + 1,
          )
    ) as Row[];
    const data = rows.slice(0, q.limit).map((r) => decodeSession(r.data));
    return { data, next_cursor: rows.length > q.limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }
}
