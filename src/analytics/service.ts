/**
 * Analytics of one account and of the whole ledger, read from the hourly rollup (usage_hourly, written in
 * the same transaction as the usage) so a year of a busy account is a few thousand rows, never a scan of
 * its usages. The arithmetic lives in src/domain/analytics.ts.
 */
import {
  DAY_MS,
  HOUR_MS,
  calendarMonth,
  dailySeries,
  hourStart,
  peakDays,
  previousPeriod,
  projectToEnd,
  runOut,
  trailingRate,
  trend,
  type Bucket,
  type Period,
  type RunOutForecast,
  type Trend,
} from "../domain/analytics.ts";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import { big, int, sqlFor, type Sql } from "../events/sql.ts";

/** The window the burn rate behind forecasts and projections is measured over. */
export const RATE_WINDOW_MS = 7 * DAY_MS;
/** Longest range a series may cover. */
export const MAX_RANGE_MS = 366 * DAY_MS;

/** Finds an account's current billing period (a subscription's, when one is known); null = calendar month. */
export type PeriodResolver = (accountId: string, now: number) => Promise<Period | null>;

export interface ServiceUsage {
  service: string;
  credits: bigint;
  events: number;
  quantity: number;
  /** credits / events, micro-credits; 0 without events. */
  average_cost: bigint;
}

export interface AccountAnalytics {
  account_id: string;
  at: number;
  period: Period & {
    used: bigint;
    remaining: bigint;
    /** Subscription grants effective in the period, else used + remaining (what the period had to spend). */
    allowance: bigint;
    allowance_source: "subscription_grants" | "used_plus_remaining";
    /** used / allowance, a fraction (0.5 = half); null when the allowance is 0. */
    usage_vs_allowance: number | null;
    days_until_reset: number;
  };
  /** The range the series and the by-service figures cover (default: the period so far). */
  range: Period;
  by_service: ServiceUsage[];
  daily: Bucket[];
  average_per_day: bigint;
  peak_days: Bucket[];
  trend: Trend;
  rate: { per_hour: bigint; window_from: number; window_to: number };
  projection: { period_end: number; projected_used: bigint; projected_remaining: bigint };
  forecast: RunOutForecast;
}

export class AnalyticsService {
  private readonly sql: Sql;

  constructor(
    private readonly engine: Engine,
    private readonly resolvePeriod: PeriodResolver = async () => null,
  ) {
    this.sql = sqlFor(engine.store);
  }

  async periodOf(accountId: string, now: number): Promise<Period> {
    return (await this.resolvePeriod(accountId, now)) ?? calendarMonth(now);
  }

  /** Hourly buckets (all services) of an account in [from, to). */
  async hourly(accountId: string, from: number, to: number): Promise<Bucket[]> {
    const rows = await this.sql.all(
      `SELECT hour, SUM(credits - refunded) AS credits, SUM(events) AS events FROM usage_hourly
       WHERE account_id = ? AND hour >= ? AND hour < ? GROUP BY hour ORDER BY hour`,
      [accountId, from, to],
    );
    return rows.map((r) => ({ at: int(r.hour), credits: big(r.credits), count: int(r.events) }));
  }

