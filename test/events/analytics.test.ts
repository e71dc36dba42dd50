/** Analytics from the hourly rollup: period figures, by service, daily series, trend, projection, run-out. */
import { expect, it } from "vitest";
import { AnalyticsService } from "../../src/analytics/service.ts";
import { DAY_MS, HOUR_MS, calendarMonth } from "../../src/domain/analytics.ts";
import { describeEachStore } from "../support/stores.ts";
import { cr, expectTallyError, fundedAccount, uid, useEngine } from "../engine/harness.ts";

describeEachStore("analytics", (kind) => {
  const t = useEngine(kind);

  it("a known constant burn rate gives a run-out forecast within 1% of the true time", async () => {
    // Start mid-month so the whole run stays in one period.
    t.clock.set(calendarMonth(t.clock.now()).end + 2 * DAY_MS + 7 * 60_000);
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10_000) }]);
    // 12.5 credits every 15 minutes = 50 credits/hour, for 5 days.
    for (let i = 0; i < 5 * 24 * 4; i++) {
      t.clock.advance(15 * 60_000);
      await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(12.5), service: "llm" });
    }
    const a = await new AnalyticsService(t.engine).account(account);
    const remaining = cr(10_000) - cr(12.5) * 480n;
    expect(a.period.remaining).toBe(remaining);
    const trueMs = (Number(remaining) / Number(cr(50))) * HOUR_MS;
    const forecastMs = a.forecast.run_out_at! - t.clock.now();
    expect(Math.abs(forecastMs - trueMs) / trueMs).toBeLessThan(0.01);
    expect(Number(a.forecast.rate_per_hour)).toBeCloseTo(Number(cr(50)), -4);
    // Projection: used so far plus the rate to the period's end.
    const toEnd = (a.period.end - t.clock.now()) / HOUR_MS;
    const expected = Number(cr(12.5) * 480n) + toEnd * Number(cr(50));
    expect(Math.abs(Number(a.projection.projected_used) - expected) / expected).toBeLessThan(0.01);
  });

  it("period, by service, daily series, peaks and refunds net out", async () => {
    const month = calendarMonth(t.clock.now());
    t.clock.set(month.end + 3 * DAY_MS); // the 4th of the next month, 00:00
    const period = calendarMonth(t.clock.now());
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(1000), effective_at: period.start },
      { kind: "purchase", amount: cr(500) },
    ]);
    const d = (service: string, credits: number, quantity?: string) =>
      t.engine.debit({ id: uid("u"), account_id: account, amount: cr(credits), service, quantity });
    t.clock.advance(HOUR_MS);
    await d("llm", 10, "1000");
    await d("llm", 20, "3000");
    await d("voice", 30, "60");
    t.clock.advance(DAY_MS);
    const big = await d("voice", 100, "200");
    await t.engine.refund({ usage_id: big.usage.id, amount: cr(40) });
    t.clock.advance(DAY_MS);
    const a = await new AnalyticsService(t.engine).account(account);
    expect(a.period.start).toBe(period.start);
    expect(a.period.used).toBe(cr(120));
    expect(a.period.allowance).toBe(cr(1000));
    expect(a.period.allowance_source).toBe("subscription_grants");
    expect(a.period.usage_vs_allowance).toBeCloseTo(0.12, 6);
    expect(a.period.days_until_reset).toBeCloseTo((period.end - t.clock.now()) / DAY_MS, 6);
    expect(a.by_service).toEqual([
      { service: "voice", credits: cr(90), events: 2, quantity: 260, average_cost: cr(45) },
      { service: "llm", credits: cr(30), events: 2, quantity: 4000, average_cost: cr(15) },
    ]);
    const nonzero = a.daily.filter((x) => x.credits > 0n);
    expect(nonzero.map((x) => [x.at, x.credits])).toEqual([
      [period.start + 3 * DAY_MS, cr(60)],
      [period.start + 4 * DAY_MS, cr(60)],
    ]);
    expect(a.daily[0]!.at).toBe(period.start);
    expect(a.peak_days[0]!.credits).toBe(cr(60));
    expect(a.peak_days[0]!.at).toBe(period.start + 3 * DAY_MS);
    expect(a.average_per_day).toBe(cr(120) / 6n);
    expect(a.trend.this_period).toBe(cr(120));
    expect(a.trend.last_period_to_date).toBe(0n);
    expect(a.trend.change_ratio).toBeNull();
  });

  it("operator overview: top accounts, used, sold, per service; bad ranges are refused", async () => {
    t.clock.set(calendarMonth(t.clock.now()).end + DAY_MS);
    const from = t.clock.now();
    const accounts: string[] = [];
    for (const credits of [5, 50, 20]) {
      const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
      accounts.push(account);
      await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(credits), service: "llm" });
    }
    const svc = new AnalyticsService(t.engine);
    const o = await svc.overview({ from, to: t.clock.now() + 1, top: 2 });
    expect(o.top_accounts.map((x) => [x.account_id, x.credits])).toEqual([
      [accounts[1], cr(50)],
      [accounts[2], cr(20)],
    ]);
    expect(o.credits_used).toBe(cr(75));
    expect(o.credits_sold).toBe(cr(300));
    expect(o.by_service).toEqual([
      { service: "llm", credits: cr(75), events: 3, quantity: 0, average_cost: cr(25) },
    ]);
    await expectTallyError(svc.overview({ from: 10, to: 5 }), "validation_error", "to");
    await expectTallyError(svc.overview({ from: 0, to: 400 * DAY_MS }), "validation_error", "to");
    await expectTallyError(svc.account("acct_nope"), "not_found");
  });
});
