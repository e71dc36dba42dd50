import { daysUntil } from "../domain/cycles.ts";
import type { SubscriptionRecord } from "../store/billing-store.ts";

/** A subscription in API form (times ISO 8601), with days until its next reset. */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function subscriptionToApi(s: SubscriptionRecord, now: number) {
  return {
    id: s.id,
    account_id: s.account_id,
    plan_id: s.plan_id,
    status: s.status,
    anchor_at: iso(s.anchor_at),
    period_start: iso(s.period_start),
    period_end: iso(s.period_end),
    next_renewal_at: s.status === "active" ? iso(s.next_renewal_at) : null,
    days_until_reset: s.status === "active" && s.period_end !== null ? daysUntil(now, s.period_end) : null,
    cancel_at_period_end: s.cancel_at_period_end,
    pending_plan_id: s.pending_plan_id,
    canceled_at: iso(s.canceled_at),
    term: s.term,
    metadata: s.metadata,
    created_at: iso(s.created_at),
    updated_at: iso(s.updated_at),
  };
}
