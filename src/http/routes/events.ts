import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { TallyError } from "../../domain/errors.ts";
import type { Engine } from "../../ledger/engine.ts";
import { decodeSeqCursor, encodeCursor } from "../../store/types.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import { toApi } from "../serialize.ts";
import { sqlFor } from "../../events/sql.ts";
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

/** Open live streams in this process (each holds a connection and a listener). */
let openStreams = 0;
export const MAX_STREAMS = 200;
const HEARTBEAT_MS = 15_000;
const POLL_MS = 2_000;
const MAX_STREAM_MS = 3_600_000;

/**
 * Operator: `GET /events/stream` — the outbox as server-sent events (`id:` = the cursor, `event:` = the
 * type), from `cursor` (or the Last-Event-ID header) onward. New events are read right after this process's
 * commits and every 2 s (commits of other processes).
 */
export const eventStreamRoutes: FastifyPluginAsyncTypebox<{ engine: Engine }> = async (app, { engine }) => {
  app.get(
    "/events/stream",
    {
      schema: {
        // Not in the OpenAPI document: a stream is no request/response operation (docs/events.md has it).
        hide: true,
        tags: ["events"],
        summary: "Live events as server-sent events (text/event-stream)",
        querystring: Type.Object({
          cursor: Type.Optional(Cursor),
          account_id: Type.Optional(Id),
          type: Type.Optional(Type.String({ maxLength: 2048 })),
        }),
      },
    },
    async (req, reply) => {
      const lastEventId = req.headers["last-event-id"];
      const cursor = req.query.cursor ?? (typeof lastEventId === "string" ? lastEventId : undefined);
      const after = decodeSeqCursor(cursor);
      const types = parseTypes(req.query.type);
      if (openStreams >= MAX_STREAMS)
        throw new TallyError("rate_limited", `at most ${MAX_STREAMS} live streams at once`, {
          retry_after_s: 5,
        });
      // No cursor: start from now (the newest event), not from the beginning of time.
      let seq =
        after !== null
          ? Number(after)
          : Number((await sqlFor(engine.store).one("SELECT MAX(seq) AS s FROM events"))?.s ?? 0);
      openStreams++;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
        "x-request-id": req.id,
      });
      res.write(`: tally events from ${encodeCursor(seq)}\n\n`);
      let busy = false;
      let again = false;
      let closed = false;
      const pump = async () => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            const events = await engine.listEvents({
              after_seq: seq,
              account_id: req.query.account_id,
              types,
              limit: 500,
            });
            for (const e of events) {
              if (closed) return;
              seq = e.seq;
              res.write(
                `id: ${encodeCursor(e.seq)}\nevent: ${e.type}\ndata: ${JSON.stringify(eventToApi(e))}\n\n`,
              );
            }
            if (events.length === 500) again = true;
          } while (again && !closed);
        } catch {
          // The next commit or poll tries again.
        } finally {
          busy = false;
        }
      };
      const off = engine.onCommit(() => void pump());
      const poll = setInterval(() => void pump(), POLL_MS);
      const beat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
      // Streams end after an hour; clients reconnect with Last-Event-ID and miss nothing.
      const limit = setTimeout(() => res.end(), MAX_STREAM_MS);
      const close = () => {
        if (closed) return;
        closed = true;
        openStreams--;
        off();
        clearInterval(poll);
        clearInterval(beat);
        clearTimeout(limit);
      };
      req.raw.on("close", close);
      res.on("close", close);
      void pump();
    },
  );
};
