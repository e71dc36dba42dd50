import { useMemo } from "react";
import type { Credits, CustomerApi, CustomerUsage } from "../api.ts";
import { Chart } from "../Chart.tsx";
import { daysUntil, fmtCredits, fmtDate, pct } from "../format.ts";
import { useLoad, type Loadable } from "../hooks.ts";
import type { LiveStatus } from "../live.ts";
import { Card, Empty, ErrorNote, Loading, Meter, Show } from "../ui.tsx";
import { byService, dailySeries, sum } from "./aggregate.ts";
import { CHART_DAYS } from "./CustomerApp.tsx";
import { LiveCalls, type LiveCall } from "./LiveCalls.tsx";

const PALETTE = ["#1f5fbf", "#b8480b", "#2f7d32", "#7b3fa0", "#a1182f", "#0d7680"];

export function Overview({
  api,
  credits,
  usage,
  retry,
  calls,
  held,
  liveStatus,
}: {
  api: CustomerApi;
  credits: Loadable<Credits>;
  usage: Loadable<{ rows: CustomerUsage[]; truncated: boolean }>;
  retry: () => void;
  calls: Record<string, LiveCall>;
  held: string | null;
  liveStatus: LiveStatus;
}) {
  return (
    <>
      <h1>Overview</h1>
      {credits.state === "loading" && <Loading what="your balance" />}
      {credits.state === "error" && <ErrorNote error={credits.error} onRetry={retry} />}
      {credits.state === "ok" && (
        <Billing credits={credits.value} usage={usage.state === "ok" ? usage.value.rows : null} />
      )}
      <UsageCharts usage={usage} retry={retry} />
      <Outlook api={api} credits={credits} />
      <LiveCalls calls={calls} held={held} liveStatus={liveStatus} />
    </>
  );
}

/** The billing section of the voice seed: used this period, remaining, usage against allowance, days until reset. */
function Billing({ credits: c, usage }: { credits: Credits; usage: CustomerUsage[] | null }) {
  const allowance = c.credits_per_month;
  const hasPlan = allowance > 0;
  const periodStart = c.last_reset_at ? Date.parse(c.last_reset_at) : null;
  const usedThisPeriod = usage && periodStart !== null ? sum(usage, periodStart) : null;
  const days = typeof c.days_until_reset === "number" ? c.days_until_reset : daysUntil(c.next_reset_date);
  // One scale for both bars, so they compare and a purchase visibly lengthens the pack bar.
  const scale = Math.max(allowance, c.credits_balance, c.total_payg_credits_purchased, c.payg_balance);
  const supplyMax = scale;
  const packsMax = scale;
  // Usage this period (from the history since the period started); without it, what the supply lost.
  const usedOfAllowance = !hasPlan
    ? 0
    : (usedThisPeriod ?? Math.max(0, allowance - Math.min(allowance, c.credits_balance)));
  return (
    <Card title="Balance">
      <div className="stats">
        <div className="stat">
          <span className="stat-label">Available now</span>
          <span className="stat-value" data-testid="total-available">
            {fmtCredits(c.total_available_credits)}
          </span>
          <span className="muted">credits</span>
        </div>
        <div className="stat">
          <span className="stat-label">{hasPlan ? "Used this period" : "Used since the account opened"}</span>
          <span className="stat-value" data-testid="used">
            {fmtCredits(usedThisPeriod ?? c.total_credits_used)}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Days until reset</span>
          <span className="stat-value" data-testid="days-until-reset">
            {days === null ? "—" : days}
          </span>
          <span className="muted">
            {c.next_reset_date ? `on ${fmtDate(c.next_reset_date)}` : "no monthly plan"}
          </span>
        </div>
      </div>
      <Meter
        label="Monthly supply"
        value={c.credits_balance}
        max={supplyMax}
        tone="supply"
        testId="supply-bar"
        valueText={
          !hasPlan
            ? `${fmtCredits(c.credits_balance)} credits (no monthly plan)`
            : c.credits_balance > allowance
              ? `${fmtCredits(c.credits_balance)} credits left: the ${fmtCredits(allowance)} monthly allowance and other grants`
              : `${fmtCredits(c.credits_balance)} of ${fmtCredits(allowance)} credits left`
        }
      />
      <Meter
        label="Purchased packs"
        value={c.payg_balance}
        max={packsMax}
        tone="packs"
        testId="packs-bar"
        valueText={
          c.total_payg_credits_purchased > 0
            ? `${fmtCredits(c.payg_balance)} of ${fmtCredits(c.total_payg_credits_purchased)} purchased credits left`
            : `${fmtCredits(c.payg_balance)} credits: none purchased yet`
        }
      />
      {hasPlan ? (
        <Meter
          label="Usage against allowance"
          value={usedOfAllowance}
          max={allowance}
          tone={pct(usedOfAllowance, allowance) >= 90 ? "warn" : "usage"}
          testId="allowance-bar"
          valueText={`${fmtCredits(usedOfAllowance)} of ${fmtCredits(allowance)} credits used (${Math.round(pct(usedOfAllowance, allowance))}%)`}
        />
      ) : (
        <p className="muted">
          No monthly plan: the supply bar shows credits granted to you outside packs. Pack credits are used
          only when the monthly supply runs out, and they do not expire.
        </p>
      )}
    </Card>
  );
}

