import { Type, type FastifyPluginAsyncTypebox, type Static } from "@fastify/type-provider-typebox";
import type { AlertRuleRecord, RuleInput, Severity } from "../../alerts/service.ts";
import { parseCredits } from "../../domain/amount.ts";
import { ALERT_KINDS, type AlertKind } from "../../domain/alerts.ts";
import type { EventServices } from "../../events/services.ts";
import type { Engine } from "../../ledger/engine.ts";
import type { Metadata as MetadataRecord } from "../../ledger/types.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import { Credits, Id, Metadata } from "../schemas.ts";
import { toApi } from "../serialize.ts";

export const RuleBody = Type.Object(
  {
    kind: Type.Union(ALERT_KINDS.map((k) => Type.Literal(k))),
    amount: Type.Optional(Credits),
    percent: Type.Optional(Type.Number()),
    days: Type.Optional(Type.Integer()),
    hours: Type.Optional(Type.Integer()),
    multiple: Type.Optional(Type.Number()),
    budget_id: Type.Optional(Id),
    severity: Type.Optional(
      Type.Union([Type.Literal("info"), Type.Literal("warning"), Type.Literal("critical")]),
    ),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

export function ruleInput(b: Static<typeof RuleBody>): RuleInput {
  return {
    condition: {
      kind: b.kind as AlertKind,
      ...(b.amount !== undefined ? { amount: parseCredits(b.amount, "amount") } : {}),
      ...(b.percent !== undefined ? { percent: b.percent } : {}),
      ...(b.days !== undefined ? { days: b.days } : {}),
      ...(b.hours !== undefined ? { hours: b.hours } : {}),
      ...(b.multiple !== undefined ? { multiple: b.multiple } : {}),
      ...(b.budget_id !== undefined ? { budget_id: b.budget_id } : {}),
    },
    severity: b.severity as Severity | undefined,
    metadata: b.metadata as MetadataRecord | undefined,
  };
}

export function ruleToApi(r: AlertRuleRecord): unknown {
  const { condition, ...rest } = r;
  return toApi({ ...rest, ...condition });
}

/** Operator: alert rules of any account. */
export const alertRoutes: FastifyPluginAsyncTypebox<{ engine: Engine; services: EventServices }> = async (
  app,
  { services },
) => {
  const { alerts } = services;
  const Params = Type.Object({ id: Id });
  const OneParams = Type.Object({ id: Id, rule_id: Id });
  app.get(
    "/accounts/:id/alerts",
    { schema: { tags: ["alerts"], summary: "An account's alert rules and their state", params: Params } },
    async (req) => ({ data: (await alerts.list(req.params.id)).map(ruleToApi) }),
  );
  app.post(
    "/accounts/:id/alerts",
    {
      schema: {
        tags: ["alerts"],
        summary: "Add an alert rule (evaluated at once)",
        params: Params,
        body: RuleBody,
      },
    },
    async (req, reply) => {
      const r = await alerts.create(req.params.id, ruleInput(req.body), "operator");
      reply.code(201);
      return ruleToApi(r);
    },
  );
  app.get(
    "/accounts/:id/alerts/:rule_id",
    { schema: { tags: ["alerts"], summary: "One alert rule", params: OneParams } },
    async (req) => ruleToApi(await alerts.require(req.params.id, req.params.rule_id)),
  );
  app.delete(
    "/accounts/:id/alerts/:rule_id",
    { schema: { tags: ["alerts"], summary: "Remove an alert rule", params: OneParams } },
    async (req, reply) => {
      await alerts.remove(req.params.id, req.params.rule_id);
      reply.code(204);
    },
  );
};

/** Customer (/api/v1): the caller's own account's alert rules. */
export const customerAlertRoutes: FastifyPluginAsyncTypebox<{
  services: EventServices;
  customerAuth: CustomerAuth;
}> = async (app, { services, customerAuth }) => {
  const { alerts } = services;
  const OneParams = Type.Object({ rule_id: Id });
  app.get(
    "/alerts",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["alerts"], summary: "Your alert rules and their state" },
    },
    async (req) => ({ data: (await alerts.list(principalOf(req).account_id)).map(ruleToApi) }),
  );
  app.post(
    "/alerts",
    {
      ...customerRoute(customerAuth, "manage"),
      schema: { tags: ["alerts"], summary: "Add an alert rule to your account", body: RuleBody },
    },
    async (req, reply) => {
      const me = principalOf(req);
      const by = me.credential === "api_key" ? `key:${me.key_id}` : `user:${me.user_id ?? "unknown"}`;
      const r = await alerts.create(me.account_id, ruleInput(req.body), by);
      reply.code(201);
      return ruleToApi(r);
    },
  );
  app.get(
    "/alerts/:rule_id",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["alerts"], summary: "One of your alert rules", params: OneParams },
    },
    async (req) => ruleToApi(await alerts.require(principalOf(req).account_id, req.params.rule_id)),
  );
  app.delete(
    "/alerts/:rule_id",
    {
      ...customerRoute(customerAuth, "manage"),
      schema: { tags: ["alerts"], summary: "Remove one of your alert rules", params: OneParams },
    },
    async (req, reply) => {
      await alerts.remove(principalOf(req).account_id, req.params.rule_id);
      reply.code(204);
    },
  );
};
