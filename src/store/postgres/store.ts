import pg from "pg";
import { insertEvents, loadSnapshot, partGrantIds, writeChanges } from "./batch.ts";
import { branch, split } from "./row-sets.ts";
import type {
  AccountRecord,
  GrantRecord,
  HoldRecord,
  JournalEntry,
  RefundRecord,
  UsageRecord,
} from "../../ledger/types.ts";
import type { ChangeSet, LoadKeys, Snapshot } from "../../ledger/working.ts";
import { collectAuditFacts } from "../audit-facts.ts";
import type { EventDraft, EventQuery, EventRecord } from "../../events/types.ts";
import { newId } from "../../domain/ids.ts";
import {
  rowToAccount,
  rowToCheckout,
  rowToEntry,
  rowToEvent,
  rowToGrant,
  rowToHold,
  rowToRefund,
  rowToUsage,
} from "../rows.ts";
import {
  decodeIdCursor,
  decodeSeqCursor,
  encodeCursor,
  type AccountState,
  type AuditFacts,
  type CheckoutSession,
  type EntryQuery,
  type JournalState,
  type Page,
  type Store,
  type UsageQuery,
} from "../types.ts";
import { POSTGRES_MIGRATIONS } from "./migrations.ts";
import { named } from "./named.ts";

type Row = Record<string, unknown>;
const MIGRATION_LOCK = 7_243_001;

const ACCOUNT_STATE = `WITH h AS (SELECT * FROM holds WHERE account_id = $1 AND status = 'active')
  ${branch("account", "a", "accounts a WHERE a.id = $1")}
  UNION ALL ${branch("hold", "h", "h")}
  UNION ALL ${branch(
    "grant",
    "g",
    `grants g WHERE (g.account_id = $1 AND g.status = 'active' AND g.remaining > 0) OR g.id = ANY(${partGrantIds("h")})`,
  )}`;

/**
 * The production store. A batch is one transaction: it locks the accounts it touches (sorted, so
 * processes never deadlock), loads what it reads in one statement, and writes every change in one
 * statement (./batch.ts). No row is shared by all debits: consumption totals are journal aggregates.
 */
export class PostgresStore implements Store {
  readonly dialect = "postgres" as const;
  readonly pool: pg.Pool;

