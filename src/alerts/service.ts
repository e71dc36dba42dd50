/**
 * Alert rules per account and their evaluation. After commits of this process (engine.onCommit) and on a
 * periodic scan (other processes' commits, time-based rules such as expiries and forecasts), the metrics of
 * an account are computed once and every rule is judged; a crossing moves the rule's state with a
 * conditional update (armed -> fired, fired -> armed) and only the evaluation that made the move emits
 * `alert.triggered` / `alert.recovered`. Several processes racing over one crossing emit one event.
 */
import { AnalyticsService } from "../analytics/service.ts";
import { BudgetService } from "../budgets/service.ts";
import { formatCredits, parseCredits } from "../domain/amount.ts";
import { runOut } from "../domain/analytics.ts";
import {
  isBreached,
  transition,
  validateCondition,
  type AlertCondition,
  type AlertKind,
  type AlertMetrics,
  type AlertState,
} from "../domain/alerts.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { int, sqlFor, type Row, type Sql } from "../events/sql.ts";
import type { Engine } from "../ledger/engine.ts";
import type { Metadata } from "../ledger/types.ts";

export const MAX_RULES_PER_ACCOUNT = 50;
/** Least time between two evaluations after commits (a crossing is seen within this, or the next scan). */
export const EVALUATE_EVERY_MS = 250;
export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface AlertRuleRecord {
  id: string;
  account_id: string;
  condition: AlertCondition;
  severity: Severity;
  /** Free-form, echoed in the events (e.g. `{ "auto_purchase": { "amount_usd": 50 } }` for auto-recharge). */
  metadata: Metadata;
  created_by: string;
  created_at: number;
  state: AlertState;
  state_changed_at: number;
  /** How many times it fired. */
  crossings: number;
}

interface StoredCondition {
  condition: Record<string, unknown>;
  severity: Severity;
  metadata: Metadata;
}

function rowToRule(r: Row): AlertRuleRecord {
  const stored = JSON.parse(String(r.condition)) as StoredCondition;
  const c = stored.condition;
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    condition: {
      ...(c as unknown as AlertCondition),
      ...(typeof c.amount === "string" ? { amount: parseCredits(c.amount, "amount") } : {}),
    },
    severity: stored.severity,
    metadata: stored.metadata,
    created_by: String(r.created_by),
    created_at: int(r.created_at),
    state: String(r.state) as AlertState,
    state_changed_at: int(r.state_changed_at),
    crossings: int(r.crossings),
  };
}

export interface RuleInput {
  condition: AlertCondition;
  severity?: Severity;
  metadata?: Metadata;
}

