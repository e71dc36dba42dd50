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
  private pending: {
    s: SessionRecord;
    expectedVersion: number;
    resolve: (ok: boolean) => void;
    reject: (err: unknown) => void;
  }[] = [];

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

  /**
   * Conditional writes are queued and written together, one transaction (one durable commit) per turn of
   * the event loop: thousands of live sessions update every few seconds, and SQLite commits one at a time.
   */
  update(s: SessionRecord, expectedVersion: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ s, expectedVersion, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const st = this.s(
      "UPDATE sessions SET status = ?, valid_until = ?, version = ?, data = ? WHERE id = ? AND version = ?",
    );
    let results: boolean[];
    try {
      results = this.db
        .transaction(() =>
          batch.map(
            (u) =>
              st.run(u.s.status, u.s.valid_until, u.s.version, encodeSession(u.s), u.s.id, u.expectedVersion)
                .changes === 1,
          ),
        )
        .immediate();
    } catch (err) {
      for (const u of batch) u.reject(err);
      return;
    }
    batch.forEach((u, i) => u.resolve(results[i]!));
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