  constructor(
    readonly url: string,
    poolSize = 10,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: poolSize });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    this.pool.on("error", () => {});
  }

  async migrate(): Promise<number> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await c.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const done = new Set(
        (await c.query("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)),
      );
      let ran = 0;
      for (const m of POSTGRES_MIGRATIONS) {
        if (done.has(m.version)) continue;
        await c.query(m.sql);
        await c.query("INSERT INTO schema_migrations VALUES ($1, $2, $3)", [m.version, m.name, Date.now()]);
        ran++;
      }
      await c.query("COMMIT");
      return ran;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async runBatch<T>(
    keys: LoadKeys,
    now: number,
    apply: (snap: Snapshot) => { changes: ChangeSet; result: T },
  ): Promise<T> {
    return this.transaction(async (c) => {
      const snap = await loadSnapshot(c, keys, now);
      const { changes, result } = apply(snap);
      await writeChanges(c, changes);
      return result;
    });
  }

  /** Runs `body` in a transaction on one connection; a connection that cannot roll back is discarded. */
  private async transaction<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      // Statements in a transaction are planned for their arguments each time (see ./named.ts); one round trip.
      await c.query("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan");
      const result = await body(c);
      await c.query("COMMIT");
      return result;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw e;
    } finally {
      c.release(broken);
    }
  }

  // ---------- reads ----------

  private async one<T>(sql: string, args: unknown[], map: (r: Row) => T): Promise<T | null> {
    const { rows } = await this.pool.query(named(sql, args));
    return rows[0] ? map(rows[0]) : null;
  }

  getAccount(id: string): Promise<AccountRecord | null> {
    return this.one("SELECT * FROM accounts WHERE id = $1", [id], rowToAccount);
  }

  async listAccounts(cursor: string | undefined, limit: number): Promise<Page<AccountRecord>> {
    const after = decodeIdCursor(cursor) ?? "";
    const { rows } = await this.pool.query("SELECT * FROM accounts WHERE id > $1 ORDER BY id LIMIT $2", [
      after,
      limit + 1,
    ]);
    const data = rows.slice(0, limit).map(rowToAccount);
    return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }

  getGrant(id: string): Promise<GrantRecord | null> {
    return this.one("SELECT * FROM grants WHERE id = $1", [id], rowToGrant);
  }

  async listGrants(accountId: string): Promise<GrantRecord[]> {
    const { rows } = await this.pool.query(
      "SELECT * FROM grants WHERE account_id = $1 ORDER BY created_at, id",
      [accountId],
    );
    return rows.map(rowToGrant);
  }

  getHold(id: string): Promise<HoldRecord | null> {
    return this.one("SELECT * FROM holds WHERE id = $1", [id], rowToHold);
  }

  getUsage(id: string): Promise<UsageRecord | null> {
    return this.one("SELECT * FROM usages WHERE id = $1", [id], rowToUsage);
  }

  async getUsages(ids: readonly string[]): Promise<UsageRecord[]> {
    if (ids.length === 0) return [];
    // Not prepared: a generic plan made while the table was small would scan it (see ./named.ts).
    const { rows } = await this.pool.query("SELECT * FROM usages WHERE id = ANY($1)", [[...ids]]);
    return rows.map(rowToUsage);
  }

  getRefund(id: string): Promise<RefundRecord | null> {
    return this.one("SELECT * FROM refunds WHERE id = $1", [id], rowToRefund);
  }

  /** Runs `fn` in a read-only REPEATABLE READ transaction: every query sees the same instant. */
  private async snapshotRead<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const out = await fn(c);
      await c.query("COMMIT");
      return out;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  /**
   * One statement, so one snapshot: the account, its active holds and the grants they and it draw on.
   * Prepared (3–4× the reads per second): its lookups are by one account, by index whatever the table sizes;
   * only a plan made while `holds` is empty may scan the due-holds index instead, until `holds` is analyzed.
   */
  async accountState(accountId: string): Promise<AccountState | null> {
    const { rows } = await this.pool.query<unknown[]>({
      ...named(ACCOUNT_STATE, [accountId]),
      rowMode: "array",
    });
    const r = split(rows);
    if (!r.account[0]) return null;
    return {
      account: rowToAccount(r.account[0]),
      grants: r.grant.map(rowToGrant),
      holds: r.hold.map(rowToHold),
    };
  }

  journalState(accountId: string, at: number): Promise<JournalState | null> {
    return this.snapshotRead(async (c) => {
      const a = (await c.query("SELECT * FROM accounts WHERE id = $1", [accountId])).rows[0];
      if (!a) return null;
      const sums = new Map<string, bigint>();
      const { rows } = await c.query(
        "SELECT ledger, SUM(amount) AS s FROM postings WHERE account_id = $1 AND at <= $2 GROUP BY ledger",
        [accountId, at],
      );
      for (const r of rows) sums.set(String(r.ledger), BigInt(String(r.s)));
      const holdIds: string[] = [];
      const grantIds = new Set<string>();
      for (const [ledger, s] of sums) {
        if (s === 0n) continue;
        if (ledger.startsWith("hold:")) holdIds.push(ledger.slice(5));
        else if (ledger.startsWith("grant:")) grantIds.add(ledger.slice(6));
      }
      const holds = holdIds.length
        ? (await c.query("SELECT * FROM holds WHERE id = ANY($1)", [holdIds])).rows.map(rowToHold)
        : [];
      for (const h of holds) for (const p of h.parts) grantIds.add(p.grant_id);
      const grants = grantIds.size
        ? (await c.query("SELECT * FROM grants WHERE id = ANY($1)", [[...grantIds]])).rows.map(rowToGrant)
        : [];
      return { account: rowToAccount(a), sums, grants, holds };
    });
  }

  async listUsages(q: UsageQuery): Promise<Page<UsageRecord>> {
    const where = ["account_id = $1"];
    const args: unknown[] = [q.account_id];
    const add = (cond: string, v: unknown) => {
      args.push(v);
      where.push(cond.replace("?", `$${args.length}`));
    };
    const before = decodeSeqCursor(q.cursor);
    if (before !== null) add("seq < ?", before);
    if (q.service) add("service = ?", q.service);
    if (q.from !== undefined) add("recorded_at >= ?", q.from);
    if (q.to !== undefined) add("recorded_at < ?", q.to);
    if (q.credit_source) add("sources LIKE ?", `% ${q.credit_source} %`);
    args.push(q.limit + 1);
    const { rows } = await this.pool.query(
      `SELECT * FROM usages WHERE ${where.join(" AND ")} ORDER BY seq DESC LIMIT $${args.length}`,
      args,
    );
    const page = rows.slice(0, q.limit);
    return {
      data: page.map(rowToUsage),
      next_cursor: rows.length > q.limit ? encodeCursor(String(page[page.length - 1]!.seq)) : null,
    };
  }

  async listEntries(q: EntryQuery): Promise<Page<JournalEntry>> {
    const before = decodeSeqCursor(q.cursor);
    const { rows } =
      before === null
        ? await this.pool.query("SELECT * FROM postings WHERE account_id = $1 ORDER BY seq DESC LIMIT $2", [
            q.account_id,
            q.limit + 1,
          ])
        : await this.pool.query(
            "SELECT * FROM postings WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            [q.account_id, before, q.limit + 1],
          );
    const page = rows.slice(0, q.limit).map(rowToEntry);
    return {
      data: page,
      next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  async findDueAccounts(now: number, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query(
      `SELECT account_id FROM grants WHERE status = 'active' AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1
       UNION SELECT account_id FROM holds WHERE status = 'active' AND expires_at <= $1 LIMIT $2`,
      [now, limit],
    );
    return rows.map((r) => String(r.account_id));
  }

  auditFacts(): Promise<AuditFacts> {
    return this.snapshotRead((c) => collectAuditFacts(async (sql) => (await c.query(sql)).rows));
  }

  async accountTotals(accountId: string): Promise<{ consumed: bigint; granted: Record<string, bigint> }> {
    const c = await this.pool.query(
      "SELECT COALESCE(SUM(amount), 0) AS s FROM postings WHERE account_id = $1 AND ledger = 'consumed'",
      [accountId],
    );
    const granted: Record<string, bigint> = {};
    const { rows } = await this.pool.query(
      "SELECT kind, SUM(amount) AS s FROM grants WHERE account_id = $1 GROUP BY kind",
      [accountId],
    );
    for (const r of rows) granted[String(r.kind)] = BigInt(String(r.s));
    return { consumed: BigInt(String(c.rows[0]?.s ?? "0")), granted };
  }

  async insertCheckoutSession(s: CheckoutSession): Promise<void> {
    await this.pool.query(
      `INSERT INTO checkout_sessions (id, account_id, amount_cents, currency, credits, status, provider, created_at, expires_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
      [
        s.id,
        s.account_id,
        String(s.amount_cents),
        s.currency,
        String(s.credits),
        s.status,
        s.provider,
        s.created_at,
        s.expires_at,
      ],
    );
  }

  getCheckoutSession(id: string): Promise<CheckoutSession | null> {
    return this.one("SELECT * FROM checkout_sessions WHERE id = $1", [id], rowToCheckout);
  }

  async getSetting(key: string): Promise<string | null> {
    return this.one("SELECT value FROM settings WHERE key = $1", [key], (r) => String(r.value));
  }

  async putSetting(key: string, value: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [key, value, Date.now()],
    );
  }

  async putSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.pool.query(
      "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
      [key, value, Date.now()],
    );
    return (await this.getSetting(key))!;
  }

  async listSettings(prefix: string): Promise<{ key: string; value: string }[]> {
    const { rows } = await this.pool.query(
      "SELECT key, value FROM settings WHERE left(key, length($1)) = $1 ORDER BY key",
      [prefix],
    );
    return rows.map((r) => ({ key: String(r.key), value: String(r.value) }));
  }

  async appendEvents(drafts: readonly EventDraft[], now: number): Promise<EventRecord[]> {
    if (drafts.length === 0) return [];
    const pending = drafts.map((d) => ({ ...d, id: newId("evt", now), created_at: now }));
    return this.transaction((c) => insertEvents(c, pending));
  }

  async listEvents(q: EventQuery): Promise<EventRecord[]> {
    const where: string[] = ["seq > $1"];
    const args: unknown[] = [q.after_seq ?? 0];
    if (q.account_id !== undefined) {
      args.push(q.account_id);
      where.push(`account_id = $${args.length}`);
    }
    if (q.types !== undefined && q.types.length > 0) {
      args.push(q.types);
      where.push(`type = ANY($${args.length})`);
    }
    args.push(q.limit);
    const { rows } = await this.pool.query(
      `SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $${args.length}`,
      args,
    );
    return rows.map(rowToEvent);
  }

  async scanUsages(afterSeq: number, limit: number): Promise<{ seq: number; usage: UsageRecord }[]> {
    const { rows } = await this.pool.query("SELECT * FROM usages WHERE seq > $1 ORDER BY seq LIMIT $2", [
      afterSeq,
      limit,
    ]);
    return rows.map((r) => ({ seq: Number(r.seq), usage: rowToUsage(r) }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