  /**
   * Daily buckets and by-service figures of an account in [from, to), from one pass over the rollup
   * (grouped by day and service in the database: a year is at most 366 rows per service).
   */
  async dailyAndByService(
    accountId: string,
    from: number,
    to: number,
  ): Promise<{ daily: Bucket[]; byService: ServiceUsage[] }> {
    const rows = await this.sql.all(
      `SELECT hour / ${DAY_MS} AS day, service, SUM(credits - refunded) AS credits, SUM(events) AS events,
         SUM(quantity) AS quantity
       FROM usage_hourly WHERE account_id = ? AND hour >= ? AND hour < ? GROUP BY hour / ${DAY_MS}, service`,
      [accountId, from, to],
    );
    const days = new Map<number, Bucket>();
    const services = new Map<string, { credits: bigint; events: number; quantity: number }>();
    for (const r of rows) {
      const at = int(r.day) * DAY_MS;
      const credits = big(r.credits);
      const events = int(r.events);
      const d = days.get(at);
      if (d) {
        d.credits += credits;
        d.count += events;
      } else days.set(at, { at, credits, count: events });
      const s = services.get(String(r.service));
      if (s) {
        s.credits += credits;
        s.events += events;
        s.quantity += Number(r.quantity);
      } else services.set(String(r.service), { credits, events, quantity: Number(r.quantity) });
    }
    const byService = [...services.entries()]
      .map(([service, s]) => ({
        service,
        ...s,
        average_cost: s.events > 0 ? s.credits / BigInt(s.events) : 0n,
      }))
      .sort((a, b) =>
        a.credits === b.credits ? (a.service < b.service ? -1 : 1) : a.credits > b.credits ? -1 : 1,
      );
    return { daily: dailySeries([...days.values()], from, to), byService };
  }

  /** Credits used (net of refunds) in [from, to). */
  async used(accountId: string, from: number, to: number): Promise<bigint> {
    const r = await this.sql.one(
      `SELECT COALESCE(SUM(credits - refunded), 0) AS used FROM usage_hourly WHERE account_id = ? AND hour >= ? AND hour < ?`,
      [accountId, from, to],
    );
    return big(r?.used);
  }

  async subscriptionAllowance(accountId: string, p: Period): Promise<bigint> {
    const r = await this.sql.one(
      `SELECT COALESCE(SUM(amount), 0) AS total FROM grants WHERE account_id = ? AND kind = 'subscription'
       AND status <> 'voided' AND effective_at >= ? AND effective_at < ?`,
      [accountId, p.start, p.end],
    );
    return big(r?.total);
  }

  /** The burn rate over the trailing window, and the rates alerts compare (last hour vs the window before). */
  async rates(accountId: string, now: number, since: number) {
    // Two hours more than the window: the baseline window ends where the last hour begins.
    const buckets = await this.hourly(accountId, hourStart(now - RATE_WINDOW_MS - 2 * HOUR_MS), now + 1);
    const trailing = trailingRate(buckets, now, RATE_WINDOW_MS, since);
    const recentFrom = Math.max(hourStart(now - HOUR_MS), since);
    const recent = trailingRate(buckets, now, now - recentFrom, since);
    const before = buckets.filter((b) => b.at < recentFrom);
    const beforeRate = trailingRate(before, recentFrom, RATE_WINDOW_MS, since);
    return { buckets, trailing, recent_rate: recent.rate_per_ms, baseline_rate: beforeRate.rate_per_ms };
  }

  async account(accountId: string, opts: { from?: number; to?: number } = {}): Promise<AccountAnalytics> {
    const now = this.engine.clock.now();
    const account = await this.engine.getAccount(accountId);
    const period = await this.periodOf(accountId, now);
    const range = checkRange(opts.from ?? period.start, opts.to ?? Math.min(now + 1, period.end));
    const previous = previousPeriod(period);
    const [balance, used, subscription, { daily, byService }, trendBuckets, rates] = await Promise.all([
      this.engine.balance(accountId),
      this.used(accountId, period.start, Math.min(now + 1, period.end)),
      this.subscriptionAllowance(accountId, period),
      this.dailyAndByService(accountId, range.start, range.end),
      this.hourly(accountId, previous.start, Math.min(now + 1, period.end)),
      this.rates(accountId, now, account.created_at),
    ]);
    const remaining = balance.available;
    const allowance = subscription > 0n ? subscription : used + remaining;
    const rate = rates.trailing.rate_per_ms;
    const projected = projectToEnd(used, rate, now, period.end);
    const elapsedDays = Math.max((Math.min(now, range.end) - range.start) / DAY_MS, 1 / 24);
    const rangeUsed = daily.reduce((s, d) => s + d.credits, 0n);
    return {
      account_id: accountId,
      at: now,
      period: {
        ...period,
        used,
        remaining,
        allowance,
        allowance_source: subscription > 0n ? "subscription_grants" : "used_plus_remaining",
        usage_vs_allowance: allowance > 0n ? Number((used * 1_000_000n) / allowance) / 1_000_000 : null,
        days_until_reset: Math.max(0, (period.end - now) / DAY_MS),
      },
      range,
      by_service: byService,
      daily,
      average_per_day: BigInt(Math.round(Number(rangeUsed) / Math.ceil(elapsedDays))),
      peak_days: peakDays(daily, 5),
      trend: trend(trendBuckets, period, previous, now),
      rate: {
        per_hour: BigInt(Math.round(rate * HOUR_MS)),
        window_from: rates.trailing.from,
        window_to: now,
      },
      projection: {
        period_end: period.end,
        projected_used: projected,
        projected_remaining: allowance - projected,
      },
      forecast: runOut(remaining, rate, now),
    };
  }

