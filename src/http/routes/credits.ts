import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { formatCredits } from "../../domain/amount.ts";
import { seedMultipliers, SINGLE_DIMENSION, type RateCard } from "../../domain/pricing.ts";
import type { Engine } from "../../ledger/engine.ts";
import type { UsageRecord } from "../../ledger/types.ts";
import type { RateCards } from "../../pricing/rate-cards.ts";
import { loadPayg, parseMoneyCents, paygInfo } from "../../billing/payg.ts";
import type { Purchases } from "../../billing/purchases.ts";
import { checkoutAnswer } from "./customer-purchases.ts";
import { Cursor } from "../schemas.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import type { Subscriptions } from "../../billing/subscriptions.ts";
import { daysUntil } from "../../domain/cycles.ts";
import { renewQuietly } from "../lazy-renewal.ts";

export interface CreditsDeps {
  engine: Engine;
  rateCards: RateCards;
  customerAuth: CustomerAuth;
  subs: Subscriptions;
  purchases: Purchases;
}

/** The seed's time format: "2024-02-01T00:00:00Z" (milliseconds only when there are some). */
function seedTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString().replace(/\.000Z$/, "Z");
}

/** Credits as a JSON number, as the seed documents them (exact up to 2^53 micro-credits). */
function n(micros: bigint): number {
  return Number(formatCredits(micros));
}

/** The seed's credit_source: "payg" for purchased credits, the grant kind otherwise, "overage" when uncovered. */
export function creditSource(u: UsageRecord): string {
  let best: { kind: string; amount: bigint } | null = null;
  for (const p of u.parts) if (!best || p.amount > best.amount) best = { kind: p.kind, amount: p.amount };
  if (!best || u.overage > best.amount)
    return u.parts.length === 0 && u.overage === 0n ? "subscription" : "overage";
  return best.kind === "purchase" ? "payg" : best.kind;
}

/** Seconds of audio for services priced by time (0 for others), as the seed's `audio_duration`. */
export function audioDuration(u: UsageRecord, card: RateCard): number {
  const rate = card.services[u.service];
  if (!rate || u.quantity === null) return 0;
  const dim = rate.dimensions.find((d) => d.name === SINGLE_DIMENSION);
  if (!dim) return 0;
  const q = Number(u.quantity);
  if (!Number.isFinite(q)) return 0;
  const unit = dim.unit.toLowerCase();
  if (unit === "second" || unit === "seconds" || unit === "s") return q;
  if (unit === "minute" || unit === "minutes" || unit === "min") return q * 60;
  return 0;
}

/**
 * The customer's Credits API, exactly as the seed documents it: /api/v1/credits, /credits/usage,
 * /credits/multipliers, /credits/payg/info, /credits/payg/create-checkout-session.
 */
export const creditsRoutes: FastifyPluginAsyncTypebox<CreditsDeps> = async (
  app,
  { engine, rateCards, customerAuth, subs, purchases },
) => {
  app.get(
    "/credits",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["credits"], summary: "Current credit balance and account information" },
    },
    async (req) => {
      const { account_id } = principalOf(req);
      // Lazy renewal: a period that has started is granted before the balance is read.
      await renewQuietly(subs, account_id, req);
      const [balance, totals, sub] = await Promise.all([
        engine.balance(account_id),
        engine.store.accountTotals(account_id),
        subs.db.activeSubscriptionOf(account_id),
      ]);
      const plan = sub ? await subs.db.getPlan(sub.plan_id) : null;
      const payg = balance.by_kind.purchase;
      // The reset after this period: none when the subscription ends with it.
      const nextReset = sub && !sub.cancel_at_period_end ? sub.period_end : null;
      return {
        credits_balance: n(balance.available - payg),
        payg_balance: n(payg),
        total_available_credits: n(balance.available),
        last_reset_at: seedTime(sub?.period_start ?? null),
        total_credits_used: n(totals.consumed),
        total_payg_credits_purchased: n(totals.granted.purchase ?? 0n),
        next_reset_date: seedTime(nextReset),
        credits_per_month: plan ? n(plan.monthly_allowance) : 0,
        days_until_reset: nextReset === null ? null : daysUntil(engine.clock.now(), nextReset),
      };
    },
  );

  app.get(
    "/credits/usage",
    {
      ...customerRoute(customerAuth, "read"),
      schema: {
        tags: ["credits"],
        summary: "Usage history across services, newest first (a JSON array, as documented)",
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
          cursor: Type.Optional(Cursor),
        }),
      },
    },
    async (req, reply) => {
      const { account_id } = principalOf(req);
      const page = await engine.listUsages({ account_id, limit: req.query.limit, cursor: req.query.cursor });
      // The documented body is a bare array; the next page is offered in a header.
      if (page.next_cursor) void reply.header("x-next-cursor", page.next_cursor);
      // The service's unit comes from the card in force now (units do not change between versions in practice).
      const card = await rateCards.at(engine.clock.now(), "now");
      return page.data.map((u) => ({
        id: u.id,
        user_credits_id: u.account_id,
        credits_used: n(u.cost - u.refunded),
        service_type: u.service,
        audio_duration: audioDuration(u, card),
        credit_source: creditSource(u),
        created_at: new Date(u.recorded_at).toISOString(),
        usage_metadata: u.metadata,
      }));
    },
  );

  app.get(
    "/credits/multipliers",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["credits"], summary: "Credit costs per service" },
    },
    async () => {
      return seedMultipliers(await rateCards.at(engine.clock.now(), "now"));
    },
  );

  app.get(
    "/credits/payg/info",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["credits"], summary: "Pay-as-you-go purchasing options" },
    },
    async () => {
      return paygInfo(await loadPayg(engine.store));
    },
  );

  app.post(
    "/credits/payg/create-checkout-session",
    {
      ...customerRoute(customerAuth, "manage"),
      schema: {
        tags: ["credits"],
        summary: "Create a checkout session to buy pay-as-you-go credits",
        body: Type.Object(
          {
            amount_usd: Type.Union([Type.Number(), Type.String({ maxLength: 20 })]),
            // Beyond the seed: keep the card for auto-recharge.
            save_payment_method: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const { account_id } = principalOf(req);
      const cents = parseMoneyCents(req.body.amount_usd, "amount_usd");
      // The documented fields, plus checkout_url: where the customer pays (the provider's page).
      return checkoutAnswer(
        await purchases.createCheckout(
          account_id,
          { amount_cents: cents },
          { save_payment_method: req.body.save_payment_method ?? false },
        ),
      );
    },
  );
};
