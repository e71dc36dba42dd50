import { createHash, randomBytes } from "node:crypto";
import { MAX_PERIOD_INDEX, period, periodAt, periodStart, type Period } from "../domain/cycles.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { Engine } from "../ledger/engine.ts";
import { toApi } from "../domain/api-json.ts";
import type { EventDraft } from "../events/types.ts";
import { DEFAULT_PRIORITY, type Metadata } from "../ledger/types.ts";
import { checkId } from "../ledger/validate.ts";
import {
  billingStoreFor,
  type BillingStore,
  type PlanRecord,
  type SubscriptionRecord,
} from "../store/billing-store.ts";

export interface SubscriptionsOptions {
  /** How long a subscription's lock is held before another process may take it over (wall-clock ms). */
  lockTtlMs?: number;
  /** How long an operation waits for another holder's lock before giving up. */
  lockWaitMs?: number;
}

export interface SubscribeInput {
  id?: string;
  account_id: string;
  plan_id: string;
  /** Periods are computed from this instant (default: now). At most a year away either way. */
  anchor_at?: number;
  metadata?: Metadata;
}

export type ChangeTiming = "now" | "period_end";

const YEAR_MS = 366 * 86_400_000;
let lockSeq = 0;

/** A stable short digest for derived ids (ids are at most 128 characters whatever the inputs). */
function digest(text: string): string {
  return createHash("sha256").update(text).digest("base64url").slice(0, 22);
}

/** The monthly grant of a period: derived, so a renewal run twice (anywhere) is a replay. */
export function allowanceGrantId(subId: string, term: number, index: number): string {
  return `grt_cyc_${digest(subId)}_${term}_${index}`;
}
/** The rollover grant of a period (unused allowance of the previous period, up to the plan's cap). */
export function rolloverGrantId(subId: string, term: number, index: number): string {
  return `grt_rol_${digest(subId)}_${term}_${index}`;
}
/**
 * Subscriptions and their cycles. Every change of a subscription runs under its lock (a row lock with a
 * wall-clock expiry, so a crashed holder cannot block it for long), and every grant it makes has an id
 * derived from (subscription, term, period), so a renewal repeated by another process or after a crash is
 * a replay: each period is granted exactly once.
 */
export class Subscriptions {
  readonly db: BillingStore;
  private readonly instance = randomBytes(6).toString("hex");
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;

  constructor(
    readonly engine: Engine,
    opts: SubscriptionsOptions = {},
  ) {
    this.db = billingStoreFor(engine.store);
    this.lockTtlMs = opts.lockTtlMs ?? 30_000;
    this.lockWaitMs = opts.lockWaitMs ?? 10_000;
  }

  private now(): number {
    return this.engine.clock.now();
  }

  async plan(id: string): Promise<PlanRecord> {
    const p = await this.db.getPlan(id);
    if (!p) throw TallyError.notFound("plan", id, "plan_id");
    return p;
  }

  async get(id: string): Promise<SubscriptionRecord> {
    const s = await this.db.getSubscription(id);
    if (!s) throw TallyError.notFound("subscription", id, "subscription_id");
    return s;
  }

  // ---------- commands ----------

  async subscribe(input: SubscribeInput): Promise<{ subscription: SubscriptionRecord; replay: boolean }> {
    if (input.id !== undefined) {
      checkId(input.id, "id");
      const existing = await this.db.getSubscription(input.id);
      if (existing) {
        if (existing.account_id !== input.account_id)
          throw new TallyError(
            "idempotency_conflict",
            `subscription ${input.id} exists for another account`,
            {
              field: "id",
            },
          );
        return { subscription: await this.renew(existing.id), replay: true };
      }
    }
    const account = await this.engine.getAccount(input.account_id);
    if (account.status === "closed")
      throw new TallyError("account_not_active", `account ${account.id} is closed`, { field: "account_id" });
    const plan = await this.plan(input.plan_id);
    if (plan.status !== "active")
      throw TallyError.validation("plan_id", `plan ${plan.id} is archived and takes no new subscriptions`);
    const now = this.now();
    const anchor = input.anchor_at ?? now;
    if (!Number.isSafeInteger(anchor) || Math.abs(anchor - now) > YEAR_MS)
      throw TallyError.validation("anchor_at", "must be within a year of now");
    const sub: SubscriptionRecord = {
      id: input.id ?? newId("sub", now),
      account_id: account.id,
      plan_id: plan.id,
      status: "active",
      anchor_at: anchor,
      term: 0,
      next_index: 0,
      next_renewal_at: anchor,
      period_start: null,
      period_end: null,
      cancel_at_period_end: false,
      pending_plan_id: null,
      canceled_at: null,
      metadata: input.metadata ?? {},
      created_at: now,
      updated_at: now,
    };
    if (!(await this.db.insertSubscription(sub))) {
      const again = input.id ? await this.db.getSubscription(input.id) : null;
      if (again) return { subscription: await this.renew(again.id), replay: true };
      throw new TallyError(
        "subscription_conflict",
        `account ${account.id} already has an active subscription`,
        {
          field: "account_id",
        },
      );
    }
    await this.engine.setAccountOverage(account.id, plan.overage_policy, plan.overage_limit);
    await this.engine.publish([subscriptionEvent("subscription.created", sub)]);
    return { subscription: await this.renew(sub.id), replay: false };
  }

