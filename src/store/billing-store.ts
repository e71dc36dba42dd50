import type Database from "better-sqlite3";
import type pg from "pg";
import type { Metadata, OveragePolicy } from "../ledger/types.ts";
import type { SqliteStore } from "./sqlite/store.ts";
import type { PostgresStore } from "./postgres/store.ts";
import { decodeIdCursor, encodeCursor, type Page, type Store } from "./types.ts";

export interface PlanRecord {
  id: string;
  name: string;
  /** Micro-credits granted at each period start (0 for a plan without a supply). */
  monthly_allowance: bigint;
  /** Price per period, in cents of `currency`. 0 = a free plan. */
  price_cents: bigint;
  currency: string;
  overage_policy: OveragePolicy;
  /** Money per overage credit, in millionths of a currency unit (0.05 USD/credit = 50,000). */
  overage_rate_micros: bigint;
  /** Most overage outstanding at once (micro-credits); null = no limit. Only with overage_policy allow. */
  overage_limit: bigint | null;
  rate_limit_tier: string | null;
  /** Most unused allowance carried into the next period (micro-credits); 0 = nothing carries over. */
  rollover_cap: bigint;
  status: "active" | "archived";
  metadata: Metadata;
  created_at: number;
  updated_at: number;
}

export interface SubscriptionRecord {
  id: string;
  account_id: string;
  plan_id: string;
  status: "active" | "canceled";
  /** Periods of the current term are computed from this instant (the subscription or the last plan change). */
  anchor_at: number;
  /** Increments at each immediate plan change (a new anchor); part of every derived grant id. */
  term: number;
  /** Index (in the current term) of the next period to start. */
  next_index: number;
  /** Start of that period: when the subscription is next due for renewal. */
  next_renewal_at: number;
  period_start: number | null;
  period_end: number | null;
  cancel_at_period_end: boolean;
  /** A plan to switch to at the end of the current period (a downgrade at period end). */
  pending_plan_id: string | null;
  canceled_at: number | null;
  metadata: Metadata;
  created_at: number;
  updated_at: number;
}

/** One billing cycle as it happened: the statement window. A plan change ends the cycle early. */
export interface BillingPeriodRecord {
  account_id: string;
  subscription_id: string;
  term: number;
  period_index: number;
  plan_id: string;
  start_at: number;
  end_at: number;
  grant_id: string | null;
}

/** Storage of plans, subscriptions, billing periods and job leases, over the store's connection or pool. */
export interface BillingStore {
  /** false when a plan with this id exists. */
  insertPlan(p: PlanRecord): Promise<boolean>;
  updatePlan(p: PlanRecord): Promise<void>;
  getPlan(id: string): Promise<PlanRecord | null>;
  listPlans(includeArchived: boolean): Promise<PlanRecord[]>;
  /** false when the account already has an active subscription. */
  insertSubscription(s: SubscriptionRecord): Promise<boolean>;
  getSubscription(id: string): Promise<SubscriptionRecord | null>;
  activeSubscriptionOf(accountId: string): Promise<SubscriptionRecord | null>;
  listSubscriptions(q: {
    account_id?: string;
    cursor?: string;
    limit: number;
  }): Promise<Page<SubscriptionRecord>>;
  /** Active subscriptions whose next period has started. */
  dueSubscriptions(now: number, limit: number): Promise<string[]>;
  /**
   * Takes the subscription's lock unless another holder has it until after `wallNow` (wall-clock ms).
   * Every change of a subscription happens under this lock, across processes.
   */
  lockSubscription(id: string, holder: string, until: number, wallNow: number): Promise<boolean>;
  /** Writes the subscription's fields if `holder` still has its lock; false otherwise. */
  saveSubscription(s: SubscriptionRecord, holder: string): Promise<boolean>;
  unlockSubscription(id: string, holder: string): Promise<void>;
  /** Records a cycle (ignored when it is already recorded). */
  insertPeriod(p: BillingPeriodRecord): Promise<void>;
  /** Ends a cycle early (a plan change). */
  endPeriod(subscriptionId: string, term: number, index: number, endAt: number): Promise<void>;
  /** An account's cycles, newest first. */
  listPeriods(accountId: string, limit: number): Promise<BillingPeriodRecord[]>;
  /** Takes or renews a named lease unless someone else holds it past `wallNow`. */
  acquireLease(name: string, holder: string, until: number, wallNow: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
}

type Row = Record<string, unknown>;

/** The two calls the billing store needs from either database; `?` placeholders. */
interface Sql {
  all(sql: string, args: unknown[]): Promise<Row[]>;
  run(sql: string, args: unknown[]): Promise<number>;
}

function sqliteSql(db: Database.Database): Sql {
  const stmts = new Map<string, Database.Statement>();
  const s = (sql: string) => {
    let st = stmts.get(sql);
    if (!st) stmts.set(sql, (st = db.prepare(sql)));
    return st;
  };
  return {
    all: async (sql, args) => s(sql).all(...args) as Row[],
    run: async (sql, args) => s(sql).run(...args).changes,
  };
}

function postgresSql(pool: pg.Pool): Sql {
  const numbered = new Map<string, string>();
  const conv = (sql: string) => {
    let out = numbered.get(sql);
    if (!out) {
      let n = 0;
      out = sql.replace(/\?/g, () => `$${++n}`);
      numbered.set(sql, out);
    }
    return out;
  };
  return {
    all: async (sql, args) => (await pool.query(conv(sql), args)).rows as Row[],
    run: async (sql, args) => (await pool.query(conv(sql), args)).rowCount ?? 0,
  };
}

const cache = new WeakMap<Store, BillingStore>();

/** The BillingStore of a store (one per store). */
export function billingStoreFor(store: Store): BillingStore {
  let b = cache.get(store);
  if (!b) {
    const sql =
      store.dialect === "sqlite"
        ? sqliteSql((store as SqliteStore).db)
        : postgresSql((store as PostgresStore).pool);
    b = new SqlBillingStore(sql);
    cache.set(store, b);
  }
  return b;
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const big = (v: unknown): bigint => BigInt(v as string | number | bigint);
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function rowToPlan(r: Row): PlanRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    monthly_allowance: big(r.monthly_allowance),
    price_cents: big(r.price_cents),
    currency: String(r.currency),
    overage_policy: String(r.overage_policy) as OveragePolicy,
    overage_rate_micros: big(r.overage_rate_micros),
    overage_limit: r.overage_limit === null || r.overage_limit === undefined ? null : big(r.overage_limit),
    rate_limit_tier: strOrNull(r.rate_limit_tier),
    rollover_cap: big(r.rollover_cap),
    status: String(r.status) as PlanRecord["status"],
    metadata: JSON.parse(String(r.metadata)) as Metadata,
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
  };
}