export class AlertService {
  private readonly sql: Sql;
  readonly analytics: AnalyticsService;
  private readonly budgets: BudgetService;
  /** Accounts known to have rules (refreshed by scans and by this process's changes). */
  private readonly watched = new Set<string>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly engine: Engine,
    analytics?: AnalyticsService,
  ) {
    this.sql = sqlFor(engine.store);
    this.analytics = analytics ?? new AnalyticsService(engine);
    this.budgets = new BudgetService(engine);
  }

  async create(accountId: string, input: RuleInput, createdBy: string): Promise<AlertRuleRecord> {
    const condition = validateCondition(input.condition);
    const severity = input.severity ?? "warning";
    if (!SEVERITIES.includes(severity))
      throw TallyError.validation("severity", `must be one of ${SEVERITIES.join(", ")}`);
    const metadata = input.metadata ?? {};
    if (JSON.stringify(metadata).length > 2048)
      throw TallyError.validation("metadata", "must be at most 2048 bytes");
    await this.engine.getAccount(accountId);
    if (condition.budget_id !== undefined) await this.budgets.require(accountId, condition.budget_id);
    const n = await this.sql.one("SELECT COUNT(*) AS n FROM alert_rules WHERE account_id = ?", [accountId]);
    if (int(n?.n) >= MAX_RULES_PER_ACCOUNT)
      throw TallyError.validation("account_id", `has ${MAX_RULES_PER_ACCOUNT} alert rules, the most allowed`);
    const now = this.engine.clock.now();
    const id = newId("alr", now);
    const stored: StoredCondition = {
      condition: {
        ...condition,
        ...(condition.amount !== undefined ? { amount: formatCredits(condition.amount) } : {}),
      },
      severity,
      metadata,
    };
    await this.sql.run(
      `INSERT INTO alert_rules (id, account_id, kind, condition, created_by, created_at, state, state_changed_at, crossings)
       VALUES (?, ?, ?, ?, ?, ?, 'armed', ?, 0)`,
      [id, accountId, condition.kind, JSON.stringify(stored), createdBy, now, now],
    );
    this.watched.add(accountId);
    // A rule already breached when it is made fires now.
    await this.evaluate(accountId);
    return this.require(accountId, id);
  }

  async list(accountId: string): Promise<AlertRuleRecord[]> {
    return (
      await this.sql.all("SELECT * FROM alert_rules WHERE account_id = ? ORDER BY id", [accountId])
    ).map(rowToRule);
  }

  async require(accountId: string, id: string): Promise<AlertRuleRecord> {
    const r = await this.sql.one("SELECT * FROM alert_rules WHERE id = ? AND account_id = ?", [
      id,
      accountId,
    ]);
    if (!r) throw TallyError.notFound("alert rule", id, "rule_id");
    return rowToRule(r);
  }

  async remove(accountId: string, id: string): Promise<void> {
    await this.require(accountId, id);
    await this.sql.run("DELETE FROM alert_rules WHERE id = ? AND account_id = ?", [id, accountId]);
  }

  /** The metrics every rule kind reads, computed once per evaluation. */
  async metrics(accountId: string): Promise<AlertMetrics> {
    const now = this.engine.clock.now();
    const account = await this.engine.getAccount(accountId);
    const period = await this.analytics.periodOf(accountId, now);
    const [balance, state, used, subscription, rates, budgets] = await Promise.all([
      this.engine.balance(accountId),
      this.engine.store.accountState(accountId),
      this.analytics.used(accountId, period.start, now + 1),
      this.analytics.subscriptionAllowance(accountId, period),
      this.analytics.rates(accountId, now, account.created_at),
      this.budgets.list(accountId),
    ]);
    let nextExpiry: number | null = null;
    for (const g of state?.grants ?? [])
      if (g.status === "active" && g.remaining > 0n && g.expires_at !== null && g.expires_at > now)
        nextExpiry = nextExpiry === null ? g.expires_at : Math.min(nextExpiry, g.expires_at);
    const allowance = subscription > 0n ? subscription : used + balance.available;
    return {
      now,
      available: balance.available,
      allowance,
      used_in_period: used,
      next_expiry_at: nextExpiry,
      run_out_at: runOut(balance.available, rates.trailing.rate_per_ms, now).run_out_at,
      recent_rate: rates.recent_rate,
      trailing_rate: rates.baseline_rate,
      budgets: new Map(budgets.map((b) => [b.id, [b.spent, b.limit] as [bigint, bigint]])),
    };
  }

  /** Judges every rule of the account; returns the transitions this call made (and emitted). */
  async evaluate(
    accountId: string,
  ): Promise<{ rule_id: string; kind: AlertKind; change: "trigger" | "recover" }[]> {
    const rules = await this.list(accountId);
    if (rules.length === 0) {
      this.watched.delete(accountId);
      return [];
    }
    this.watched.add(accountId);
    const m = await this.metrics(accountId);
    const made: { rule_id: string; kind: AlertKind; change: "trigger" | "recover" }[] = [];
    for (const rule of rules) {
      const breached = isBreached(rule.condition, m);
      const change = transition(rule.state, breached);
      if (!change) continue;
      const [from, to] = change === "trigger" ? ["armed", "fired"] : ["fired", "armed"];
      const won = await this.sql.run(
        `UPDATE alert_rules SET state = ?, state_changed_at = ?, crossings = crossings + ? WHERE id = ? AND state = ?`,
        [to, m.now, change === "trigger" ? 1 : 0, rule.id, from],
      );
      if (won !== 1) continue; // another evaluation moved it first and emitted the event
      await this.engine.publish([
        {
          type: change === "trigger" ? "alert.triggered" : "alert.recovered",
          account_id: accountId,
          data: eventData(rule, m),
        },
      ]);
      made.push({ rule_id: rule.id, kind: rule.condition.kind, change });
    }
    return made;
  }

  /** Evaluates after this process's commits (debounced per account) and scans every `scanMs`. */
  start(scanMs = 60_000): void {
    if (this.timer) return;
    this.unsubscribe = this.engine.onCommit((c) => {
      // Alert events themselves need no re-evaluation.
      if (c.events.length > 0 && c.events.every((e) => e.type.startsWith("alert."))) return;
      for (const a of c.account_ids) if (this.watched.has(a)) this.dirty.add(a);
      if (this.dirty.size > 0) void this.flush();
    });
    this.timer = setInterval(() => void this.scan().catch(() => {}), scanMs);
    this.timer.unref();
    void this.scan().catch(() => {});
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.flushing;
  }

  /** Evaluates the accounts changed since the last flush. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      try {
        while (this.dirty.size > 0) {
          const batch = [...this.dirty];
          this.dirty.clear();
          for (const a of batch) await this.evaluate(a).catch(() => {});
          // A busy account is evaluated at most every EVALUATE_EVERY_MS, not after each of its commits.
          if (this.dirty.size > 0) await new Promise((r) => setTimeout(r, EVALUATE_EVERY_MS));
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  /** Evaluates every account that has rules (paged by account id). */
  async scan(): Promise<number> {
    let after = "";
    let n = 0;
    for (;;) {
      const rows = await this.sql.all(
        "SELECT DISTINCT account_id FROM alert_rules WHERE account_id > ? ORDER BY account_id LIMIT 200",
        [after],
      );
      for (const r of rows) {
        await this.evaluate(String(r.account_id)).catch(() => {});
        n++;
      }
      if (rows.length < 200) return n;
      after = String(rows[rows.length - 1]!.account_id);
    }
  }
}

function eventData(rule: AlertRuleRecord, m: AlertMetrics): Metadata {
  const c = rule.condition;
  const budget = c.budget_id !== undefined ? m.budgets.get(c.budget_id) : undefined;
  return {
    rule_id: rule.id,
    kind: c.kind,
    severity: rule.severity,
    condition: {
      ...(c.amount !== undefined ? { amount: formatCredits(c.amount) } : {}),
      ...(c.percent !== undefined ? { percent: c.percent } : {}),
      ...(c.days !== undefined ? { days: c.days } : {}),
      ...(c.hours !== undefined ? { hours: c.hours } : {}),
      ...(c.multiple !== undefined ? { multiple: c.multiple } : {}),
      ...(c.budget_id !== undefined ? { budget_id: c.budget_id } : {}),
    },
    available: formatCredits(m.available),
    allowance: m.allowance === null ? null : formatCredits(m.allowance),
    used_in_period: formatCredits(m.used_in_period),
    next_expiry_at: m.next_expiry_at === null ? null : new Date(m.next_expiry_at).toISOString(),
    run_out_at: m.run_out_at === null ? null : new Date(m.run_out_at).toISOString(),
    ...(budget ? { budget_spent: formatCredits(budget[0]), budget_limit: formatCredits(budget[1]) } : {}),
    metadata: rule.metadata,
    at: new Date(m.now).toISOString(),
  };
}
