import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply } from "fastify";
import { TallyError } from "../../domain/errors.ts";
import type { EventServices } from "../../events/services.ts";
import type { Engine } from "../../ledger/engine.ts";
import { decodeIdCursor, encodeCursor } from "../../store/types.ts";
import type { DeliveryRecord, DeliveryStatus } from "../../webhooks/dispatcher.ts";
import type { EndpointRecord, EndpointWithSecret } from "../../webhooks/endpoints.ts";
import { withoutSecret } from "../../webhooks/endpoints.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import { toApi } from "../serialize.ts";

const Url = Type.String({ minLength: 1, maxLength: 2048 });
const EventTypes = Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 50 });
const Description = Type.Union([Type.String({ maxLength: 256 }), Type.Null()]);
const CreateBody = Type.Object(
  { url: Url, event_types: EventTypes, description: Type.Optional(Description) },
  { additionalProperties: false },
);
const OperatorCreateBody = Type.Object(
  {
    url: Url,
    event_types: EventTypes,
    description: Type.Optional(Description),
    account_id: Type.Optional(Type.Union([Id, Type.Null()])),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    event_types: Type.Optional(EventTypes),
    description: Type.Optional(Description),
    status: Type.Optional(Type.Union([Type.Literal("enabled"), Type.Literal("disabled")])),
  },
  { additionalProperties: false },
);
const DeliveryQuery = Type.Object({
  status: Type.Optional(
    Type.Union([Type.Literal("pending"), Type.Literal("succeeded"), Type.Literal("failed")]),
  ),
  cursor: Type.Optional(Cursor),
  limit: Type.Optional(Limit),
});
const EndpointParams = Type.Object({ endpoint_id: Id });
const DeliveryParams = Type.Object({ endpoint_id: Id, delivery_id: Id });

const endpointToApi = (e: EndpointRecord) => toApi(e);
const deliveryToApi = (d: DeliveryRecord) => toApi(d);

function created(reply: FastifyReply, e: EndpointWithSecret) {
  // The secret is shown here only; an Idempotency-Key replay of this answer is stored sealed.
  void reply.header("cache-control", "no-store");
  reply.code(201);
  return { ...(endpointToApi(withoutSecret(e)) as object), secret: e.secret };
}

/**
 * The routes shared by the operator and a customer; `scopeOf(req)` is undefined for the operator (every
 * endpoint) or the customer's account (only its own endpoints; another's read as missing).
 */
