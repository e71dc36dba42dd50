/**
 * The billing period analytics and alerts use: the account's active subscription's current period when it
 * has one (issue #4's subscriptions), else null (the calendar month). Read only: no lazy renewal here (the
 * renewal scheduler and account reads do that); a period that has ended but is not renewed yet is followed
 * by one of the same length.
 */
import { billingStoreFor } from "../store/billing-store.ts";
import type { Store } from "../store/types.ts";
import type { PeriodResolver } from "./service.ts";

export function subscriptionPeriods(store: Store): PeriodResolver {
  const db = billingStoreFor(store);
  return async (accountId, now) => {
    const sub = await db.activeSubscriptionOf(accountId);
    if (!sub || sub.period_start === null || sub.period_end === null || sub.period_end <= sub.period_start)
      return null;
    const length = sub.period_end - sub.period_start;
    if (now < sub.period_start) return null;
    if (now < sub.period_end) return { start: sub.period_start, end: sub.period_end };
    const skipped = Math.floor((now - sub.period_end) / length);
    const start = sub.period_end + skipped * length;
    return { start, end: start + length };
  };
}