function rowToSubscription(r: Row): SubscriptionRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    plan_id: String(r.plan_id),
    status: String(r.status) as SubscriptionRecord["status"],
    anchor_at: num(r.anchor_at),
    term: num(r.term),
    next_index: num(r.next_index),
    next_renewal_at: num(r.next_renewal_at),
    period_start: numOrNull(r.period_start),
    period_end: numOrNull(r.period_end),
    cancel_at_period_end: num(r.cancel_at_period_end) === 1,
    pending_plan_id: strOrNull(r.pending_plan_id),
    canceled_at: numOrNull(r.canceled_at),
    metadata: JSON.parse(String(r.metadata)) as Metadata,
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
  };
}

function rowToPeriod(r: Row): BillingPeriodRecord {
  return {
    account_id: String(r.account_id),
    subscription_id: String(r.subscription_id),
    term: num(r.term),
    period_index: num(r.period_index),
    plan_id: String(r.plan_id),
    start_at: num(r.start_at),
    end_at: num(r.end_at),
    grant_id: strOrNull(r.grant_id),
  };
}

const PLAN_COLS =
  "id, name, monthly_allowance, price_cents, currency, overage_policy, overage_rate_micros, overage_limit, rate_limit_tier, rollover_cap, status, metadata, created_at, updated_at";

function planArgs(p: PlanRecord): unknown[] {
  return [
    p.id,
    p.name,
    p.monthly_allowance,
    p.price_cents,
    p.currency,
    p.overage_policy,
    p.overage_rate_micros,
    p.overage_limit,
    p.rate_limit_tier,
    p.rollover_cap,
    p.status,
    JSON.stringify(p.metadata),
    p.created_at,
    p.updated_at,
  ];
}

const SUB_FIELDS = [
  "plan_id",
  "status",
  "anchor_at",
  "term",
  "next_index",
  "next_renewal_at",
  "period_start",
  "period_end",
  "cancel_at_period_end",
  "pending_plan_id",
  "canceled_at",
  "metadata",
  "updated_at",
] as const;

function subArgs(s: SubscriptionRecord): unknown[] {
  return [
    s.plan_id,
    s.status,
    s.anchor_at,
    s.term,
    s.next_index,
    s.next_renewal_at,
    s.period_start,
    s.period_end,
    s.cancel_at_period_end ? 1 : 0,
    s.pending_plan_id,
    s.canceled_at,
    JSON.stringify(s.metadata),
    s.updated_at,
  ];
}

function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err.code === "23505" || /UNIQUE constraint failed/.test(err.message ?? "");
}

class SqlBillingStore implements BillingStore {
  constructor(private readonly sql: Sql) {}