function UsageCharts({
  usage,
  retry,
}: {
  usage: Loadable<{ rows: CustomerUsage[]; truncated: boolean }>;
  retry: () => void;
}) {
  const rows = usage.state === "ok" ? usage.value.rows : null;
  const daily = useMemo(() => (rows ? dailySeries(rows, CHART_DAYS) : null), [rows]);
  const services = useMemo(() => (rows ? byService(rows) : []), [rows]);
  const dailySeriesMemo = useMemo(
    () => (daily ? [{ label: "Credits used", values: daily.y, color: PALETTE[0]! }] : []),
    [daily],
  );
  const serviceX = useMemo(() => services.map((_, i) => i), [services]);
  const serviceSeries = useMemo(
    () => [{ label: "Credits", values: services.map((s) => s.credits), color: PALETTE[1]! }],
    [services],
  );
  if (usage.state === "loading") return <Loading what="usage" />;
  if (usage.state === "error") return <ErrorNote error={usage.error} onRetry={retry} />;
  if (usage.state === "missing") return null;
  const total = sum(rows ?? []);
  const avg = total / CHART_DAYS;
  const peak = daily
    ? daily.y.reduce((m, v, i) => (v > m.v ? { v, i } : m), { v: 0, i: -1 })
    : { v: 0, i: -1 };
  return (
    <div className="grid2">
      <Card title={`Daily usage, last ${CHART_DAYS} days`}>
        {rows && rows.length === 0 ? (
          <Empty>No usage in the last {CHART_DAYS} days. Calls you make appear here within seconds.</Empty>
        ) : (
          daily && (
            <>
              <p className="muted">
                {fmtCredits(total)} credits in all; {fmtCredits(Math.round(avg * 100) / 100)} a day on average
                {peak.i >= 0 &&
                  `; peak ${fmtCredits(peak.v)} on ${new Date(daily.x[peak.i]! * 1000).toLocaleDateString("en-GB", { month: "short", day: "numeric" })}`}
                .{usage.state === "ok" && usage.value.truncated && " (the most recent 5,000 events)"}
              </p>
              <Chart
                title="Credits used per day"
                x={daily.x}
                series={dailySeriesMemo}
                bars
                testId="daily-chart"
              />
            </>
          )
        )}
      </Card>
      <Card title="Usage by service">
        {services.length === 0 ? (
          <Empty>No usage yet, so nothing to split by service.</Empty>
        ) : (
          <Chart
            title={`Credits by service, last ${CHART_DAYS} days`}
            x={serviceX}
            categories={services.map((s) => s.service)}
            series={serviceSeries}
            bars
            testId="service-chart"
          />
        )}
      </Card>
    </div>
  );
}

/** The analytics answer's fields the outlook shows (GET /api/v1/analytics). */
interface Analytics {
  period: {
    start_at: string;
    end_at: string;
    used: string;
    remaining: string;
    usage_vs_allowance: number | null;
  };
  average_per_day: string;
  trend: { change_ratio: number | null };
  projection: { period_end_at: string; projected_used: string; projected_remaining: string };
  forecast: { run_out_at: string | null; hours_left: number | null };
}

/** The voice seed's usage patterns: average per day, trend, projection to the period's end, run-out forecast. */
function Outlook({ api, credits }: { api: CustomerApi; credits: Loadable<Credits> }) {
  // Refetched whenever the balance changes (the credits object is new on every live refresh).
  const [a, reload] = useLoad(() => api.raw<Analytics>("GET", "/api/v1/analytics"), [api, credits]);
  if (a.state === "missing" || a.state === "loading") return null;
  return (
    <Card title="Outlook for this period">
      <Show value={a} what="the outlook" retry={() => void reload()}>
        {(v) => {
          const change = v.trend.change_ratio;
          return (
            <div className="stats" data-testid="outlook">
              <div className="stat">
                <span className="stat-label">Average per day this period</span>
                <span className="stat-value">
                  {fmtCredits(Math.round(Number(v.average_per_day) * 100) / 100)}
                </span>
              </div>
              <div className="stat">
                <span className="stat-label">Projected use by {fmtDate(v.projection.period_end_at)}</span>
                <span className="stat-value">
                  {fmtCredits(Math.round(Number(v.projection.projected_used)))}
                </span>
              </div>
              <div className="stat">
                <span className="stat-label">Credits run out</span>
                <span className="stat-value">
                  {v.forecast.run_out_at ? fmtDate(v.forecast.run_out_at) : "not at this rate"}
                </span>
              </div>
              <div className="stat">
                <span className="stat-label">Against last period</span>
                <span className="stat-value">
                  {change === null ? "—" : `${change >= 0 ? "+" : ""}${Math.round(change * 100)}%`}
                </span>
              </div>
            </div>
          );
        }}
      </Show>
    </Card>
  );
}
