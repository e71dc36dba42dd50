import { accountRowsSql } from "./sqlite/account-index.ts";
import { big, num } from "./codec.ts";
import {
  rowToLocalPayment,
  rowToMethod,
  rowToPack,
  rowToPurchase,
  rowToRule,
  rowToSession,
  type AutoRechargeRule,
  type AutoRechargeState,
  type CheckoutRecord,
  type LocalPayment,
  type PackRecord,
  type PaymentMethodRecord,
  type PurchaseRecord,
  type PurchaseStatus,
} from "./purchase-records.ts";
import { PostgresSql, SqliteSql, type Sql } from "./purchase-sql.ts";
import type { SqliteStore } from "./sqlite/store.ts";
import type { PostgresStore } from "./postgres/store.ts";
import { decodeIdCursor, encodeCursor, type Page, type Store } from "./types.ts";

type Row = Record<string, unknown>;

export type {
  AutoRechargeRule,
  AutoRechargeState,
  CheckoutRecord,
  LocalPayment,
  PackRecord,
  PaymentMethodRecord,
  PurchaseRecord,
  PurchaseStatus,
};

function page<T extends { id: string }>(rows: Row[], limit: number, map: (r: Row) => T): Page<T> {
  const data = rows.slice(0, limit).map(map);
  return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1]!.id) : null };
}

/**
 * Storage of purchases, over the store's own connection (SQLite) or pool (PostgreSQL). Every state change
 * is one conditional statement, so any number of processes on one database agree on who does what.
 */
export class PurchaseStore {
  constructor(private readonly sql: Sql) {}

  // ---------- checkout sessions ----------

