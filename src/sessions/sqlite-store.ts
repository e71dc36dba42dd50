import type Database from "better-sqlite3";
import { decodeIdCursor, encodeCursor } from "../store/types.ts";
import {
  decodeSession,
  encodeSession,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
} from "./types.ts";

type Row = { data: string };

/** Sessions on the SQLite store's connection (one writer: the count and the insert share a transaction). */
export class SqliteSessionStore implements SessionStore {
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  private s(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  async insert(s: SessionRecord, maxConcurrent: number | null): Promise<boolean> {
    const tx = this.db.transaction(() => {
      if (maxConcurrent !== null && this.count(s.account_id) >= maxConcurrent) return false;
      this.s(
        "INSERT INTO sessions (id, account_id, status, valid_until, version, created_at, data) VALUES (?,?,?,?,?,?,?)",
      ).run(s.id, s.account_id, s.status, s.valid_until, s.version, s.created_at, encodeSession(s));
      return true;
    });
    return tx.immediate();
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

  async update(s: SessionRecord, expectedVersion: number): Promise<boolean> {
    const r = this.s(
      "UPDATE sessions SET status = ?, valid_until = ?, version = ?, data = ? WHERE id = ? AND version = ?",
    ).run(s.status, s.valid_until, s.version, encodeSession(s), s.id, expectedVersion);
    return r.changes === 1;
  }

  async listActive(accountId: string): Promise<SessionRecord[]> {
    const rows = this.s(
      "SELECT data FROM sessions WHERE account_id = ? AND status = 'active' ORDER BY id",
    ).all(accountId) as Row[];
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
