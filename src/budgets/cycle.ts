import { calendarMonth } from "../domain/analytics.ts";

/**
 * The budget cycle holding `now`: the calendar month (UTC). Budgets do not follow subscription periods
 * (subscriptions live on another branch); a month is what operators expect from a "monthly cap".
 */
export function budgetCycleStart(now: number): number {
  return calendarMonth(now).start;
}

export function budgetCycle(now: number): { start: number; end: number } {
  return calendarMonth(now);
}
