import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AccountAnalytics } from "../../analytics/service.ts";
import type { Bucket } from "../../domain/analytics.ts";
import type { EventServices } from "../../events/services.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import { Id, Time, parseTime } from "../schemas.ts";
import { toApi } from "../serialize.ts";

const RangeQuery = Type.Object({ from: Type.Optional(Time), to: Type.Optional(Time) });

const day = (b: Bucket) => ({
  date: new Date(b.at).toISOString().slice(0, 10),
  credits: toApi(b.credits),
  events: b.count,
});

/** API shape: times as ISO, amounts as credit strings, days as dates. */
export function analyticsToApi(a: AccountAnalytics): unknown {
  const { period, range, daily, peak_days, rate, projection, forecast, trend, ...rest } = a;
  const { start, end, ...figures } = period;
  return {
    ...(toApi(rest) as object),
    period: { start_at: iso(start), end_at: iso(end), ...(toApi(figures) as object) },
    range: { start_at: iso(range.start), end_at: iso(range.end) },
    daily: daily.map(day),
    peak_days: peak_days.map(day),
    trend: toApi(trend),
    rate: {
      per_hour: toApi(rate.per_hour),
      window_start_at: iso(rate.window_from),
      window_end_at: iso(rate.window_to),
    },
    projection: {
      period_end_at: iso(projection.period_end),
      projected_used: toApi(projection.projected_used),
      projected_remaining: toApi(projection.projected_remaining),
    },
    forecast: {
      run_out_at: forecast.run_out_at === null ? null : iso(forecast.run_out_at),
      hours_left: forecast.hours_left,
      rate_per_hour: toApi(forecast.rate_per_hour),
      method: "available / credits used per hour over the trailing 7 days (hourly rollup)",
    },
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Operator: one account's analytics, and the whole ledger's. */
export const analyticsRoutes: FastifyPluginAsyncTypebox<{ services: EventServices }> = async (
  app,
  { services },
) => {
  const { analytics } = services;
  app.get(
    "/accounts/:id/analytics",
    {
      schema: {
        tags: ["analytics"],
        summary: "Period figures, by service, daily series, trend, projection and run-out forecast",
        params: Type.Object({ id: Id }),
        querystring: RangeQuery,
      },
    },
    async (req) =>
      analyticsToApi(
        await analytics.account(req.params.id, {
          from: parseTime(req.query.from, "from"),
          to: parseTime(req.query.to, "to"),
        }),
      ),
  );
  app.get(
    "/analytics",
    {
      schema: {
        tags: ["analytics"],
        summary: "Operator-wide: top accounts, credits sold and used, usage per service",
        querystring: Type.Object({
          from: Type.Optional(Time),
          to: Type.Optional(Time),
          top: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
        }),
      },
    },
    async (req) => {
      const o = await analytics.overview({
        from: parseTime(req.query.from, "from"),
        to: parseTime(req.query.to, "to"),
        top: req.query.top,
      });
      const { range, at, ...rest } = o;
      return {
        at: iso(at),
        range: { start_at: iso(range.start), end_at: iso(range.end) },
        ...(toApi(rest) as object),
      };
    },
  );
};

/** Customer (/api/v1): the caller's own account's analytics. */
export const customerAnalyticsRoutes: FastifyPluginAsyncTypebox<{
  services: EventServices;
  customerAuth: CustomerAuth;
}> = async (app, { services, customerAuth }) => {
  app.get(
    "/analytics",
    {
      ...customerRoute(customerAuth, "read"),
      schema: {
        tags: ["analytics"],
        summary: "Your account's usage analytics and forecast",
        querystring: RangeQuery,
      },
    },
    async (req) =>
      analyticsToApi(
        await services.analytics.account(principalOf(req).account_id, {
          from: parseTime(req.query.from, "from"),
          to: parseTime(req.query.to, "to"),
        }),
      ),
  );
};
