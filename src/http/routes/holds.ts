import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { parseCredits } from "../../domain/amount.ts";
import type { Metadata } from "../../ledger/types.ts";
import { toApi } from "../serialize.ts";
import { Credits, Id, Metadata as MetadataSchema, Time, parseTime } from "../schemas.ts";
import type { RouteDeps } from "./deps.ts";

/** Operator: holds (reservations), refunds and the audit. */
export const holdRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  app.post(
    "/holds",
    {
      schema: {
        tags: ["holds"],
        summary: "Set credits aside for work that has started",
        body: Type.Object(
          {
            id: Type.Optional(Id),
            account_id: Id,
            amount: Credits,
            ttl_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
            expires_at: Type.Optional(Time),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const expiresAt = parseTime(b.expires_at, "expires_at");
      const r = await engine.hold({
        ...(b.id ? { id: b.id } : {}),
        account_id: b.account_id,
        amount: parseCredits(b.amount, "amount"),
        ...(b.ttl_seconds !== undefined ? { ttl_ms: b.ttl_seconds * 1000 } : {}),
        ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
        metadata: (b.metadata ?? {}) as Metadata,
      });
      reply.code(r.replay ? 200 : 201);
      return toApi({ ...r.hold, replay: r.replay });
    },
  );

  app.get(
    "/holds/:id",
    { schema: { tags: ["holds"], summary: "Show a hold", params: Type.Object({ id: Id }) } },
    async (req) => toApi(await engine.getHold(req.params.id)),
  );

  app.post(
    "/holds/:id/capture",
    {
      schema: {
        tags: ["holds"],
        summary: "Capture a hold with the final amount (less, equal or more than held)",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            amount: Credits,
            service: Type.String({ minLength: 1, maxLength: 64 }),
            usage_id: Type.Optional(Id),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const b = req.body;
      const r = await engine.capture({
        hold_id: req.params.id,
        amount: parseCredits(b.amount, "amount", { allowZero: true }),
        service: b.service,
        ...(b.usage_id ? { usage_id: b.usage_id } : {}),
        metadata: (b.metadata ?? {}) as Metadata,
      });
      return toApi({ hold: r.hold, usage: r.usage, replay: r.replay });
    },
  );

  app.post(
    "/holds/:id/release",
    {
      schema: {
        tags: ["holds"],
        summary: "Release a hold: its credits return",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => {
      const r = await engine.release(req.params.id);
      return toApi({ ...r.hold, replay: r.replay });
    },
  );

  app.get(
    "/usage/:id",
    { schema: { tags: ["usage"], summary: "Show a usage event", params: Type.Object({ id: Id }) } },
    async (req) => toApi(await engine.getUsage(req.params.id)),
  );

  app.post(
    "/usage/:id/refund",
    {
      schema: {
        tags: ["usage"],
        summary: "Refund a usage, fully or partly, to the grants it came from",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            id: Type.Optional(Id),
            amount: Type.Optional(Credits),
            reason: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const r = await engine.refund({
        usage_id: req.params.id,
        ...(b.id ? { id: b.id } : {}),
        ...(b.amount !== undefined ? { amount: parseCredits(b.amount, "amount") } : {}),
        ...(b.reason ? { reason: b.reason } : {}),
      });
      reply.code(r.replay ? 200 : 201);
      return toApi({ refund: r.refund, usage: r.usage, replay: r.replay });
    },
  );

  app.get(
    "/audit",
    {
      schema: { tags: ["audit"], summary: "Recompute everything from the journal and report discrepancies" },
    },
    async () => toApi(await engine.audit()),
  );
};
