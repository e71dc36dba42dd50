import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { planToApi, type PlanInput, type Plans } from "../../billing/plans.ts";
import type { Metadata } from "../../ledger/types.ts";
import { Credits, Id, Metadata as MetadataSchema } from "../schemas.ts";

export interface PlanRouteDeps {
  plans: Plans;
}

const Money = Type.Union([Type.String({ maxLength: 20 }), Type.Number()], {
  description: "money in the plan's currency, a decimal with up to 2 places",
});
const Rate = Type.Union([Type.String({ maxLength: 24 }), Type.Number()], {
  description: 'money per overage credit, up to 6 decimals ("0.05")',
});

const planFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  monthly_allowance: Credits,
  price: Type.Optional(Money),
  currency: Type.Optional(Type.String({ minLength: 3, maxLength: 3 })),
  overage_policy: Type.Optional(Type.Union([Type.Literal("block"), Type.Literal("allow")])),
  overage_rate: Type.Optional(Rate),
  overage_limit: Type.Optional(Type.Union([Credits, Type.Null()])),
  rate_limit_tier: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
  rollover_cap: Type.Optional(Credits),
  metadata: Type.Optional(MetadataSchema),
};

/** Operator: plans (monthly allowance, price, overage, rate-limit tier, rollover cap). */
export const planRoutes: FastifyPluginAsyncTypebox<PlanRouteDeps> = async (app, { plans }) => {
  app.post(
    "/plans",
    {
      schema: {
        tags: ["plans"],
        summary: "Create a plan (the same id and settings again is a replay)",
        body: Type.Object({ id: Id, ...planFields }, { additionalProperties: false }),
      },
    },
    async (req, reply) => {
      const r = await plans.create({
        ...req.body,
        metadata: (req.body.metadata ?? {}) as Metadata,
      } as PlanInput);
      reply.code(r.replay ? 200 : 201);
      return { ...planToApi(r.plan), replay: r.replay };
    },
  );

  app.get(
    "/plans",
    {
      schema: {
        tags: ["plans"],
        summary: "List plans",
        querystring: Type.Object({ include_archived: Type.Optional(Type.Boolean()) }),
      },
    },
    async (req) => ({ data: (await plans.list(req.query.include_archived ?? false)).map(planToApi) }),
  );

  app.get(
    "/plans/:id",
    { schema: { tags: ["plans"], summary: "Show a plan", params: Type.Object({ id: Id }) } },
    async (req) => planToApi(await plans.get(req.params.id)),
  );

  app.patch(
    "/plans/:id",
    {
      schema: {
        tags: ["plans"],
        summary: "Change a plan's settings; subscriptions get them from their next period",
        params: Type.Object({ id: Id }),
        body: Type.Partial(Type.Object(planFields), { additionalProperties: false }),
      },
    },
    async (req) => {
      const patch = { ...req.body } as Partial<PlanInput>;
      return planToApi(await plans.update(req.params.id, patch));
    },
  );

  app.delete(
    "/plans/:id",
    {
      schema: {
        tags: ["plans"],
        summary: "Archive a plan: no new subscriptions; existing ones keep renewing",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => planToApi(await plans.archive(req.params.id)),
  );
};
