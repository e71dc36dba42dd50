import { formatCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import type { AutoRechargeRule, AutoRechargeState } from "../store/purchase-store.ts";
import { methodOf, getPack } from "./purchases-catalog.ts";
import type { Purchases, PurchaseSpec } from "./purchases.ts";
import { loadPayg, loadTiers, quote } from "./payg.ts";

export const AUTO_RECHARGE_LIMITS = {
  MAX_PER_PERIOD: 100,
  MAX_COOLDOWN_MS: 30 * 86_400_000,
  DEFAULT_COOLDOWN_MS: 60_000,
  DEFAULT_DECLINE_BACKOFF_MS: 3600_000,
  MAX_DECLINE_BACKOFF_MS: 24 * 3600_000,
  /** How long one attempt may hold the rule before another may try (a crashed attempt's lease runs out). */
  LEASE_MS: 2 * 60_000,
  SWEEP_PAGE: 200,
} as const;

const RULE_CACHE_MS = 30_000;
const RULE_CACHE_MAX = 100_000;

/** The period "maximum per period" counts in, without a subscription: the calendar month, UTC ("2026-11"). */
export function periodKey(now: number): string {
  return new Date(now).toISOString().slice(0, 7);
}

/** What auto-recharge needs to know of an account's subscription (src/store/billing-store.ts). */
export interface SubscriptionPeriods {
  activeSubscriptionOf(accountId: string): Promise<{
    id: string;
    status: string;
    period_start: number | null;
    period_end: number | null;
  } | null>;
}

/**
 * The counting period of an account: its subscription's billing period when it has an active one
 * ("sub_…@2026-11-10T12:00:00.000Z", named by its start), else the calendar month (UTC). Periods are
 * contiguous, so when now is past the stored period's end (its renewal has not run yet) the period is the
 * next one, which starts at that end: the key does not change when the renewal then runs.
 */
export function subscriptionPeriodOf(
  periods: SubscriptionPeriods,
): (accountId: string, now: number) => Promise<string> {
  return async (accountId, now) => {
    const sub = await periods.activeSubscriptionOf(accountId);
    if (!sub || sub.status !== "active" || sub.period_start === null || sub.period_end === null)
      return periodKey(now);
    const start = now < sub.period_end ? sub.period_start : sub.period_end;
    return `${sub.id}@${new Date(start).toISOString()}`;
  };
}

export type CheckOutcome =
  | { action: "none"; reason: string }
  | { action: "recharged"; purchase_id: string }
  | { action: "declined"; purchase_id: string; code: string; next_attempt_at: number }
  | { action: "failed"; reason: string };

/**
 * Auto-recharge: when an account's available balance falls below its rule's threshold, buy the rule's pack or
 * amount with the saved payment method. Triggered in-process after every commit that touches the account
 * (engine.onCommit) and by the scheduler (sweep) for the rest. At most `max_per_period` purchases per calendar
 * month, `cooldown_ms` between them, and a doubling back-off after a decline: all decided by one conditional
 * update of the rule's row, so any number of concurrent triggers on any number of nodes buy at most that.
 */
export class AutoRecharge {
  private readonly running = new Map<string, Promise<CheckOutcome>>();
  private readonly again = new Set<string>();
  private readonly errors: ((err: unknown) => void)[] = [];

  private readonly periodOf: (accountId: string, now: number) => Promise<string>;

  constructor(
    readonly engine: Engine,
    readonly purchases: Purchases,
    opts: { periodOf?: (accountId: string, now: number) => Promise<string> } = {},
  ) {
    this.periodOf = opts.periodOf ?? (async (_accountId, now) => periodKey(now));
  }

  /** Validates and saves an account's rule (its counters and back-off state are kept). */
  async putRule(input: AutoRechargeRule): Promise<AutoRechargeState> {
    const store = this.purchases.store;
    await this.engine.getAccount(input.account_id);
    if (input.threshold <= 0n) throw TallyError.validation("threshold", "must be positive");
    if ((input.pack_id === null) === (input.amount_cents === null))
      throw TallyError.validation("pack_id", "give either pack_id or amount_usd, not both");
    if (input.pack_id !== null) {
      const pack = await getPack(store, input.pack_id);
      if (!pack.active) throw TallyError.validation("pack_id", "is a pack that is no longer sold");
    } else {
      const [s, tiers] = await Promise.all([loadPayg(this.engine.store), loadTiers(this.engine.store)]);
      quote(input.amount_cents!, s, "amount_usd", tiers);
    }
    await methodOf(store, input.account_id, input.payment_method_id);
    const L = AUTO_RECHARGE_LIMITS;
    if (
      !Number.isInteger(input.max_per_period) ||
      input.max_per_period < 1 ||
      input.max_per_period > L.MAX_PER_PERIOD
    )
      throw TallyError.validation("max_per_period", `must be an integer from 1 to ${L.MAX_PER_PERIOD}`);
    if (
      !Number.isInteger(input.cooldown_ms) ||
      input.cooldown_ms < 0 ||
      input.cooldown_ms > L.MAX_COOLDOWN_MS
    )
      throw TallyError.validation(
        "cooldown_seconds",
        `must be from 0 to ${L.MAX_COOLDOWN_MS / 1000} seconds`,
      );
    if (
      !Number.isInteger(input.decline_backoff_ms) ||
      input.decline_backoff_ms < 1000 ||
      input.decline_backoff_ms > L.MAX_DECLINE_BACKOFF_MS
    )
      throw TallyError.validation(
        "decline_backoff_seconds",
        `must be from 1 to ${L.MAX_DECLINE_BACKOFF_MS / 1000} seconds`,
      );
    await store.putRule(input, this.engine.clock.now());
    this.rememberNoRule(input.account_id, input.enabled);
    return (await store.getRule(input.account_id))!;
  }

  async getRule(accountId: string): Promise<AutoRechargeState> {
    const r = await this.purchases.store.getRule(accountId);
    if (!r) throw TallyError.notFound("auto-recharge rule", accountId, "account_id");
    return r;
  }

  /**
   * Which accounts have no enabled rule, remembered for RULE_CACHE_MS of real time: commits touch many
   * accounts, most without auto-recharge, and the debit path must not pay a read for each. A rule put or
   * removed here is known at once; one changed on another node within RULE_CACHE_MS (and the scheduler's
   * sweep, which reads the table, covers that gap).
   */
  private readonly noRule = new Map<string, number>();

  private rememberNoRule(accountId: string, has: boolean): void {
    if (has) {
      this.noRule.delete(accountId);
      return;
    }
    if (this.noRule.size >= RULE_CACHE_MAX) this.noRule.delete(this.noRule.keys().next().value!);
    this.noRule.set(accountId, Date.now() + RULE_CACHE_MS);
  }

  /** Removes an account's rule; false if it had none. */
  async deleteRule(accountId: string): Promise<boolean> {
    const removed = await this.purchases.store.deleteRule(accountId);
    this.rememberNoRule(accountId, false);
    return removed;
  }

  /** Subscribes to the engine's commits: every account a commit changed is checked. Returns the unsubscribe. */
  attach(): () => void {
    return this.engine.onCommit((c) => {
      for (const id of c.account_ids) this.trigger(id);
    });
  }

  onError(cb: (err: unknown) => void): void {
    this.errors.push(cb);
  }

  /**
   * Checks an account soon, in the background. Checks of one account in this process never overlap: a
   * trigger during a check runs one more check after it (the database decides across processes).
   */
  trigger(accountId: string): void {
    const until = this.noRule.get(accountId);
    if (until !== undefined) {
      if (until > Date.now()) return;
      this.noRule.delete(accountId);
    }
    if (this.running.has(accountId)) {
      this.again.add(accountId);
      return;
    }
    const run = (async () => {
      let last: CheckOutcome = { action: "none", reason: "not run" };
      do {
        this.again.delete(accountId);
        last = await this.check(accountId);
      } while (this.again.has(accountId));
      return last;
    })()
      .catch((err: unknown) => {
        for (const cb of this.errors) cb(err);
        return { action: "failed", reason: String(err) } as CheckOutcome;
      })
      .finally(() => this.running.delete(accountId));
    this.running.set(accountId, run);
  }

  /** Waits for background checks (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  /** One check: below the threshold and allowed by the rule's state → one purchase. */
  async check(accountId: string): Promise<CheckOutcome> {
    const store = this.purchases.store;
    const rule = await store.getRule(accountId);
    this.rememberNoRule(accountId, !!rule?.enabled);
    if (!rule || !rule.enabled) return { action: "none", reason: "no enabled rule" };
    const now = this.engine.clock.now();
    // Cheap refusals first, from the row just read; the conditional update below is what decides.
    if (rule.lease_until > now) return { action: "none", reason: "an attempt is in progress" };
    if (rule.next_attempt_at > now) return { action: "none", reason: "cooling down" };
    const period = await this.periodOf(accountId, now);
    if (rule.period_key === period && rule.count_in_period >= rule.max_per_period)
      return { action: "none", reason: "maximum per period reached" };
    // Nobody is charged for an account that takes no usage (suspended) or no credits at all (closed).
    const account = await this.engine.getAccount(accountId);
    if (account.status !== "active") return { action: "none", reason: `the account is ${account.status}` };
    const balance = await this.engine.balance(accountId);
    if (balance.available >= rule.threshold) return { action: "none", reason: "above the threshold" };
    const count = await store.claimRecharge(accountId, period, now, AUTO_RECHARGE_LIMITS.LEASE_MS);
    if (count === null) return { action: "none", reason: "another attempt won" };

    const spec: PurchaseSpec = rule.pack_id
      ? { pack_id: rule.pack_id }
      : { amount_cents: rule.amount_cents! };
    const base = {
      threshold: formatCredits(rule.threshold),
      balance: formatCredits(balance.available),
      attempt_in_period: count,
      period,
    };
    let method;
    try {
      method = await methodOf(store, accountId, rule.payment_method_id);
      await this.purchases.price(spec);
    } catch (err) {
      const reason = err instanceof TallyError ? err.message : String(err);
      await store.releaseRecharge(accountId, period, reason, now);
      await this.engine.publish([
        {
          type: "auto_recharge.failed",
          account_id: accountId,
          data: { ...base, code: "invalid_rule", reason },
        },
      ]);
      return { action: "failed", reason };
    }
    // auto_recharge.succeeded travels with the purchase's grant: written once, in the same transaction.
    const r = await this.purchases.chargeSaved(accountId, spec, method, (p) => [
      {
        type: "auto_recharge.succeeded",
        account_id: accountId,
        data: {
          ...base,
          purchase_id: p.id,
          credits: formatCredits(p.credits),
          amount_cents: Number(p.amount_cents),
          currency: p.currency,
        },
      },
    ]);
    const after = this.engine.clock.now();
    if (r.status === "succeeded") {
      await store.rechargeSucceeded(accountId, after);
      return { action: "recharged", purchase_id: r.purchase.id };
    }
    const next = await store.rechargeDeclined(
      accountId,
      period,
      `${r.code}: ${r.message}`,
      after,
      AUTO_RECHARGE_LIMITS.MAX_DECLINE_BACKOFF_MS,
    );
    await this.engine.publish([
      {
        type: "auto_recharge.failed",
        account_id: accountId,
        data: {
          ...base,
          purchase_id: r.purchase.id,
          code: r.code,
          reason: r.message,
          next_attempt_at: new Date(next).toISOString(),
        },
      },
    ]);
    return { action: "declined", purchase_id: r.purchase.id, code: r.code, next_attempt_at: next };
  }

  /** The scheduler's pass: checks every enabled rule, a page at a time. */
  async sweep(): Promise<{ checked: number; recharged: number }> {
    let after = "";
    const out = { checked: 0, recharged: 0 };
    for (let round = 0; round < 10_000; round++) {
      const rules = await this.purchases.store.enabledRules(after, AUTO_RECHARGE_LIMITS.SWEEP_PAGE);
      if (rules.length === 0) break;
      for (const r of rules) {
        const o = await this.check(r.account_id).catch((err: unknown): CheckOutcome => ({
          action: "failed",
          reason: String(err),
        }));
        out.checked++;
        if (o.action === "recharged") out.recharged++;
      }
      after = rules[rules.length - 1]!.account_id;
      if (rules.length < AUTO_RECHARGE_LIMITS.SWEEP_PAGE) break;
    }
    return out;
  }
}
