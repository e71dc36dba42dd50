import { formatCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import { GRANT_KINDS, type GrantKind, type GrantRecord, type JournalEntry } from "../ledger/types.ts";
import { billingStoreFor, type BillingPeriodRecord, type PlanRecord } from "../store/billing-store.ts";
import { ADJUSTMENT_SERVICE } from "./adjustments.ts";
import { formatCents, formatRateMicros, overageChargeCents } from "./plans.ts";

/** Most journal rows one statement reads; an account past it needs a narrower window. */
export const MAX_STATEMENT_ENTRIES = 500_000;
const PAGE = 1000;

/**
 * One cycle's statement, computed from the journal. Balances are credits in grants and holds (what the
 * account holds, spendable or set aside). The cycle is [start, end), except that expiries at its end are
 * its own (and expiries at its start belong to the cycle before). It always reconciles:
 * closing = opening + granted − used + overage + refunded − refunded_overage − expired − voided − removed.
 */
export interface Statement {
  account_id: string;
  subscription_id: string | null;
  plan_id: string | null;
  period_start: number;
  period_end: number;
  opening_balance: bigint;
  granted: Record<GrantKind, bigint>;
  granted_total: bigint;
  usage: { service: string; credits: bigint; count: number }[];
  used_total: bigint;
  /** Part of the usage not covered by credits (overage policy allow). */
  overage: bigint;
  refunded: bigint;
  /** Part of the refunds that cancelled overage instead of returning credits. */
  refunded_overage: bigint;
  expired: bigint;
  voided: bigint;
  /** Operator adjustments that removed credits (adjustments that add are in granted.adjustment). */
  removed: bigint;
  closing_balance: bigint;
  /** Overage still to bill for this cycle (overage − refunded_overage) and its charge at the plan's rate. */
  overage_billable: bigint;
  overage_rate: string | null;
  overage_charge_cents: bigint;
  currency: string | null;
  reconciles: boolean;
}

/** A cycle: a recorded billing period, or any window the operator asks for. */
export interface Window {
  start: number;
  end: number;
  period?: BillingPeriodRecord;
}

export class Statements {
  constructor(readonly engine: Engine) {}

  /** An account's cycles, newest first. */
  periods(accountId: string, limit = 100): Promise<BillingPeriodRecord[]> {
    return billingStoreFor(this.engine.store).listPeriods(accountId, limit);
  }

  /** The statement of the cycle that starts at `start` (a recorded period), or of [start, end). */
  async forWindow(accountId: string, start: number, end?: number): Promise<Statement> {
    await this.engine.getAccount(accountId);
    const periods = await this.periods(accountId, 1000);
    const period = periods.find((p) => p.start_at === start);
    const stop = end ?? period?.end_at;
    if (stop === undefined)
      throw TallyError.validation(
        "period_start",
        "is not the start of a cycle of this account; give end too",
      );
    if (!(stop > start)) throw TallyError.validation("end", "must be after start");
    const plan = period ? await billingStoreFor(this.engine.store).getPlan(period.plan_id) : null;
    return this.compute(accountId, { start, end: stop, ...(period ? { period } : {}) }, plan);
  }

  async compute(accountId: string, w: Window, plan: PlanRecord | null): Promise<Statement> {
    const entries = await this.entries(accountId);
    const kinds = new Map(
      (await this.engine.store.listGrants(accountId)).map((g) => [g.id, kindAsGranted(g)]),
    );
    // An expiry at a cycle's boundary belongs to the cycle that ends there: what a period left unused is
    // shown as expired on that period's statement, not on the next one.
    const boundaryExpiry = (e: JournalEntry, t: number) => e.at === t && e.kind === "expiry";
    const before = (e: JournalEntry) => e.at < w.start || boundaryExpiry(e, w.start);
    const inWindow = entries.filter((e) => !before(e) && (e.at < w.end || boundaryExpiry(e, w.end)));
    const usageIds = [
      ...new Set(inWindow.filter((e) => e.kind === "debit" || e.kind === "capture").map((e) => e.ref)),
    ];
    const services = new Map<string, string>();
    for (let i = 0; i < usageIds.length; i += PAGE)
      for (const u of await this.engine.store.getUsages(usageIds.slice(i, i + PAGE)))
        services.set(u.id, u.service);

    const held = (e: JournalEntry) => e.ledger.startsWith("grant:") || e.ledger.startsWith("hold:");
    let opening = 0n;
    let closing = 0n;
    for (const e of entries) if (held(e) && before(e)) opening += e.amount;
    closing = opening;
    for (const e of inWindow) if (held(e)) closing += e.amount;
    const granted = Object.fromEntries(GRANT_KINDS.map((k) => [k, 0n])) as Record<GrantKind, bigint>;
    const usage = new Map<string, { credits: bigint; refs: Set<string> }>();
    let overage = 0n;
    let refunded = 0n;
    let refundedOverage = 0n;
    let expired = 0n;
    let voided = 0n;
    let removed = 0n;
    for (const e of inWindow) {
      if (e.ledger === "issued") granted[kinds.get(e.ref) ?? "adjustment"] += -e.amount;
      else if (e.ledger === "consumed") {
        if (e.kind === "refund") refunded += -e.amount;
        else {
          const service = services.get(e.ref) ?? "unknown";
          if (service === ADJUSTMENT_SERVICE) removed += e.amount;
          else {
            const u = usage.get(service) ?? { credits: 0n, refs: new Set<string>() };
            u.credits += e.amount;
            u.refs.add(e.ref);
            usage.set(service, u);
          }
        }
      } else if (e.ledger === "overage") {
        if (e.kind === "refund") refundedOverage += e.amount;
        else overage += -e.amount;
      } else if (e.ledger === "expired") expired += e.amount;
      else if (e.ledger === "voided") voided += e.amount;
    }
    const grantedTotal = GRANT_KINDS.reduce((s, k) => s + granted[k], 0n);
    const usageRows = [...usage.entries()]
      .map(([service, u]) => ({ service, credits: u.credits, count: u.refs.size }))
      .sort((a, b) => (a.service < b.service ? -1 : 1));
    const usedTotal = usageRows.reduce((s, u) => s + u.credits, 0n);
    const expected =
      opening + grantedTotal - usedTotal - removed + overage + refunded - refundedOverage - expired - voided;
    const billable = overage - refundedOverage > 0n ? overage - refundedOverage : 0n;
    return {
      account_id: accountId,
      subscription_id: w.period?.subscription_id ?? null,
      plan_id: plan?.id ?? null,
      period_start: w.start,
      period_end: w.end,
      opening_balance: opening,
      granted,
      granted_total: grantedTotal,
      usage: usageRows,
      used_total: usedTotal,
      overage,
      refunded,
      refunded_overage: refundedOverage,
      expired,
      voided,
      removed,
      closing_balance: closing,
      overage_billable: billable,
      overage_rate: plan ? formatRateMicros(plan.overage_rate_micros) : null,
      overage_charge_cents: plan ? overageChargeCents(billable, plan.overage_rate_micros) : 0n,
      currency: plan?.currency ?? null,
      reconciles: expected === closing,
    };
  }

  /** Every journal row of the account (bounded by MAX_STATEMENT_ENTRIES). */
  private async entries(accountId: string): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.engine.listEntries({
        account_id: accountId,
        limit: PAGE,
        ...(cursor ? { cursor } : {}),
      });
      out.push(...page.data);
      if (out.length > MAX_STATEMENT_ENTRIES)
        throw TallyError.validation("account_id", `has more than ${MAX_STATEMENT_ENTRIES} journal rows`);
      if (!page.next_cursor) return out;
      cursor = page.next_cursor;
    }
  }
}

