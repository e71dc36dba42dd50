import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { parseCredits } from "../../domain/amount.ts";
import { TallyError } from "../../domain/errors.ts";
import type { Engine } from "../../ledger/engine.ts";
import { AUTO_RECHARGE_LIMITS, type AutoRecharge } from "../../billing/auto-recharge.ts";
import { loadTiers, parseMoneyCents, saveTiers, tierInfo } from "../../billing/payg.ts";
import { addMethod, createPack, getPack, methodOf, updatePack } from "../../billing/purchases-catalog.ts";
import type { Purchases } from "../../billing/purchases.ts";
import { Credits, Cursor, Id, Limit } from "../schemas.ts";
import { emptyBodyIsObject } from "./keys.ts";
import {
  methodJson,
  Money,
  packJson,
  purchaseJson,
  ruleJson,
  sessionJson,
  specOf,
} from "./purchases-json.ts";

export interface PurchaseRouteDeps {
  engine: Engine;
  purchases: Purchases;
  autoRecharge: AutoRecharge;
}

const Params = Type.Object({ id: Id });
const tags = ["purchases"];

export const PackBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()])),
    credits: Credits,
    price_usd: Money,
    currency: Type.Optional(Type.String({ minLength: 3, maxLength: 3 })),
    // Range checked by the handler: with type coercion, a schema minimum would turn 0 into null (never).
    expires_after_days: Type.Optional(
      Type.Union([Type.Integer({ description: "1 to 3650 days; null: never expires" }), Type.Null()]),
    ),
    active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const RuleBody = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ default: true })),
    threshold: Credits,
    pack_id: Type.Optional(Id),
    amount_usd: Type.Optional(Money),
    payment_method_id: Id,
    max_per_period: Type.Optional(Type.Integer({ minimum: 1, maximum: AUTO_RECHARGE_LIMITS.MAX_PER_PERIOD })),
    cooldown_seconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: AUTO_RECHARGE_LIMITS.MAX_COOLDOWN_MS / 1000 }),
    ),
    decline_backoff_seconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: AUTO_RECHARGE_LIMITS.MAX_DECLINE_BACKOFF_MS / 1000 }),
    ),
  },
  { additionalProperties: false },
);

