import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { planToApi } from "../../billing/plans.ts";
import type { Subscriptions } from "../../billing/subscriptions.ts";
import { subscriptionToApi } from "../../billing/subscription-api.ts";
export { subscriptionToApi };
import { TallyError } from "../../domain/errors.ts";
import type { Metadata } from "../../ledger/types.ts";
import type { SubscriptionRecord } from "../../store/billing-store.ts";
import { Cursor, Id, Limit, Metadata as MetadataSchema, Time, parseTime } from "../schemas.ts";
import { emptyBodyIsObject } from "./keys.ts";

export interface SubscriptionRouteDeps {
  subs: Subscriptions;
}

/** Operator: subscribe an account to a plan, change plans, cancel at period end, renew. */
export const subscriptionRoutes: FastifyPluginAsyncTypebox<SubscriptionRouteDeps> = async (app, { subs }) => {
  const out = (s: SubscriptionRecord) => subscriptionToApi(s, subs.engine.clock.now());

  app.post(
    "/subscriptions",
    {
      schema: {
        tags: ["subscriptions"],
        summary: "Subscribe an account to a plan; the first period's allowance is granted at once",
        body: Type.Object(
          {
            id: Type.Optional(Id),
            account_id: Id,
            plan_id: Id,
            anchor_at: Type.Optional(Time),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const anchor = parseTime(b.anchor_at, "anchor_at");
      const r = await subs.subscribe({
        ...(b.id ? { id: b.id } : {}),
        account_id: b.account_id,
        plan_id: b.plan_id,
        ...(anchor !== undefined ? { anchor_at: anchor } : {}),
        metadata: (b.metadata ?? {}) as Metadata,
      });
      reply.code(r.replay ? 200 : 201);
      return { ...out(r.subscription), replay: r.replay };
    },
  );

  app.get(
    "/subscriptions",
    {
      schema: {
        tags: ["subscriptions"],
        summary: "List subscriptions (of one account, or all)",
        querystring: Type.Object({
          account_id: Type.Optional(Id),
          cursor: Type.Optional(Cursor),
          limit: Type.Optional(Limit),
        }),
      },
    },
    async (req) => {
      const q = req.query;
      const page = await subs.db.listSubscriptions({
        ...(q.account_id ? { account_id: q.account_id } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        limit: q.limit ?? 100,
      });
      return { data: page.data.map(out), next_cursor: page.next_cursor };
    },
  );

  app.get(
    "/subscriptions/:id",
    {
      schema: {
        tags: ["subscriptions"],
        summary: "Show a subscription (renewed first if due)",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => out(await subs.renew(req.params.id)),
  );

  app.get(
    "/accounts/:id/subscription",
    {
      schema: {
        tags: ["subscriptions"],
        summary: "An account's active subscription with its plan, or 404",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => {
      await subs.engine.getAccount(req.params.id);
      const cur = await subs.current(req.params.id);
      if (!cur) {
        throw new TallyError("not_found", `account ${req.params.id} has no active subscription`, {
          field: "id",
        });
      }
      return { ...out(cur.subscription), plan: planToApi(cur.plan) };
    },
  );

  app.post(
    "/subscriptions/:id/change",
    {
      schema: {
        tags: ["subscriptions"],
        summary:
          "Change plan: now (old supply kept as a carryover until the old period ends, new period from now) or at period end",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            plan_id: Id,
            timing: Type.Optional(Type.Union([Type.Literal("now"), Type.Literal("period_end")])),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => out(await subs.change(req.params.id, req.body.plan_id, req.body.timing ?? "now")),
  );

  for (const [action, summary] of [
    ["cancel", "Cancel at the end of the current period"],
    ["resume", "Undo a cancellation at period end"],
  ] as const) {
    app.post(
      `/subscriptions/:id/${action}`,
      {
        preValidation: emptyBodyIsObject,
        schema: { tags: ["subscriptions"], summary, params: Type.Object({ id: Id }) },
      },
      async (req) =>
        out(action === "cancel" ? await subs.cancel(req.params.id) : await subs.resume(req.params.id)),
    );
  }

  app.post(
    "/subscriptions/renew-due",
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ["subscriptions"],
        summary: "Run one renewal pass now (the server also runs it on a timer)",
      },
    },
    async () => ({ renewed: await subs.renewDue() }),
  );
};