  /** Operator-wide: top accounts, credits sold (purchase grants) and granted, used, usage per service. */
  async overview(opts: { from?: number; to?: number; top?: number } = {}) {
    const now = this.engine.clock.now();
    const month = calendarMonth(now);
    const range = checkRange(opts.from ?? month.start, opts.to ?? Math.min(now + 1, month.end));
    const top = opts.top ?? 10;
    const hourFrom = hourStart(range.start);
    const [topRows, serviceRows, grantRows] = await Promise.all([
      this.sql.all(
        `SELECT account_id, SUM(credits - refunded) AS credits, SUM(events) AS events FROM usage_hourly
         WHERE hour >= ? AND hour < ? GROUP BY account_id ORDER BY SUM(credits - refunded) DESC, account_id LIMIT ?`,
        [hourFrom, range.end, top],
      ),
      this.sql.all(
        `SELECT service, SUM(credits - refunded) AS credits, SUM(events) AS events, SUM(quantity) AS quantity
         FROM usage_hourly WHERE hour >= ? AND hour < ? GROUP BY service ORDER BY service`,
        [hourFrom, range.end],
      ),
      this.sql.all(
        `SELECT kind, SUM(amount) AS amount, COUNT(*) AS n FROM grants
         WHERE created_at >= ? AND created_at < ? AND status <> 'voided' GROUP BY kind ORDER BY kind`,
        [range.start, range.end],
      ),
    ]);
    const byService = serviceRows.map((r) => {
      const credits = big(r.credits);
      const events = int(r.events);
      return {
        service: String(r.service),
        credits,
        events,
        quantity: Number(r.quantity),
        average_cost: events > 0 ? credits / BigInt(events) : 0n,
      };
    });
    const granted: Record<string, bigint> = {};
    for (const r of grantRows) granted[String(r.kind)] = big(r.amount);
    return {
      at: now,
      range,
      credits_used: byService.reduce((s, x) => s + x.credits, 0n),
      credits_sold: granted.purchase ?? 0n,
      credits_granted_by_kind: granted,
      top_accounts: topRows.map((r) => ({
        account_id: String(r.account_id),
        credits: big(r.credits),
        events: int(r.events),
      })),
      by_service: byService.sort((a, b) => (a.credits === b.credits ? 0 : a.credits > b.credits ? -1 : 1)),
    };
  }
}

function checkRange(from: number, to: number): Period {
  if (!Number.isSafeInteger(from) || from < 0) throw TallyError.validation("from", "must be a time");
  if (!Number.isSafeInteger(to) || to <= from) throw TallyError.validation("to", "must be after from");
  if (to - from > MAX_RANGE_MS) throw TallyError.validation("to", "must be at most 366 days after from");
  return { start: from, end: to };
}