  async insertPlan(p: PlanRecord): Promise<boolean> {
    const n = await this.sql.run(
      `INSERT INTO plans (${PLAN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      planArgs(p),
    );
    return n === 1;
  }

  async updatePlan(p: PlanRecord): Promise<void> {
    const [id, ...rest] = planArgs(p);
    await this.sql.run(
      `UPDATE plans SET name = ?, monthly_allowance = ?, price_cents = ?, currency = ?, overage_policy = ?,
       overage_rate_micros = ?, overage_limit = ?, rate_limit_tier = ?, rollover_cap = ?, status = ?, metadata = ?,
       created_at = ?, updated_at = ? WHERE id = ?`,
      [...rest, id],
    );
  }

  async getPlan(id: string): Promise<PlanRecord | null> {
    const rows = await this.sql.all("SELECT * FROM plans WHERE id = ?", [id]);
    return rows[0] ? rowToPlan(rows[0]) : null;
  }

  async listPlans(includeArchived: boolean): Promise<PlanRecord[]> {
    const rows = includeArchived
      ? await this.sql.all("SELECT * FROM plans ORDER BY id LIMIT 1000", [])
      : await this.sql.all("SELECT * FROM plans WHERE status = 'active' ORDER BY id LIMIT 1000", []);
    return rows.map(rowToPlan);
  }

  async insertSubscription(s: SubscriptionRecord): Promise<boolean> {
    try {
      await this.sql.run(
        `INSERT INTO subscriptions (id, account_id, created_at, ${SUB_FIELDS.join(", ")})
         VALUES (?, ?, ?, ${SUB_FIELDS.map(() => "?").join(", ")})`,
        [s.id, s.account_id, s.created_at, ...subArgs(s)],
      );
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async getSubscription(id: string): Promise<SubscriptionRecord | null> {
    const rows = await this.sql.all("SELECT * FROM subscriptions WHERE id = ?", [id]);
    return rows[0] ? rowToSubscription(rows[0]) : null;
  }

  async activeSubscriptionOf(accountId: string): Promise<SubscriptionRecord | null> {
    const rows = await this.sql.all(
      "SELECT * FROM subscriptions WHERE account_id = ? AND status = 'active'",
      [accountId],
    );
    return rows[0] ? rowToSubscription(rows[0]) : null;
  }

  async listSubscriptions(q: {
    account_id?: string;
    cursor?: string;
    limit: number;
  }): Promise<Page<SubscriptionRecord>> {
    const after = decodeIdCursor(q.cursor);
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.account_id !== undefined) {
      where.push("account_id = ?");
      args.push(q.account_id);
    }
    if (after !== null) {
      where.push("id > ?");
      args.push(after);
    }
    const rows = await this.sql.all(
      `SELECT * FROM subscriptions ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY id LIMIT ?`,
      [...args, q.limit + 1],
    );
    const data = rows.slice(0, q.limit).map(rowToSubscription);
    return { data, next_cursor: rows.length > q.limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }

  async dueSubscriptions(now: number, limit: number): Promise<string[]> {
    const rows = await this.sql.all(
      "SELECT id FROM subscriptions WHERE status = 'active' AND next_renewal_at <= ? ORDER BY next_renewal_at LIMIT ?",
      [now, limit],
    );
    return rows.map((r) => String(r.id));
  }

  async lockSubscription(id: string, holder: string, until: number, wallNow: number): Promise<boolean> {
    const n = await this.sql.run(
      `UPDATE subscriptions SET lock_holder = ?, locked_until = ?
       WHERE id = ? AND (lock_holder IS NULL OR lock_holder = ? OR locked_until < ?)`,
      [holder, until, id, holder, wallNow],
    );
    return n === 1;
  }

  async saveSubscription(s: SubscriptionRecord, holder: string): Promise<boolean> {
    const n = await this.sql.run(
      `UPDATE subscriptions SET ${SUB_FIELDS.map((f) => `${f} = ?`).join(", ")} WHERE id = ? AND lock_holder = ?`,
      [...subArgs(s), s.id, holder],
    );
    return n === 1;
  }

  async unlockSubscription(id: string, holder: string): Promise<void> {
    await this.sql.run(
      "UPDATE subscriptions SET lock_holder = NULL, locked_until = NULL WHERE id = ? AND lock_holder = ?",
      [id, holder],
    );
  }

  async insertPeriod(p: BillingPeriodRecord): Promise<void> {
    await this.sql.run(
      `INSERT INTO billing_periods (account_id, subscription_id, term, period_index, plan_id, start_at, end_at, grant_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subscription_id, term, period_index) DO NOTHING`,
      [p.account_id, p.subscription_id, p.term, p.period_index, p.plan_id, p.start_at, p.end_at, p.grant_id],
    );
  }

  async endPeriod(subscriptionId: string, term: number, index: number, endAt: number): Promise<void> {
    await this.sql.run(
      "UPDATE billing_periods SET end_at = ? WHERE subscription_id = ? AND term = ? AND period_index = ? AND end_at > ?",
      [endAt, subscriptionId, term, index, endAt],
    );
  }

  async listPeriods(accountId: string, limit: number): Promise<BillingPeriodRecord[]> {
    const rows = await this.sql.all(
      "SELECT * FROM billing_periods WHERE account_id = ? ORDER BY start_at DESC, term DESC LIMIT ?",
      [accountId, limit],
    );
    return rows.map(rowToPeriod);
  }

  async acquireLease(name: string, holder: string, until: number, wallNow: number): Promise<boolean> {
    const n = await this.sql.run(
      `INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < ?`,
      [name, holder, until, wallNow],
    );
    return n === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.sql.run("DELETE FROM job_leases WHERE name = ? AND holder = ?", [name, holder]);
  }
}