  /**
   * Changes the plan. "now": the old plan's monthly grant becomes a carryover grant (used first) until the
   * old period's end, the new plan's period starts now and its allowance is granted at once. "period_end":
   * the new plan takes over when the current period ends (no carryover: the old period is over).
   */
  async change(subId: string, planId: string, timing: ChangeTiming = "now"): Promise<SubscriptionRecord> {
    const plan = await this.plan(planId);
    if (plan.status !== "active")
      throw TallyError.validation("plan_id", `plan ${plan.id} is archived and takes no new subscriptions`);
    return this.withLock(subId, async (sub, save) => {
      sub = await this.renewLocked(sub, save);
      requireActive(sub);
      if (timing === "period_end") {
        if (sub.plan_id === planId && sub.pending_plan_id === null)
          throw TallyError.validation("plan_id", "is the current plan");
        sub.pending_plan_id = sub.plan_id === planId ? null : planId;
        sub.updated_at = this.now();
        await save(sub);
        await this.engine.publish([
          subscriptionEvent("subscription.change_scheduled", sub, { effective_at: toIso(sub.period_end) }),
        ]);
        return sub;
      }
      if (sub.plan_id === planId) throw TallyError.validation("plan_id", "is the current plan");
      const now = this.now();
      if (sub.period_start !== null && sub.period_end !== null && sub.next_index > 0) {
        const index = sub.next_index - 1;
        // The old plan's monthly grant stays until the old period's end, as a carryover used first.
        const oldGrant = await this.engine.store.getGrant(allowanceGrantId(sub.id, sub.term, index));
        if (oldGrant && oldGrant.status === "active" && (oldGrant.expires_at ?? Infinity) > now)
          await this.engine.reclassifyGrant(oldGrant.id, "carryover", DEFAULT_PRIORITY.carryover);
        await this.db.endPeriod(sub.id, sub.term, index, now);
      }
      const fromPlan = sub.plan_id;
      sub.plan_id = planId;
      sub.pending_plan_id = null;
      sub.cancel_at_period_end = false;
      sub.term += 1;
      sub.anchor_at = now;
      sub.next_index = 0;
      sub.next_renewal_at = now;
      sub.updated_at = now;
      await save(sub);
      await this.engine.setAccountOverage(sub.account_id, plan.overage_policy, plan.overage_limit);
      await this.engine.publish([
        subscriptionEvent("subscription.changed", sub, { from_plan_id: fromPlan, timing: "now" }),
      ]);
      return this.renewLocked(sub, save);
    });
  }

  /** Cancels at the end of the current period: no renewal after it. Idempotent. */
  async cancel(subId: string): Promise<SubscriptionRecord> {
    return this.withLock(subId, async (sub, save) => {
      sub = await this.renewLocked(sub, save);
      requireActive(sub);
      if (!sub.cancel_at_period_end) {
        sub.cancel_at_period_end = true;
        sub.updated_at = this.now();
        await save(sub);
        await this.engine.publish([
          subscriptionEvent("subscription.canceled", sub, { effective_at: toIso(sub.period_end) }),
        ]);
      }
      return sub;
    });
  }

  /** Undoes a cancellation at period end (while the period lasts). */
  async resume(subId: string): Promise<SubscriptionRecord> {
    return this.withLock(subId, async (sub, save) => {
      sub = await this.renewLocked(sub, save);
      requireActive(sub);
      if (sub.cancel_at_period_end) {
        sub.cancel_at_period_end = false;
        sub.updated_at = this.now();
        await save(sub);
      }
      return sub;
    });
  }