  async insertSession(s: CheckoutRecord): Promise<void> {
    await this.sql.run(
      `INSERT INTO checkout_sessions (id, account_id, amount_cents, currency, credits, status, provider, created_at,
         expires_at, pack_id, credits_ttl_ms, provider_ref, url, secret_sha256, paid_at, payment_ref, closed_at,
         save_method)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        s.id,
        s.account_id,
        s.amount_cents,
        s.currency,
        s.credits,
        s.status,
        s.provider,
        s.created_at,
        s.expires_at,
        s.pack_id,
        s.credits_ttl_ms,
        s.provider_ref,
        s.url,
        s.secret_sha256,
        s.paid_at,
        s.payment_ref,
        s.closed_at,
        s.save_method,
      ],
    );
  }

  async getSession(id: string): Promise<CheckoutRecord | null> {
    const rows = await this.sql.all("SELECT * FROM checkout_sessions WHERE id = ?", [id]);
    return rows[0] ? rowToSession(rows[0]) : null;
  }

  async listSessions(
    accountId: string,
    cursor: string | undefined,
    limit: number,
  ): Promise<Page<CheckoutRecord>> {
    const after = decodeIdCursor(cursor) ?? "";
    const rows = await this.sql.all(
      "SELECT * FROM checkout_sessions WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
      [accountId, after, limit + 1],
    );
    return page(rows, limit, rowToSession);
  }

  /**
   * → paid, once: true for the one caller that made the change. Sets paid_at and the payment. Only an open
   * session may be paid, unless `evenIfClosed` (the provider took the money all the same: it wins).
   */
  async markSessionPaid(
    id: string,
    paymentRef: string | null,
    now: number,
    evenIfClosed = false,
  ): Promise<boolean> {
    return (
      (await this.sql.run(
        `UPDATE checkout_sessions SET status = 'paid', paid_at = ?, payment_ref = ?, closed_at = ?
         WHERE id = ? AND ${evenIfClosed ? "status <> 'paid'" : "status = 'open'"}`,
        [now, paymentRef, now, id],
      )) === 1
    );
  }

  /** open → canceled or expired; false if the session was no longer open. */
  async closeSession(id: string, status: "canceled" | "expired", now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE checkout_sessions SET status = ?, closed_at = ? WHERE id = ? AND status = 'open'",
        [status, now, id],
      )) === 1
    );
  }

  /** Open sessions past their expiry become expired; returns how many. */
  async expireSessions(now: number, limit: number): Promise<number> {
    return this.sql.run(
      `UPDATE checkout_sessions SET status = 'expired', closed_at = ? WHERE id IN
         (SELECT id FROM checkout_sessions WHERE status = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?)`,
      [now, now, limit],
    );
  }

  async setSessionProvider(id: string, providerRef: string, url: string): Promise<void> {
    await this.sql.run("UPDATE checkout_sessions SET provider_ref = ?, url = ? WHERE id = ?", [
      providerRef,
      url,
      id,
    ]);
  }

  /** Paid sessions without a purchase record (a fulfilment interrupted by a crash), oldest first. */
  async unfulfilledSessions(limit: number): Promise<CheckoutRecord[]> {
    const rows = await this.sql.all(
      `SELECT s.* FROM checkout_sessions s LEFT JOIN purchases p ON p.checkout_session_id = s.id
       WHERE s.status = 'paid' AND p.id IS NULL ORDER BY s.paid_at LIMIT ?`,
      [limit],
    );
    return rows.map(rowToSession);
  }

  // ---------- purchases ----------

  /** Inserts unless a purchase with this id exists; true when inserted. */
  async insertPurchase(p: PurchaseRecord): Promise<boolean> {
    return (
      (await this.sql.run(
        `INSERT INTO purchases (id, account_id, source, checkout_session_id, pack_id, amount_cents, currency, credits,
           credits_expire_at, grant_id, provider, payment_method_id, payment_ref, status, failure_reason,
           refunded_cents, refunded_credits, refund_ref, refund_reason, created_at, paid_at, refunded_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
        [
          p.id,
          p.account_id,
          p.source,
          p.checkout_session_id,
          p.pack_id,
          p.amount_cents,
          p.currency,
          p.credits,
          p.credits_expire_at,
          p.grant_id,
          p.provider,
          p.payment_method_id,
          p.payment_ref,
          p.status,
          p.failure_reason,
          p.refunded_cents,
          p.refunded_credits,
          p.refund_ref,
          p.refund_reason,
          p.created_at,
          p.paid_at,
          p.refunded_at,
          p.updated_at,
        ],
      )) === 1
    );
  }

  async getPurchase(id: string): Promise<PurchaseRecord | null> {
    const rows = await this.sql.all("SELECT * FROM purchases WHERE id = ?", [id]);
    return rows[0] ? rowToPurchase(rows[0]) : null;
  }

  async countPurchases(accountId: string, status?: PurchaseStatus): Promise<number> {
    const rows = status
      ? await this.sql.all("SELECT COUNT(*) AS n FROM purchases WHERE account_id = ? AND status = ?", [
          accountId,
          status,
        ])
      : await this.sql.all("SELECT COUNT(*) AS n FROM purchases WHERE account_id = ?", [accountId]);
    return num(rows[0]?.n ?? 0);
  }

  /** Newest first when no account is given is not needed: purchases are listed by id, oldest first. */
  async listPurchases(
    q: { account_id?: string; cursor?: string },
    limit: number,
  ): Promise<Page<PurchaseRecord>> {
    const after = decodeIdCursor(q.cursor) ?? "";
    const rows = q.account_id
      ? await this.sql.all("SELECT * FROM purchases WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?", [
          q.account_id,
          after,
          limit + 1,
        ])
      : await this.sql.all("SELECT * FROM purchases WHERE id > ? ORDER BY id LIMIT ?", [after, limit + 1]);
    return page(rows, limit, rowToPurchase);
  }

  /** pending → paid (auto-recharge charged); false if it was not pending. */
  async markPurchasePaid(id: string, paymentRef: string, now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE purchases SET status = 'paid', payment_ref = ?, paid_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        [paymentRef, now, now, id],
      )) === 1
    );
  }

  async markPurchaseFailed(id: string, reason: string, now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE purchases SET status = 'failed', failure_reason = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        [reason, now, id],
      )) === 1
    );
  }

  /** paid → refunding: claims the refund for one caller. */
  async startRefund(id: string, reason: string | null, now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE purchases SET status = 'refunding', refund_reason = ?, updated_at = ? WHERE id = ? AND status = 'paid'",
        [reason, now, id],
      )) === 1
    );
  }

  async finishRefund(
    id: string,
    r: { refunded_cents: bigint; refunded_credits: bigint; refund_ref: string | null },
    now: number,
  ): Promise<boolean> {
    return (
      (await this.sql.run(
        `UPDATE purchases SET status = 'refunded', refunded_cents = ?, refunded_credits = ?, refund_ref = ?,
           refunded_at = ?, updated_at = ? WHERE id = ? AND status = 'refunding'`,
        [r.refunded_cents, r.refunded_credits, r.refund_ref, now, now, id],
      )) === 1
    );
  }

  /** Purchases left pending or refunding, untouched since before `before` (interrupted work to finish). */
  async stalePurchases(before: number, limit: number): Promise<PurchaseRecord[]> {
    const rows = await this.sql.all(
      "SELECT * FROM purchases WHERE status IN ('pending', 'refunding') AND updated_at < ? ORDER BY updated_at LIMIT ?",
      [before, limit],
    );
    return rows.map(rowToPurchase);
  }

  /** Credits the journal wrote off when a grant was voided (0 if it was not). */
  async voidedCredits(accountId: string, grantId: string): Promise<bigint> {
    const where = "t.ref = ? AND t.kind = 'void' AND t.ledger = 'voided'";
    // SQLite keeps the journal's account index off the commit path (sqlite/account-index.ts).
    const rows =
      this.sql.dialect === "sqlite"
        ? await this.sql.all(
            `SELECT COALESCE(SUM(amount), 0) AS s FROM (${accountRowsSql("postings", () => where)})`,
            [accountId, grantId, accountId, grantId],
          )
        : await this.sql.all(
            `SELECT COALESCE(SUM(amount), 0) AS s FROM postings t WHERE t.account_id = ? AND ${where}`,
            [accountId, grantId],
          );
    return big(rows[0]?.s ?? 0);
  }

  // ---------- packs ----------

  async insertPack(p: PackRecord): Promise<void> {
    await this.sql.run(
      `INSERT INTO credit_packs (id, name, description, credits, price_cents, currency, expires_after_days, active,
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        p.id,
        p.name,
        p.description,
        p.credits,
        p.price_cents,
        p.currency,
        p.expires_after_days,
        p.active,
        p.created_at,
        p.updated_at,
      ],
    );
  }

  async updatePack(p: PackRecord): Promise<void> {
    await this.sql.run(
      `UPDATE credit_packs SET name = ?, description = ?, credits = ?, price_cents = ?, currency = ?,
         expires_after_days = ?, active = ?, updated_at = ? WHERE id = ?`,
      [
        p.name,
        p.description,
        p.credits,
        p.price_cents,
        p.currency,
        p.expires_after_days,
        p.active,
        p.updated_at,
        p.id,
      ],
    );
  }

  async getPack(id: string): Promise<PackRecord | null> {
    const rows = await this.sql.all("SELECT * FROM credit_packs WHERE id = ?", [id]);
    return rows[0] ? rowToPack(rows[0]) : null;
  }

  async listPacks(activeOnly: boolean, limit: number): Promise<PackRecord[]> {
    const rows = activeOnly
      ? await this.sql.all("SELECT * FROM credit_packs WHERE active = 1 ORDER BY price_cents, id LIMIT ?", [
          limit,
        ])
      : await this.sql.all("SELECT * FROM credit_packs ORDER BY price_cents, id LIMIT ?", [limit]);
    return rows.map(rowToPack);
  }

  // ---------- payment methods ----------

  /** Inserts unless the account already keeps this method (not removed); true when inserted. */
  async insertMethod(m: PaymentMethodRecord): Promise<boolean> {
    const n = await this.sql.run(
      `INSERT INTO payment_methods (id, account_id, provider, label, customer_ref, method_ref, created_at, removed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [m.id, m.account_id, m.provider, m.label, m.customer_ref, m.method_ref, m.created_at, m.removed_at],
    );
    return n === 1;
  }

  async getMethod(id: string): Promise<PaymentMethodRecord | null> {
    const rows = await this.sql.all("SELECT * FROM payment_methods WHERE id = ?", [id]);
    return rows[0] ? rowToMethod(rows[0]) : null;
  }

  async listMethods(accountId: string, limit: number): Promise<PaymentMethodRecord[]> {
    const rows = await this.sql.all(
      "SELECT * FROM payment_methods WHERE account_id = ? AND removed_at IS NULL ORDER BY id LIMIT ?",
      [accountId, limit],
    );
    return rows.map(rowToMethod);
  }

  /** The account's (not removed) method with this provider reference, if saved already. */
  async findMethod(
    accountId: string,
    provider: string,
    methodRef: string,
  ): Promise<PaymentMethodRecord | null> {
    const rows = await this.sql.all(
      "SELECT * FROM payment_methods WHERE account_id = ? AND provider = ? AND method_ref = ? AND removed_at IS NULL",
      [accountId, provider, methodRef],
    );
    return rows[0] ? rowToMethod(rows[0]) : null;
  }

  async countMethods(accountId: string): Promise<number> {
    const rows = await this.sql.all(
      "SELECT COUNT(*) AS n FROM payment_methods WHERE account_id = ? AND removed_at IS NULL",
      [accountId],
    );
    return num(rows[0]?.n ?? 0);
  }

  async removeMethod(id: string, now: number): Promise<boolean> {
    return (
      (await this.sql.run("UPDATE payment_methods SET removed_at = ? WHERE id = ? AND removed_at IS NULL", [
        now,
        id,
      ])) === 1
    );
  }

  // ---------- auto-recharge ----------

  /** Creates or replaces the rule; its counters and back-off state are kept. */
  async putRule(r: AutoRechargeRule, now: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO auto_recharge (account_id, enabled, threshold, pack_id, amount_cents, payment_method_id,
         max_per_period, cooldown_ms, decline_backoff_ms, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (account_id) DO UPDATE SET enabled = EXCLUDED.enabled, threshold = EXCLUDED.threshold,
         pack_id = EXCLUDED.pack_id, amount_cents = EXCLUDED.amount_cents,
         payment_method_id = EXCLUDED.payment_method_id, max_per_period = EXCLUDED.max_per_period,
         cooldown_ms = EXCLUDED.cooldown_ms, decline_backoff_ms = EXCLUDED.decline_backoff_ms,
         updated_at = EXCLUDED.updated_at`,
      [
        r.account_id,
        r.enabled,
        r.threshold,
        r.pack_id,
        r.amount_cents,
        r.payment_method_id,
        r.max_per_period,
        r.cooldown_ms,
        r.decline_backoff_ms,
        now,
        now,
      ],
    );
  }

  async getRule(accountId: string): Promise<AutoRechargeState | null> {
    const rows = await this.sql.all("SELECT * FROM auto_recharge WHERE account_id = ?", [accountId]);
    return rows[0] ? rowToRule(rows[0]) : null;
  }

  /** Turns the rule off, saying why (kept with its state; putting the rule again turns it back on). */
  async pauseRule(accountId: string, reason: string, now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE auto_recharge SET enabled = 0, last_failure_reason = ?, updated_at = ? WHERE account_id = ? AND enabled = 1",
        [reason, now, accountId],
      )) === 1
    );
  }

  async deleteRule(accountId: string): Promise<boolean> {
    return (await this.sql.run("DELETE FROM auto_recharge WHERE account_id = ?", [accountId])) === 1;
  }

  /** Enabled rules after `afterAccount`, by account id (the scheduler walks them in pages). */
  async enabledRules(afterAccount: string, limit: number): Promise<AutoRechargeState[]> {
    const rows = await this.sql.all(
      "SELECT * FROM auto_recharge WHERE enabled = 1 AND account_id > ? ORDER BY account_id LIMIT ?",
      [afterAccount, limit],
    );
    return rows.map(rowToRule);
  }

  /**
   * Claims one recharge attempt, in one conditional statement: the rule is enabled, no attempt holds the
   * lease, the cooldown or decline back-off is over, and the period's count is below its maximum. Counts the
   * attempt in `periodKey` (a new period starts from 1). Returns the count in the period, or null.
   */
  async claimRecharge(
    accountId: string,
    periodKey: string,
    now: number,
    leaseMs: number,
  ): Promise<number | null> {
    const rows = await this.sql.all(
      `UPDATE auto_recharge SET
         count_in_period = CASE WHEN period_key = ? THEN count_in_period + 1 ELSE 1 END,
         period_key = ?, lease_until = ?, last_attempt_at = ?, updated_at = ?
       WHERE account_id = ? AND enabled = 1 AND lease_until <= ? AND next_attempt_at <= ?
         AND (period_key <> ? OR count_in_period < max_per_period)
       RETURNING count_in_period`,
      [periodKey, periodKey, now + leaseMs, now, now, accountId, now, now, periodKey],
    );
    return rows[0] ? num(rows[0].count_in_period) : null;
  }

  /** After a successful recharge: the cooldown starts, declines are forgotten, the lease is released. */
  async rechargeSucceeded(accountId: string, now: number): Promise<void> {
    await this.sql.run(
      `UPDATE auto_recharge SET lease_until = 0, next_attempt_at = ? + cooldown_ms, consecutive_declines = 0,
         last_success_at = ?, updated_at = ? WHERE account_id = ?`,
      [now, now, now, accountId],
    );
  }

  /**
   * After a decline: the attempt does not count towards the period's maximum, and the next one waits
   * decline_backoff_ms × 2^(declines − 1), at most `maxBackoffMs`.
   */
  async rechargeDeclined(
    accountId: string,
    periodKey: string,
    reason: string,
    now: number,
    maxBackoffMs: number,
  ): Promise<number> {
    const rule = await this.getRule(accountId);
    const declines = (rule?.consecutive_declines ?? 0) + 1;
    const base = rule?.decline_backoff_ms ?? 3600_000;
    const wait = Math.min(maxBackoffMs, base * 2 ** Math.min(declines - 1, 30));
    await this.sql.run(
      `UPDATE auto_recharge SET lease_until = 0, next_attempt_at = ?, consecutive_declines = consecutive_declines + 1,
         count_in_period = CASE WHEN period_key = ? AND count_in_period > 0 THEN count_in_period - 1 ELSE count_in_period END,
         last_failure_at = ?, last_failure_reason = ?, updated_at = ? WHERE account_id = ?`,
      [now + wait, periodKey, now, reason.slice(0, 500), now, accountId],
    );
    return now + wait;
  }

  /** Releases the lease without counting (nothing was charged: e.g. the rule's pack vanished). */
  async releaseRecharge(accountId: string, periodKey: string, reason: string, now: number): Promise<void> {
    await this.sql.run(
      `UPDATE auto_recharge SET lease_until = 0,
         count_in_period = CASE WHEN period_key = ? AND count_in_period > 0 THEN count_in_period - 1 ELSE count_in_period END,
         last_failure_at = ?, last_failure_reason = ?, updated_at = ? WHERE account_id = ?`,
      [periodKey, now, reason.slice(0, 500), now, accountId],
    );
  }

  // ---------- the local provider's payments ----------

  /** Records a payment unless one with this reference exists; returns the payment in force. */
  async insertLocalPayment(p: LocalPayment): Promise<LocalPayment> {
    await this.sql.run(
      `INSERT INTO local_payments (id, reference, account_id, amount_cents, currency, refunded_cents, method, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference) DO NOTHING`,
      [p.id, p.reference, p.account_id, p.amount_cents, p.currency, p.refunded_cents, p.method, p.created_at],
    );
    const rows = await this.sql.all("SELECT * FROM local_payments WHERE reference = ?", [p.reference]);
    return rowToLocalPayment(rows[0]!);
  }

  async getLocalPayment(id: string): Promise<LocalPayment | null> {
    const rows = await this.sql.all("SELECT * FROM local_payments WHERE id = ?", [id]);
    return rows[0] ? rowToLocalPayment(rows[0]) : null;
  }

  /**
   * Refunds part of a local payment once per reference: the refund row is claimed first (unique reference),
   * then the payment's refunded total grows only if it stays within the payment (else the claim is undone).
   * Returns the refund id (the existing one for a repeated reference), or null if refused.
   */
  async refundLocalPayment(
    paymentId: string,
    refundId: string,
    reference: string,
    amountCents: bigint,
    now: number,
  ): Promise<string | null> {
    const inserted = await this.sql.run(
      `INSERT INTO local_refunds (id, payment_id, reference, amount_cents, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (reference) DO NOTHING`,
      [refundId, paymentId, reference, amountCents, now],
    );
    if (inserted !== 1) {
      const rows = await this.sql.all("SELECT id FROM local_refunds WHERE reference = ?", [reference]);
      return rows[0] ? String(rows[0].id) : null;
    }
    const changed = await this.sql.run(
      "UPDATE local_payments SET refunded_cents = refunded_cents + ? WHERE id = ? AND refunded_cents + ? <= amount_cents",
      [amountCents, paymentId, amountCents],
    );
    if (changed === 1) return refundId;
    await this.sql.run("DELETE FROM local_refunds WHERE id = ?", [refundId]);
    return null;
  }
}

const cache = new WeakMap<Store, PurchaseStore>();

/** The PurchaseStore of a store (one per store, so prepared statements are reused). */
export function purchaseStoreFor(store: Store): PurchaseStore {
  let s = cache.get(store);
  if (!s) {
    if (store.dialect === "sqlite") s = new PurchaseStore(new SqliteSql((store as SqliteStore).db));
    else if (store.dialect === "postgres")
      s = new PurchaseStore(new PostgresSql((store as PostgresStore).pool));
    else throw new Error(`no purchase store for dialect ${String((store as Store).dialect)}`);
    cache.set(store, s);
  }
  return s;
}
