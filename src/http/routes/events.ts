import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { TallyError } from "../../domain/errors.ts";
import type { Engine } from "../../ledger/engine.ts";
import { decodeSeqCursor, encodeCursor } from "../../store/types.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import { toApi } from "../serialize.ts";
import type { EventRecord } from "../../events/types.ts";

export function eventToApi(e: EventRecord): Record<string, unknown> {
  return {
    id: e.id,
    seq: e.seq,
    type: e.type,
    account_id: e.account_id,
    created_at: new Date(e.created_at).toISOString(),
    data: toApi(e.data),
  };
}

export function parseTypes(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const types = text.split(",").filter(Boolean);
  if (types.length > 50 || types.some((t) => !/^[a-z][a-z0-9_.]{0,63}$/.test(t)))
    throw TallyError.validation("type", "must be a comma-separated list of event types");
  return types;
}

export async function eventPage(
  engine: Engine,
  q: { cursor?: string; account_id?: string; type?: string; limit?: number },
) {
  const after = decodeSeqCursor(q.cursor);
  const limit = q.limit ?? 100;
  const events = await engine.listEvents({
    after_seq: after === null ? 0 : Number(after),
    account_id: q.account_id,
    types: parseTypes(q.type),
    limit,
  });
  return {
    data: events.map(eventToApi),
    // Always a cursor: the outbox grows, so the last page today is not the last page tomorrow.
    next_cursor: encodeCursor(events.length ? events[events.length - 1]!.seq : (after ?? "0")),
    has_more: events.length === limit,
  };
}

const EventQuery = Type.Object({
  cursor: Type.Optional(Cursor),
  account_id: Type.Optional(Id),
  type: Type.Optional(Type.String({ maxLength: 2048, description: "comma-separated event types" })),
  limit: Type.Optional(Limit),
});

/** Operator: the events outbox, in commit order, by cursor (`next_cursor` keeps working as events arrive). */
export const eventRoutes: FastifyPluginAsyncTypebox<{ engine: Engine }> = async (app, { engine }) => {
  app.get(
    "/events",
    {
      schema: {
        tags: ["events"],
        summary: "Events in commit order (cursor pagination)",
        querystring: EventQuery,
      },
    },
    async (req) => eventPage(engine, req.query),
  );
};