function deliveryRoutes(
  app: Parameters<FastifyPluginAsyncTypebox>[0],
  services: EventServices,
  engine: Engine,
  scopeOf: (req: unknown) => string | undefined,
  guard: (scope: "read" | "manage") => object,
  asCustomer: boolean,
) {
  const { endpoints, deliveries } = services;
  app.get(
    "/webhooks/:endpoint_id",
    {
      ...guard("read"),
      schema: { tags: ["webhooks"], summary: "One webhook endpoint", params: EndpointParams },
    },
    async (req) =>
      endpointToApi(withoutSecret(await endpoints.require(req.params.endpoint_id, scopeOf(req)))),
  );
  app.patch(
    "/webhooks/:endpoint_id",
    {
      ...guard("manage"),
      schema: {
        tags: ["webhooks"],
        summary: "Change an endpoint's URL, types or description; enable or disable it",
        params: EndpointParams,
        body: PatchBody,
      },
    },
    async (req) =>
      endpointToApi(await endpoints.update(req.params.endpoint_id, scopeOf(req), req.body, asCustomer)),
  );
  app.delete(
    "/webhooks/:endpoint_id",
    {
      ...guard("manage"),
      schema: {
        tags: ["webhooks"],
        summary: "Remove an endpoint and its delivery log",
        params: EndpointParams,
      },
    },
    async (req, reply) => {
      await endpoints.remove(req.params.endpoint_id, scopeOf(req));
      reply.code(204);
    },
  );
  app.get(
    "/webhooks/:endpoint_id/deliveries",
    {
      ...guard("read"),
      schema: {
        tags: ["webhooks"],
        summary: "The endpoint's deliveries (newest last), with status and attempts",
        params: EndpointParams,
        querystring: DeliveryQuery,
      },
    },
    async (req) => {
      await endpoints.require(req.params.endpoint_id, scopeOf(req));
      const after = decodeIdCursor(req.query.cursor);
      const page = await deliveries.list(req.params.endpoint_id, {
        status: req.query.status as DeliveryStatus | undefined,
        after: after ?? undefined,
        limit: req.query.limit ?? 100,
      });
      return {
        data: page.data.map(deliveryToApi),
        next_cursor: page.next_cursor ? encodeCursor(page.next_cursor) : null,
      };
    },
  );
  app.get(
    "/webhooks/:endpoint_id/deliveries/:delivery_id",
    {
      ...guard("read"),
      schema: { tags: ["webhooks"], summary: "One delivery with its attempt log", params: DeliveryParams },
    },
    async (req) => {
      await endpoints.require(req.params.endpoint_id, scopeOf(req));
      const d = await deliveries.get(req.params.endpoint_id, req.params.delivery_id);
      if (!d) throw TallyError.notFound("delivery", req.params.delivery_id, "delivery_id");
      return toApi(d);
    },
  );
  app.post(
    "/webhooks/:endpoint_id/deliveries/:delivery_id/redeliver",
    {
      ...guard("manage"),
      schema: {
        tags: ["webhooks"],
        summary: "Send a delivery again now (with a fresh retry schedule)",
        params: DeliveryParams,
      },
    },
    async (req, reply) => {
      await endpoints.require(req.params.endpoint_id, scopeOf(req));
      const d = await deliveries.get(req.params.endpoint_id, req.params.delivery_id);
      if (!d) throw TallyError.notFound("delivery", req.params.delivery_id, "delivery_id");
      if (d.status === "pending")
        throw TallyError.validation("delivery_id", "is still pending: it will be sent on its schedule");
      await deliveries.redeliver(req.params.endpoint_id, req.params.delivery_id, engine.clock.now());
      reply.code(202);
      return toApi((await deliveries.get(req.params.endpoint_id, req.params.delivery_id))!);
    },
  );
}

/** Operator: webhook endpoints of the operator (every account) or of one account, deliveries, redelivery. */
export const webhookRoutes: FastifyPluginAsyncTypebox<{ engine: Engine; services: EventServices }> = async (
  app,
  { engine, services },
) => {
  const { endpoints } = services;
  app.post(
    "/webhooks",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Add a webhook endpoint (the signing secret is in this answer only)",
        body: OperatorCreateBody,
      },
    },
    async (req, reply) => {
      const { account_id, ...input } = req.body;
      return created(reply, await endpoints.create(account_id ?? null, input, "operator", false));
    },
  );
  app.get(
    "/webhooks",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Webhook endpoints (all, or one account's)",
        querystring: Type.Object({ account_id: Type.Optional(Id) }),
      },
    },
    async (req) => ({
      data: (await endpoints.list({ account_id: req.query.account_id })).map(endpointToApi),
    }),
  );
  deliveryRoutes(
    app,
    services,
    engine,
    () => undefined,
    () => ({}),
    false,
  );
};

/** Customer (/api/v1): webhook endpoints for the caller's own account. */
export const customerWebhookRoutes: FastifyPluginAsyncTypebox<{
  engine: Engine;
  services: EventServices;
  customerAuth: CustomerAuth;
}> = async (app, { engine, services, customerAuth }) => {
  const { endpoints } = services;
  const guard = (scope: "read" | "manage") => customerRoute(customerAuth, scope);
  app.post(
    "/webhooks",
    {
      ...guard("manage"),
      schema: {
        tags: ["webhooks"],
        summary: "Add a webhook endpoint for your account (the secret is in this answer only)",
        body: CreateBody,
      },
    },
    async (req, reply) => {
      const me = principalOf(req);
      const by = me.credential === "api_key" ? `key:${me.key_id}` : `user:${me.user_id ?? "unknown"}`;
      return created(reply, await endpoints.create(me.account_id, req.body, by, true));
    },
  );
  app.get(
    "/webhooks",
    { ...guard("read"), schema: { tags: ["webhooks"], summary: "Your webhook endpoints" } },
    async (req) => ({
      data: (await endpoints.list({ account_id: principalOf(req).account_id })).map(endpointToApi),
    }),
  );
  deliveryRoutes(
    app,
    services,
    engine,
    (req) => principalOf(req as Parameters<typeof principalOf>[0]).account_id,
    guard,
    true,
  );
};