/** The kind a grant had when it was granted (a plan change makes the old supply a carryover later). */
function kindAsGranted(g: GrantRecord): GrantKind {
  try {
    const k = (JSON.parse(g.request) as { kind?: unknown }).kind;
    if (typeof k === "string" && (GRANT_KINDS as readonly string[]).includes(k)) return k as GrantKind;
  } catch {
    // Not JSON: fall back to the current kind.
  }
  return g.kind;
}

/** A statement in API form: credits as decimal strings, money as a decimal string, times as ISO 8601. */
export function statementToApi(s: Statement) {
  const c = formatCredits;
  return {
    account_id: s.account_id,
    subscription_id: s.subscription_id,
    plan_id: s.plan_id,
    period_start: new Date(s.period_start).toISOString(),
    period_end: new Date(s.period_end).toISOString(),
    opening_balance: c(s.opening_balance),
    granted: Object.fromEntries(GRANT_KINDS.map((k) => [k, c(s.granted[k])])),
    granted_total: c(s.granted_total),
    usage: s.usage.map((u) => ({ service: u.service, credits: c(u.credits), count: u.count })),
    used_total: c(s.used_total),
    overage: c(s.overage),
    refunded: c(s.refunded),
    refunded_overage: c(s.refunded_overage),
    expired: c(s.expired),
    voided: c(s.voided),
    removed: c(s.removed),
    closing_balance: c(s.closing_balance),
    overage_billable: c(s.overage_billable),
    overage_rate: s.overage_rate,
    overage_charge: formatCents(s.overage_charge_cents),
    currency: s.currency,
    reconciles: s.reconciles,
  };
}

/** The statement as CSV lines: section, item, credits (and the money line for the overage charge). */
export function statementToCsv(s: Statement): string {
  const a = statementToApi(s);
  const rows: string[][] = [["section", "item", "credits", "count", "amount", "currency"]];
  const add = (section: string, item: string, credits: string, count = "", amount = "", cur = "") =>
    rows.push([section, item, credits, count, amount, cur]);
  add("period", `${a.period_start}/${a.period_end}`, "");
  add("opening_balance", "", a.opening_balance);
  for (const k of GRANT_KINDS) add("granted", k, a.granted[k]!);
  for (const u of a.usage) add("usage", u.service, u.credits, String(u.count));
  add("used_total", "", a.used_total);
  add("overage", "", a.overage);
  add("refunded", "", a.refunded);
  add("refunded_overage", "", a.refunded_overage);
  add("expired", "", a.expired);
  add("voided", "", a.voided);
  add("removed", "", a.removed);
  add("closing_balance", "", a.closing_balance);
  add("overage_charge", a.overage_rate ?? "", a.overage_billable, "", a.overage_charge, a.currency ?? "");
  return rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function csvCell(v: string): string {
  // Quote what needs it; a leading =, +, - or @ is prefixed so a spreadsheet never runs it as a formula.
  const safe = /^[=+\-@]/.test(v) && !/^-?\d/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
