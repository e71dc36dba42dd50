import pg from "pg";
import { loadBudgets, writeExtras } from "./ledger-extras.ts";
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
import { EVENTS_LOCK_KEY } from "../events-migrations.ts";
import type { EventDraft, EventQuery, EventRecord, PendingEvent } from "../../events/types.ts";
import { newId } from "../../domain/ids.ts";
import { encodeParts } from "../codec.ts";
import {
  rowToAccount,
  rowToCheckout,
  rowToEntry,
  rowToEvent,
  rowToGrant,
  rowToHold,
  rowToRefund,
  rowToUsage,
  usageSources,
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

type Row = Record<string, unknown>;
const MIGRATION_LOCK = 7_243_001;

/**
 * The production store. A batch is one transaction: it locks the accounts it touches (sorted, so
 * processes never deadlock), loads their live grants in one query, and writes every change with a few
 * multi-row statements. No row is shared by all debits: consumption totals are journal aggregates.
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
      const snap = await this.load(c, keys, now);
      const { changes, result } = apply(snap);
      await this.write(c, changes);
      return result;
    });
  }

  /** Runs `body` in a transaction on one connection; a connection that cannot roll back is discarded. */
  private async transaction<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      await c.query("BEGIN");
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

  private async load(c: pg.PoolClient, keys: LoadKeys, now: number): Promise<Snapshot> {
    const usageIds = [...keys.usageIds];
    const holdIds = [...keys.holdIds];
    const grantIds = [...keys.grantIds];
    const refundIds = [...keys.refundIds];
    const accountIds = new Set(keys.accountIds);

    // 1. Which accounts do records named without their account belong to? (Not locked yet; re-read after
    // locking.) A debit's own event id needs no lookup: it is only read, to detect a replay or a conflict.
    const resolve = [[...keys.resolve.usages], [...keys.resolve.holds], [...keys.resolve.grants], refundIds];
    if (resolve.some((ids) => ids.length > 0)) {
      const { rows } = await c.query(
        `SELECT account_id FROM usages WHERE id = ANY($1)
         UNION SELECT account_id FROM holds WHERE id = ANY($2)
         UNION SELECT account_id FROM grants WHERE id = ANY($3)
         UNION SELECT account_id FROM refunds WHERE id = ANY($4)`,
        resolve,
      );
      for (const r of rows) accountIds.add(String(r.account_id));
    }

    // 2. Lock the accounts in id order: concurrent batches of any process queue here, never deadlock.
    const sortedAccounts = [...accountIds].sort();
    const accounts = sortedAccounts.length
      ? (
          await c.query("SELECT * FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE", [sortedAccounts])
        ).rows.map(rowToAccount)
      : [];

    // 3. Load what the batch reads, now that nothing of these accounts can change under us.
    const refunds = refundIds.length
      ? (await c.query("SELECT * FROM refunds WHERE id = ANY($1)", [refundIds])).rows.map(rowToRefund)
      : [];
    const holds = (
      await c.query(
        "SELECT * FROM holds WHERE id = ANY($1) OR (account_id = ANY($2) AND status = 'active' AND expires_at <= $3)",
        [holdIds, sortedAccounts, now],
      )
    ).rows.map(rowToHold);
    const wantUsages = new Set([...usageIds, ...refunds.map((r) => r.usage_id)]);
    for (const h of holds) if (h.usage_id) wantUsages.add(h.usage_id);
    const usages = wantUsages.size
      ? (await c.query("SELECT * FROM usages WHERE id = ANY($1)", [[...wantUsages]])).rows.map(rowToUsage)
      : [];
    const wantGrants = new Set(grantIds);
    for (const h of holds) for (const p of h.parts) wantGrants.add(p.grant_id);
    for (const u of usages) for (const p of u.parts) wantGrants.add(p.grant_id);
    const grants = (
      await c.query(
        "SELECT * FROM grants WHERE (account_id = ANY($1) AND status = 'active' AND remaining > 0) OR id = ANY($2)",
        [sortedAccounts, [...wantGrants]],
      )
    ).rows.map(rowToGrant);
    const budgets = await loadBudgets(c, sortedAccounts, now);
    return { accounts, grants, holds, usages, refunds, budgets };
  }

  private async write(c: pg.PoolClient, ch: ChangeSet): Promise<void> {
    for (const a of ch.accounts.inserted)
      await c.query(
        `INSERT INTO accounts (id, overage_policy, overage_limit, overage_balance, granted_total, status, metadata, created_at,
           request) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
        [
          a.id,
          a.overage_policy,
          str(a.overage_limit),
          str(a.overage_balance),
          str(a.granted_total),
          a.status,
          JSON.stringify(a.metadata),
          a.created_at,
          a.request,
        ],
      );
    if (ch.accounts.updated.length)
      await c.query(
        `UPDATE accounts a SET overage_balance = v.overage_balance, granted_total = v.granted_total, status = v.status,
           overage_policy = v.overage_policy, overage_limit = v.overage_limit
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
           AS v(id, overage_balance, granted_total, status, overage_policy, overage_limit)
         WHERE a.id = v.id`,
        col(
          ch.accounts.updated,
          (a) => a.id,
          (a) => str(a.overage_balance),
          (a) => str(a.granted_total),
          (a) => a.status,
          (a) => a.overage_policy,
          (a) => str(a.overage_limit),
        ),
      );
    if (ch.grants.inserted.length)
      await c.query(
        `INSERT INTO grants (id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key,
           status, closed_at, source, reference, metadata, request)
         SELECT id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key, status,
           closed_at, source, reference, metadata::jsonb, request
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::bigint[], $8::bigint[],
           $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[])
           AS v(id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key, status,
             closed_at, source, reference, metadata, request)`,
        col(
          ch.grants.inserted,
          (g) => g.id,
          (g) => g.account_id,
          (g) => g.kind,
          (g) => str(g.amount),
          (g) => str(g.remaining),
          (g) => g.priority,
          (g) => g.effective_at,
          (g) => g.expires_at,
          (g) => g.created_at,
          (g) => g.order_key,
          (g) => g.status,
          (g) => g.closed_at,
          (g) => g.source,
          (g) => g.reference,
          (g) => JSON.stringify(g.metadata),
          (g) => g.request,
        ),
      );
    if (ch.grants.updated.length)
      await c.query(
        `UPDATE grants g SET remaining = v.remaining, status = v.status, closed_at = v.closed_at, kind = v.kind,
           priority = v.priority
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::int[])
           AS v(id, remaining, status, closed_at, kind, priority)
         WHERE g.id = v.id`,
        col(
          ch.grants.updated,
          (g) => g.id,
          (g) => str(g.remaining),
          (g) => g.status,
          (g) => g.closed_at,
          (g) => g.kind,
          (g) => g.priority,
        ),
      );
    if (ch.holds.inserted.length)
      await c.query(
        `INSERT INTO holds (id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id,
           metadata, request)
         SELECT id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id,
           metadata::jsonb, request
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
           $9::bigint[], $10::text[], $11::text[], $12::text[])
           AS v(id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id, metadata,
             request)`,
        col(
          ch.holds.inserted,
          (h) => h.id,
          (h) => h.account_id,
          (h) => str(h.amount),
          (h) => encodeParts(h.parts),
          (h) => h.status,
          (h) => h.expires_at,
          (h) => h.created_at,
          (h) => h.closed_at,
          (h) => str(h.captured_amount),
          (h) => h.usage_id,
          (h) => JSON.stringify(h.metadata),
          (h) => h.request,
        ),
      );
    if (ch.usages.inserted.length)
      await c.query(
        `INSERT INTO usages (id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
           occurred_at, recorded_at, metadata, txn_id)
         SELECT id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
           occurred_at, recorded_at, metadata::jsonb, txn_id
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
           $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[])
           AS v(id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
             occurred_at, recorded_at, metadata, txn_id)`,
        col(
          ch.usages.inserted,
          (u) => u.id,
          (u) => u.account_id,
          (u) => u.service,
          (u) => u.quantity,
          (u) => str(u.cost),
          (u) => str(u.overage),
          (u) => str(u.overage_refunded),
          (u) => str(u.refunded),
          (u) => encodeParts(u.parts),
          (u) => usageSources(u),
          (u) => u.hold_id,
          (u) => u.occurred_at,
          (u) => u.recorded_at,
          (u) => JSON.stringify(u.metadata),
          (u) => u.txn_id,
        ),
      );
    if (ch.usages.updated.length)
      await c.query(
        `UPDATE usages u SET refunded = v.refunded, overage_refunded = v.overage_refunded, parts = v.parts
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v(id, refunded, overage_refunded, parts)
         WHERE u.id = v.id`,
        col(
          ch.usages.updated,
          (u) => u.id,
          (u) => str(u.refunded),
          (u) => str(u.overage_refunded),
          (u) => encodeParts(u.parts),
        ),
      );
    if (ch.holds.updated.length)
      await c.query(
        `UPDATE holds h SET parts = v.parts, status = v.status, closed_at = v.closed_at, captured_amount = v.captured_amount,
           usage_id = v.usage_id, amount = v.amount, expires_at = v.expires_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[])
           AS v(id, parts, status, closed_at, captured_amount, usage_id, amount, expires_at)
         WHERE h.id = v.id`,
        // amount and expires_at change when a hold is extended (live sessions).
        col(
          ch.holds.updated,
          (h) => h.id,
          (h) => encodeParts(h.parts),
          (h) => h.status,
          (h) => h.closed_at,
          (h) => str(h.captured_amount),
          (h) => h.usage_id,
          (h) => str(h.amount),
          (h) => h.expires_at,
        ),
      );
    if (ch.refunds.inserted.length)
      await c.query(
        `INSERT INTO refunds (id, usage_id, account_id, amount, reason, created_at, txn_id, request)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[])`,
        col(
          ch.refunds.inserted,
          (r) => r.id,
          (r) => r.usage_id,
          (r) => r.account_id,
          (r) => str(r.amount),
          (r) => r.reason,
          (r) => r.created_at,
          (r) => r.txn_id,
          (r) => r.request,
        ),
      );
    if (ch.events.length) await insertEvents(c, ch.events);
    if (ch.postings.length)
      await c.query(
        `INSERT INTO postings (txn_id, account_id, ledger, amount, kind, ref, at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])`,
        col(
          ch.postings,
          (p) => p.txn_id,
          (p) => p.account_id,
          (p) => p.ledger,
          (p) => str(p.amount),
          (p) => p.kind,
          (p) => p.ref,
          (p) => p.at,
        ),
      );
    await writeExtras(c, ch);
  }

  // ---------- reads ----------

  private async one<T>(sql: string, args: unknown[], map: (r: Row) => T): Promise<T | null> {
    const { rows } = await this.pool.query(sql, args);
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

  accountState(accountId: string): Promise<AccountState | null> {
    return this.snapshotRead(async (c) => {
      const a = (await c.query("SELECT * FROM accounts WHERE id = $1", [accountId])).rows[0];
      if (!a) return null;
      const holds = (
        await c.query("SELECT * FROM holds WHERE account_id = $1 AND status = 'active'", [accountId])
      ).rows.map(rowToHold);
      const partGrants = [...new Set(holds.flatMap((h) => h.parts.map((p) => p.grant_id)))];
      const grants = (
        await c.query(
          "SELECT * FROM grants WHERE (account_id = $1 AND status = 'active' AND remaining > 0) OR id = ANY($2)",
          [accountId, partGrants],
        )
      ).rows.map(rowToGrant);
      return { account: rowToAccount(a), grants, holds };
    });
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

/** Takes the events lock, so that seq order is commit order for readers tailing the outbox. */
async function insertEvents(c: pg.PoolClient, events: readonly PendingEvent[]): Promise<EventRecord[]> {
  await c.query("SELECT pg_advisory_xact_lock($1::bigint)", [EVENTS_LOCK_KEY]);
  const { rows } = await c.query(
    `INSERT INTO events (id, type, account_id, data, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) RETURNING *`,
    col(
      events,
      (e) => e.id,
      (e) => e.type,
      (e) => e.account_id,
      (e) => JSON.stringify(e.data),
      (e) => e.created_at,
    ),
  );
  return rows.map(rowToEvent);
}

function str(v: bigint | null): string | null {
  return v === null ? null : v.toString();
}

/** Column arrays for unnest(): one array per field, in the order of the getters. */
function col<T>(rows: readonly T[], ...getters: ((r: T) => unknown)[]): unknown[][] {
  return getters.map((g) => rows.map(g));
}
