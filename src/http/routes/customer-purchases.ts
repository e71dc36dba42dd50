import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { formatCredits } from "../../domain/amount.ts";
import { TallyError } from "../../domain/errors.ts";
import type { AutoRecharge } from "../../billing/auto-recharge.ts";
import { formatMoney } from "../../billing/payg.ts";
import type { Purchases } from "../../billing/purchases.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import { methodJson, packJson, purchaseJson, ruleJson, sessionJson } from "./purchases-json.ts";
import { RuleBody, ruleFromBody } from "./purchases.ts";
import { emptyBodyIsObject } from "./keys.ts";

export interface CustomerPurchaseDeps {
  purchases: Purchases;
  autoRecharge: AutoRecharge;
  customerAuth: CustomerAuth;
}

const tags = ["purchases"];
const Params = Type.Object({ id: Id });

/** The checkout answer of the seed's create-checkout-session, plus where to pay. */
export function checkoutAnswer(s: { id: string; credits: bigint; amount_cents: bigint; url: string | null }) {
  return {
    session_id: s.id,
    credits_to_receive: Number(formatCredits(s.credits)),
    amount_usd: formatMoney(s.amount_cents),
    checkout_url: s.url,
  };
}

/**
 * Customer (under /api/v1), for the caller's own account only: packs on sale and buying one, its purchases
 * and checkout sessions, its saved payment methods, and its auto-recharge rule. Another account's purchase or
 * session answers 404, like one that does not exist.
 */
export const customerPurchaseRoutes: FastifyPluginAsyncTypebox<CustomerPurchaseDeps> = async (
  app,
  { purchases, autoRecharge, customerAuth },
) => {
  const store = purchases.store;
  const read = customerRoute(customerAuth, "read");
  const manage = customerRoute(customerAuth, "manage");

  app.get("/packs", { ...read, schema: { tags, summary: "Credit packs on sale" } }, async () => ({
    data: (await store.listPacks(true, 200)).map(packJson),
  }));

  app.post(
    "/packs/:id/checkout",
    {
      ...manage,
      schema: {
        tags,
        summary: "Buy a pack: open a checkout session (save_payment_method keeps the card for auto-recharge)",
        params: Params,
        body: Type.Object(
          { save_payment_method: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
      },
      preValidation: emptyBodyIsObject,
    },
    async (req) => {
      const { account_id } = principalOf(req);
      return checkoutAnswer(
        await purchases.createCheckout(
          account_id,
          { pack_id: req.params.id },
          { save_payment_method: req.body.save_payment_method ?? false },
        ),
      );
    },
  );

  app.get(
    "/purchases",
    {
      ...read,
      schema: {
        tags,
        summary: "The account's purchases, oldest first",
        querystring: Type.Object({ cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) }),
      },
    },
    async (req) => {
      const { account_id } = principalOf(req);
      const page = await store.listPurchases(
        { account_id, ...(req.query.cursor ? { cursor: req.query.cursor } : {}) },
        req.query.limit ?? 100,
      );
      return { data: page.data.map(purchaseJson), next_cursor: page.next_cursor };
    },
  );

  app.get(
    "/purchases/:id",
    { ...read, schema: { tags, summary: "One of the account's purchases", params: Params } },
    async (req) => {
      const { account_id } = principalOf(req);
      const p = await store.getPurchase(req.params.id);
      if (!p || p.account_id !== account_id) throw TallyError.notFound("purchase", req.params.id, "id");
      return purchaseJson(p);
    },
  );

  app.get(
    "/checkout-sessions/:id",
    {
      ...read,
      schema: { tags, summary: "One of the account's checkout sessions (its status)", params: Params },
    },
    async (req) => {
      const { account_id } = principalOf(req);
      const s = await store.getSession(req.params.id);
      if (!s || s.account_id !== account_id)
        throw TallyError.notFound("checkout session", req.params.id, "id");
      return sessionJson(s);
    },
  );

  app.get(
    "/payment-methods",
    { ...read, schema: { tags, summary: "The account's saved payment methods" } },
    async (req) => {
      const { account_id } = principalOf(req);
      return { data: (await store.listMethods(account_id, 100)).map(methodJson) };
    },
  );

  app.get(
    "/auto-recharge",
    { ...read, schema: { tags, summary: "The account's auto-recharge rule" } },
    async (req) => ruleJson(await autoRecharge.getRule(principalOf(req).account_id)),
  );
  app.put(
    "/auto-recharge",
    { ...manage, schema: { tags, summary: "Set the account's auto-recharge rule", body: RuleBody } },
    async (req) => {
      const { account_id } = principalOf(req);
      const r = await autoRecharge.putRule(ruleFromBody(account_id, req.body));
      autoRecharge.trigger(account_id);
      return ruleJson(r);
    },
  );
  app.delete(
    "/auto-recharge",
    { ...manage, schema: { tags, summary: "Turn auto-recharge off (remove the rule)" } },
    async (req) => {
      const { account_id } = principalOf(req);
      if (!(await autoRecharge.deleteRule(account_id)))
        throw TallyError.notFound("auto-recharge rule", account_id, "account_id");
      return { account_id, removed: true };
    },
  );
};