  /** Brings a subscription up to date: every started period granted once (no-op when nothing is due). */
  async renew(subId: string, waitMs = this.lockWaitMs): Promise<SubscriptionRecord> {
    const sub = await this.get(subId);
    if (sub.status !== "active" || sub.next_renewal_at > this.now()) return sub;
    return this.withLock(subId, (s, save) => this.renewLocked(s, save), waitMs);
  }

  /**
   * Lazy renewal when an account is read: renews its subscription if a period has started. `waitMs`
   * bounds how long a read waits for another process renewing the same subscription.
   */
  async renewAccount(accountId: string, waitMs = this.lockWaitMs): Promise<SubscriptionRecord | null> {
    const sub = await this.db.activeSubscriptionOf(accountId);
    if (!sub) return null;
    if (sub.next_renewal_at > this.now()) return sub;
    return this.renew(sub.id, waitMs);
  }

  /** One scheduler pass: renews up to `limit` due subscriptions; returns how many it renewed. */
  async renewDue(limit = 500): Promise<number> {
    const due = await this.db.dueSubscriptions(this.now(), limit);
    let n = 0;
    for (const id of due) {
      try {
        await this.renew(id);
        n++;
      } catch (e) {
        // One failing subscription (busy, account closed) must not stop the others; it stays due.
        if (!(e instanceof TallyError)) throw e;
      }
    }
    return n;
  }

  /** The account's subscription, plan and current period (after a lazy renewal), or null. */
  async current(accountId: string): Promise<{ subscription: SubscriptionRecord; plan: PlanRecord } | null> {
    const sub = await this.renewAccount(accountId);
    if (!sub) return null;
    return { subscription: sub, plan: await this.plan(sub.plan_id) };
  }

  // ---------- renewal ----------

  /**
   * Grants every period that has started and not been granted, in order, with its boundary actions
   * (cancel at period end, a plan switch at period end). A period that ended before any renewal ran (no
   * process up for a whole period) is skipped: its credits could not have been used and would have expired.
   */
  private async renewLocked(
    sub: SubscriptionRecord,
    save: (s: SubscriptionRecord) => Promise<void>,
  ): Promise<SubscriptionRecord> {
    for (let guard = 0; guard <= MAX_PERIOD_INDEX && sub.status === "active"; guard++) {
      const now = this.now();
      if (sub.next_renewal_at > now) break;
      const boundary = sub.next_renewal_at;
      // A closed account takes no grants: its subscription ends instead of staying due forever.
      const closed = (await this.engine.getAccount(sub.account_id)).status === "closed";
      if ((sub.next_index > 0 && sub.cancel_at_period_end) || closed) {
        sub.status = "canceled";
        sub.canceled_at = boundary;
        sub.updated_at = now;
        await save(sub);
        await this.engine.publish([subscriptionEvent("subscription.ended", sub)]);
        break;
      }
      let switched: string | null = null;
      if (sub.next_index > 0 && sub.pending_plan_id !== null) {
        switched = sub.plan_id;
        sub.plan_id = sub.pending_plan_id;
        sub.pending_plan_id = null;
      }
      const plan = await this.plan(sub.plan_id);
      if (switched !== null) {
        await this.engine.setAccountOverage(sub.account_id, plan.overage_policy, plan.overage_limit);
        await this.engine.publish([
          subscriptionEvent("subscription.changed", sub, { from_plan_id: switched, timing: "period_end" }),
        ]);
      }
      const current = periodAt(sub.anchor_at, now);
      if (current === null) break; // past the last period a subscription can have
      // The period that contains now; periods before it that nobody renewed are skipped.
      const p = current.index >= sub.next_index ? current : period(sub.anchor_at, sub.next_index);
      const grantId = plan.monthly_allowance > 0n ? allowanceGrantId(sub.id, sub.term, p.index) : null;
      const renewed = subscriptionEvent("subscription.renewed", sub, {
        period_index: p.index,
        period_start: toIso(p.start),
        period_end: toIso(p.end),
        allowance: toApi(plan.monthly_allowance) as string,
        grant_id: grantId,
      });
      // Carried by the period's grant, so it is written exactly when the period is granted (never on a replay).
      if (grantId === null) await this.engine.publish([renewed]);
      else
        await this.grantOnce({
          events: [renewed],
          id: grantId,
          account_id: sub.account_id,
          kind: "subscription",
          amount: plan.monthly_allowance,
          effective_at: p.start,
          expires_at: p.end,
          reference: sub.id,
          source: "subscription",
          metadata: { subscription_id: sub.id, plan_id: plan.id, period_index: p.index, term: sub.term },
        });
      if (plan.rollover_cap > 0n && p.index === sub.next_index && p.index > 0)
        await this.rollover(sub, plan, p);
      await this.db.insertPeriod({
        account_id: sub.account_id,
        subscription_id: sub.id,
        term: sub.term,
        period_index: p.index,
        plan_id: plan.id,
        start_at: p.start,
        end_at: p.end,
        grant_id: grantId,
      });
      sub.next_index = p.index + 1;
      sub.next_renewal_at = p.end;
      sub.period_start = p.start;
      sub.period_end = p.end;
      sub.updated_at = now;
      await save(sub);
    }
    return sub;
  }