export const SpecBody = Type.Object(
  {
    amount_usd: Type.Optional(Money),
    pack_id: Type.Optional(Id),
    save_payment_method: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** A rule from its API body (defaults: enabled, 5 per month, 60 s cooldown, 1 h first back-off). */
export function ruleFromBody(accountId: string, b: typeof RuleBody.static) {
  if ((b.pack_id === undefined) === (b.amount_usd === undefined))
    throw TallyError.validation("pack_id", "give either pack_id or amount_usd");
  return {
    account_id: accountId,
    enabled: b.enabled ?? true,
    threshold: parseCredits(b.threshold, "threshold"),
    pack_id: b.pack_id ?? null,
    amount_cents: b.amount_usd === undefined ? null : parseMoneyCents(b.amount_usd, "amount_usd"),
    payment_method_id: b.payment_method_id,
    max_per_period: b.max_per_period ?? 5,
    cooldown_ms: (b.cooldown_seconds ?? AUTO_RECHARGE_LIMITS.DEFAULT_COOLDOWN_MS / 1000) * 1000,
    decline_backoff_ms:
      (b.decline_backoff_seconds ?? AUTO_RECHARGE_LIMITS.DEFAULT_DECLINE_BACKOFF_MS / 1000) * 1000,
  };
}

/**
 * Operator (under /v1): bulk tiers, packs, purchases (list, show, refund), checkout sessions opened for an
 * account, saved payment methods and auto-recharge rules.
 */
export const purchaseRoutes: FastifyPluginAsyncTypebox<PurchaseRouteDeps> = async (
  app,
  { engine, purchases, autoRecharge },
) => {
  const store = purchases.store;
  const now = () => engine.clock.now();

  // ---------- bulk tiers ----------
  app.get(
    "/payg/tiers",
    { schema: { tags, summary: "Bulk tiers: more credits per dollar above an amount" } },
    async () => ({
      data: (await loadTiers(engine.store)).map(tierInfo),
    }),
  );
  app.put(
    "/payg/tiers",
    {
      schema: {
        tags,
        summary: "Replace the bulk tiers",
        body: Type.Object(
          {
            tiers: Type.Array(
              Type.Object(
                {
                  min_amount_usd: Money,
                  credits_per_dollar: Type.Union([Type.Number(), Type.String({ maxLength: 32 })]),
                },
                { additionalProperties: false },
              ),
              { maxItems: 20 },
            ),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const tiers = req.body.tiers.map((t, i) => ({
        min_amount_cents: parseMoneyCents(t.min_amount_usd, `tiers.${i}.min_amount_usd`),
        credits_per_dollar: parseCredits(t.credits_per_dollar, `tiers.${i}.credits_per_dollar`),
      }));
      return { data: (await saveTiers(engine.store, tiers)).map(tierInfo) };
    },
  );

  // ---------- packs ----------
  app.get(
    "/packs",
    {
      schema: {
        tags,
        summary: "Credit packs (active ones unless include_inactive)",
        querystring: Type.Object({ include_inactive: Type.Optional(Type.Boolean()) }),
      },
    },
    async (req) => ({ data: (await store.listPacks(!req.query.include_inactive, 200)).map(packJson) }),
  );
  app.post(
    "/packs",
    { schema: { tags, summary: "Create a credit pack", body: PackBody } },
    async (req, reply) => {
      const b = req.body;
      const pack = await createPack(
        store,
        {
          name: b.name,
          description: b.description ?? null,
          credits: parseCredits(b.credits, "credits"),
          price_cents: parseMoneyCents(b.price_usd, "price_usd"),
          currency: b.currency ?? "USD",
          expires_after_days: b.expires_after_days ?? null,
          active: b.active ?? true,
        },
        now(),
      );
      reply.code(201);
      return packJson(pack);
    },
  );
  app.get("/packs/:id", { schema: { tags, summary: "A credit pack", params: Params } }, async (req) =>
    packJson(await getPack(store, req.params.id, "id")),
  );
  app.patch(
    "/packs/:id",
    {
      schema: {
        tags,
        summary: "Change a pack (future purchases only); active=false stops selling it",
        params: Params,
        body: Type.Partial(PackBody),
      },
    },
    async (req) => {
      const b = req.body;
      const pack = await updatePack(
        store,
        req.params.id,
        {
          ...(b.name !== undefined ? { name: b.name } : {}),
          ...(b.description !== undefined ? { description: b.description } : {}),
          ...(b.credits !== undefined ? { credits: parseCredits(b.credits, "credits") } : {}),
          ...(b.price_usd !== undefined ? { price_cents: parseMoneyCents(b.price_usd, "price_usd") } : {}),
          ...(b.currency !== undefined ? { currency: b.currency } : {}),
          ...(b.expires_after_days !== undefined ? { expires_after_days: b.expires_after_days } : {}),
          ...(b.active !== undefined ? { active: b.active } : {}),
        },
        now(),
      );
      return packJson(pack);
    },
  );

  // ---------- purchases ----------
  app.get(
    "/purchases",
    {
      schema: {
        tags,
        summary: "Purchases, oldest first (of one account with account_id)",
        querystring: Type.Object({
          account_id: Type.Optional(Id),
          cursor: Type.Optional(Cursor),
          limit: Type.Optional(Limit),
        }),
      },
    },
    async (req) => {
      const page = await store.listPurchases(
        {
          ...(req.query.account_id ? { account_id: req.query.account_id } : {}),
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        },
        req.query.limit ?? 100,
      );
      return { data: page.data.map(purchaseJson), next_cursor: page.next_cursor };
    },
  );
  app.get("/purchases/:id", { schema: { tags, summary: "A purchase", params: Params } }, async (req) =>
    purchaseJson(await purchases.getPurchase(req.params.id)),
  );
  app.post(
    "/purchases/:id/refund",
    {
      schema: {
        tags,
        summary: "Refund a purchase: void what is left of its credits, return the matching money",
        params: Params,
        body: Type.Object(
          { reason: Type.Optional(Type.String({ maxLength: 500 })) },
          { additionalProperties: false },
        ),
      },
      preValidation: emptyBodyIsObject,
    },
    async (req) => purchaseJson(await purchases.refund(req.params.id, req.body.reason ?? null)),
  );

  // ---------- checkout sessions ----------
  app.post(
    "/accounts/:id/checkout-sessions",
    { schema: { tags, summary: "Open a checkout session for an account", params: Params, body: SpecBody } },
    async (req, reply) => {
      const s = await purchases.createCheckout(req.params.id, specOf(req.body), {
        save_payment_method: req.body.save_payment_method ?? false,
      });
      reply.code(201);
      return sessionJson(s);
    },
  );
  app.get(
    "/checkout-sessions/:id",
    { schema: { tags, summary: "A checkout session", params: Params } },
    async (req) => sessionJson(await purchases.getSession(req.params.id)),
  );

  // ---------- payment methods ----------
  app.get(
    "/accounts/:id/payment-methods",
    { schema: { tags, summary: "An account's saved payment methods", params: Params } },
    async (req) => {
      await engine.getAccount(req.params.id);
      return { data: (await store.listMethods(req.params.id, 100)).map(methodJson) };
    },
  );
  app.post(
    "/accounts/:id/payment-methods",
    {
      schema: {
        tags,
        summary: "Save a payment method (Stripe customer + pm_…, or a local test card)",
        params: Params,
        body: Type.Object(
          {
            provider: Type.Union([Type.Literal("local"), Type.Literal("stripe")]),
            customer_ref: Type.Optional(Type.String({ maxLength: 255 })),
            method_ref: Type.String({ minLength: 1, maxLength: 255 }),
            label: Type.Optional(Type.String({ maxLength: 100 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      await engine.getAccount(req.params.id);
      const m = await addMethod(store, req.params.id, req.body, now());
      reply.code(201);
      return methodJson(m);
    },
  );
  app.delete(
    "/accounts/:id/payment-methods/:method_id",
    {
      schema: {
        tags,
        summary: "Remove a saved payment method",
        params: Type.Object({ id: Id, method_id: Id }),
      },
    },
    async (req) => {
      const m = await methodOf(store, req.params.id, req.params.method_id);
      await store.removeMethod(m.id, now());
      return { id: m.id, removed: true };
    },
  );

  // ---------- auto-recharge ----------
  app.get(
    "/accounts/:id/auto-recharge",
    { schema: { tags, summary: "An account's auto-recharge rule", params: Params } },
    async (req) => ruleJson(await autoRecharge.getRule(req.params.id)),
  );
  app.put(
    "/accounts/:id/auto-recharge",
    { schema: { tags, summary: "Set an account's auto-recharge rule", params: Params, body: RuleBody } },
    async (req) => {
      const r = await autoRecharge.putRule(ruleFromBody(req.params.id, req.body));
      autoRecharge.trigger(req.params.id);
      return ruleJson(r);
    },
  );
  app.delete(
    "/accounts/:id/auto-recharge",
    { schema: { tags, summary: "Remove an account's auto-recharge rule", params: Params } },
    async (req) => {
      if (!(await autoRecharge.deleteRule(req.params.id)))
        throw TallyError.notFound("auto-recharge rule", req.params.id, "id");
      return { account_id: req.params.id, removed: true };
    },
  );
  app.post(
    "/accounts/:id/auto-recharge/check",
    {
      schema: {
        tags,
        summary: "Check the rule now (recharges if below the threshold and allowed)",
        params: Params,
      },
    },
    async (req) => autoRecharge.check(req.params.id),
  );
};

declare module "fastify" {
  interface FastifyInstance {
    /** Purchases and auto-recharge of this app (the server's scheduler runs their sweeps). */
    billing: { purchases: Purchases; autoRecharge: AutoRecharge };
  }
}
