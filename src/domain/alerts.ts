/**
 * Alert rules and crossing evaluation, pure. A rule is breached or not given an account's metrics; a
 * per-rule state (armed / fired) turns a breach into exactly one `alert.triggered` and the end of it into
 * one `alert.recovered`. The store makes the state change conditional, so one crossing fires once even
 * when several evaluations race.
 */
import { TallyError } from "./errors.ts";

export const ALERT_KINDS = [
  "balance_below",
  "balance_below_percent",
  "usage_above_percent",
  "depleted",
  "grant_expiring",
  "runout_within",
  "burn_rate_above",
  "budget_used_percent",
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** The rule's parameter: micro-credits, a percentage, days, hours, a multiple, or nothing (depleted). */
export interface AlertCondition {
  kind: AlertKind;
  /** balance_below: micro-credits (breached at or below). */
  amount?: bigint;
  /** balance_below_percent, usage_above_percent, budget_used_percent: 0 < percent <= 1000. */
  percent?: number;
  /** grant_expiring. */
  days?: number;
  /** runout_within. */
  hours?: number;
  /** burn_rate_above: the recent rate over the trailing average. */
  multiple?: number;
  /** budget_used_percent: the budget watched. */
  budget_id?: string;
}

/** What rules are judged against, computed by the alert service at one instant. */
export interface AlertMetrics {
  now: number;
  available: bigint;
  /** The period's allowance (see analytics); null when unknown. */
  allowance: bigint | null;
  used_in_period: bigint;
  /** Soonest expiry among live grants with something left; null when none expires. */
  next_expiry_at: number | null;
  run_out_at: number | null;
  /** Micro-credits per ms over the last hour, and over the trailing window before it. */
  recent_rate: number;
  trailing_rate: number;
  /** budget id -> [spent, limit] in the current cycle. */
  budgets: Map<string, [bigint, bigint]>;
}

export function validateCondition(c: AlertCondition): AlertCondition {
  if (!ALERT_KINDS.includes(c.kind))
    throw TallyError.validation("kind", `must be one of ${ALERT_KINDS.join(", ")}`);
  const need = (field: keyof AlertCondition, ok: boolean, problem: string) => {
    if (!ok) throw TallyError.validation(field, problem);
  };
  const pct = (p: number | undefined) => typeof p === "number" && Number.isFinite(p) && p > 0 && p <= 1000;
  switch (c.kind) {
    case "balance_below":
      need("amount", typeof c.amount === "bigint" && c.amount > 0n, "must be a positive amount of credits");
      return { kind: c.kind, amount: c.amount! };
    case "balance_below_percent":
    case "usage_above_percent":
      need("percent", pct(c.percent), "must be a number above 0 and at most 1000");
      return { kind: c.kind, percent: c.percent! };
    case "budget_used_percent":
      need("percent", pct(c.percent), "must be a number above 0 and at most 1000");
      need("budget_id", typeof c.budget_id === "string" && c.budget_id.length > 0, "is required");
      return { kind: c.kind, percent: c.percent!, budget_id: c.budget_id! };
    case "depleted":
      return { kind: c.kind };
    case "grant_expiring":
      need(
        "days",
        Number.isInteger(c.days) && c.days! >= 1 && c.days! <= 366,
        "must be an integer from 1 to 366",
      );
      return { kind: c.kind, days: c.days! };
    case "runout_within":
      need(
        "hours",
        Number.isInteger(c.hours) && c.hours! >= 1 && c.hours! <= 8784,
        "must be an integer from 1 to 8784",
      );
      return { kind: c.kind, hours: c.hours! };
    case "burn_rate_above":
      need(
        "multiple",
        typeof c.multiple === "number" && Number.isFinite(c.multiple) && c.multiple > 1 && c.multiple <= 1000,
        "must be a number above 1 and at most 1000",
      );
      return { kind: c.kind, multiple: c.multiple! };
  }
}

/** Percent of `part` in `whole`, in exact bigint arithmetic scaled by 1e6 to compare with a number percent. */
function atLeastPercent(part: bigint, whole: bigint, percent: number): boolean {
  // part / whole >= percent / 100  <=>  part * 100e6 >= whole * percent * 1e6
  return part * 100_000_000n >= whole * BigInt(Math.round(percent * 1_000_000));
}

/** Whether the condition holds now. */
export function isBreached(c: AlertCondition, m: AlertMetrics): boolean {
  switch (c.kind) {
    case "balance_below":
      // At or below, as the seed's `available <= threshold`.
      return m.available <= c.amount!;
    case "balance_below_percent":
      if (m.allowance === null || m.allowance <= 0n) return false;
      return !atLeastPercent(m.available, m.allowance, c.percent!);
    case "usage_above_percent":
      if (m.allowance === null || m.allowance <= 0n) return false;
      return atLeastPercent(m.used_in_period, m.allowance, c.percent!);
    case "depleted":
      return m.available <= 0n;
    case "grant_expiring":
      return m.next_expiry_at !== null && m.next_expiry_at - m.now <= c.days! * 86_400_000;
    case "runout_within":
      return m.run_out_at !== null && m.run_out_at - m.now <= c.hours! * 3_600_000;
    case "burn_rate_above":
      return m.trailing_rate > 0 && m.recent_rate > c.multiple! * m.trailing_rate;
    case "budget_used_percent": {
      const b = m.budgets.get(c.budget_id!);
      if (!b || b[1] <= 0n) return false;
      return atLeastPercent(b[0], b[1], c.percent!);
    }
  }
}

export type AlertState = "armed" | "fired";

/** The state change a breach reading calls for: fire on armed+breached, recover on fired+clear. */
export function transition(state: AlertState, breached: boolean): "trigger" | "recover" | null {
  if (state === "armed" && breached) return "trigger";
  if (state === "fired" && !breached) return "recover";
  return null;
}