  /**
   * Unused allowance of the previous period (its monthly grant and its own rollover, as they stood just
   * before it ended), up to the plan's cap, becomes a carryover grant for this period. Read from the
   * journal up to the period's end, so every process computes the same amount however late it runs.
   */
  private async rollover(sub: SubscriptionRecord, plan: PlanRecord, p: Period): Promise<void> {
    const prevStart = periodStart(sub.anchor_at, p.index - 1);
    const js = await this.engine.store.journalState(sub.account_id, p.start - 1);
    if (!js) return;
    const unused =
      (js.sums.get(`grant:${allowanceGrantId(sub.id, sub.term, p.index - 1)}`) ?? 0n) +
      (js.sums.get(`grant:${rolloverGrantId(sub.id, sub.term, p.index - 1)}`) ?? 0n);
    const carry = unused < plan.rollover_cap ? unused : plan.rollover_cap;
    if (carry <= 0n) return;
    await this.grantOnce({
      id: rolloverGrantId(sub.id, sub.term, p.index),
      account_id: sub.account_id,
      kind: "carryover",
      amount: carry,
      effective_at: p.start,
      expires_at: p.end,
      reference: sub.id,
      source: "rollover",
      metadata: {
        subscription_id: sub.id,
        plan_id: plan.id,
        from_period_start: prevStart,
        reason: "rollover",
      },
    });
  }

  /** A derived grant: a replay if it exists, even if the plan was edited since it was made. */
  private async grantOnce(input: Parameters<Engine["grant"]>[0]): Promise<void> {
    try {
      await this.engine.grant(input);
    } catch (e) {
      if (e instanceof TallyError && e.code === "idempotency_conflict") return;
      throw e;
    }
  }

  // ---------- locking ----------

  private async withLock<T>(
    subId: string,
    fn: (sub: SubscriptionRecord, save: (s: SubscriptionRecord) => Promise<void>) => Promise<T>,
    waitMs = this.lockWaitMs,
  ): Promise<T> {
    const holder = `${this.instance}:${++lockSeq}`;
    const deadline = Date.now() + waitMs;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      if (await this.db.lockSubscription(subId, holder, Date.now() + this.lockTtlMs, Date.now())) break;
      if (!(await this.db.getSubscription(subId)))
        throw TallyError.notFound("subscription", subId, "subscription_id");
      if (Date.now() > deadline)
        throw new TallyError("subscription_conflict", `subscription ${subId} is busy; try again`, {
          field: "subscription_id",
        });
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      const sub = await this.get(subId);
      const save = async (s: SubscriptionRecord) => {
        if (!(await this.db.saveSubscription(s, holder)))
          throw new TallyError("subscription_conflict", `subscription ${subId} lock was lost; try again`, {
            field: "subscription_id",
          });
      };
      return await fn(sub, save);
    } finally {
      await this.db.unlockSubscription(subId, holder);
    }
  }
}

function toIso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function subscriptionEvent(type: string, sub: SubscriptionRecord, extra: Metadata = {}): EventDraft {
  return {
    type,
    account_id: sub.account_id,
    data: {
      subscription_id: sub.id,
      account_id: sub.account_id,
      plan_id: sub.plan_id,
      status: sub.status,
      period_start: toIso(sub.period_start),
      period_end: toIso(sub.period_end),
      cancel_at_period_end: sub.cancel_at_period_end,
      pending_plan_id: sub.pending_plan_id,
      ...extra,
    },
  };
}

function requireActive(sub: SubscriptionRecord): void {
  if (sub.status !== "active")
    throw new TallyError("subscription_conflict", `subscription ${sub.id} is ${sub.status}`, {
      field: "subscription_id",
      status: sub.status,
    });
}
