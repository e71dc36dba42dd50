import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TallyError } from "../../domain/errors.ts";
import type { Engine } from "../../ledger/engine.ts";
import type { Balance } from "../../ledger/types.ts";
import type { CommitInfo } from "../../events/types.ts";
import type { SessionService } from "../../sessions/service.ts";
import { customerRoute, principalOf, type CustomerAuth } from "../customer-auth.ts";
import { Id } from "../schemas.ts";
import { toApi } from "../serialize.ts";

/** How often a stream re-reads the balance: changes made by any process reach it within this. */
export const STREAM_POLL_MS = 500;
const HEARTBEAT_MS = 15_000;
/** A stream closes after this; clients reconnect (EventSource does so by itself). */
const MAX_STREAM_MS = 3600_000;
/** Open streams per process (each polls the balance). */
const MAX_STREAMS = 2000;

let open = 0;

export interface StreamDeps {
  engine: Engine;
  sessions: SessionService;
}

function balanceKey(b: Balance): string {
  return `${b.available}|${b.held}|${b.total}|${b.overage}|${b.scheduled}`;
}

/** The event types the streams forward (besides `balance`). */
const STREAMED_TYPES = ["session.started", "session.final_warning", "session.ended", "session.abandoned"];
const TAIL_PAGE = 1000;
const MAX_TAIL_PAGES = 100;
/** Event ids already sent, remembered to skip them when the poll sees them again. */
const SENT_MEMORY = 1000;

/** The account's last event position now (the stream forwards only what comes after it). */
async function tailSeq(engine: Engine, accountId: string): Promise<number> {
  let after = 0;
  for (let i = 0; i < MAX_TAIL_PAGES; i++) {
    const page = await engine.listEvents({ account_id: accountId, after_seq: after, limit: TAIL_PAGE });
    if (page.length > 0) after = page[page.length - 1]!.seq;
    if (page.length < TAIL_PAGE) break;
  }
  return after;
}

/**
 * A server-sent event stream of one account: `balance` at once and on every change, and the session
 * events. Changes committed by this process arrive through engine.onCommit at once; changes by other
 * processes through a poll of the balance and of the outbox every STREAM_POLL_MS.
 */
async function stream(
  req: FastifyRequest,
  reply: FastifyReply,
  accountId: string,
  deps: StreamDeps,
  enders: Set<() => void>,
): Promise<void> {
  if (open >= MAX_STREAMS)
    throw new TallyError("rate_limited", "too many open streams on this server; retry later", {});
  let last = await deps.engine.balance(accountId); // 404 for an unknown account, before the stream opens
  let afterSeq = await tailSeq(deps.engine, accountId);
  reply.hijack();
  open++;
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "x-request-id": req.id,
  });
  let seq = 0;
  const send = (event: string, data: unknown) => {
    if (res.writableEnded) return;
    res.write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const sent = new Set<string>();
  const sendEvent = (e: { id: string; type: string; data: unknown; created_at: number }) => {
    if (sent.has(e.id) || !STREAMED_TYPES.includes(e.type)) return;
    sent.add(e.id);
    if (sent.size > SENT_MEMORY) sent.delete(sent.values().next().value!);
    send(e.type, { event_id: e.id, created_at: new Date(e.created_at).toISOString(), ...(e.data as object) });
  };
  send("balance", toApi(last));

  let checking = false;
  let again = false;
  const check = async (withEvents: boolean) => {
    if (res.writableEnded) return;
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    try {
      do {
        again = false;
        if (withEvents) {
          const page = await deps.engine.listEvents({
            account_id: accountId,
            after_seq: afterSeq,
            limit: 100,
          });
          for (const e of page) sendEvent(e);
          if (page.length > 0) afterSeq = page[page.length - 1]!.seq;
        }
        const b = await deps.engine.balance(accountId);
        if (balanceKey(b) !== balanceKey(last)) send("balance", toApi(b));
        last = b;
      } while (again);
    } catch {
      /* the store is briefly unavailable: try again at the next tick */
    } finally {
      checking = false;
    }
  };
  const poll = setInterval(() => void check(true), STREAM_POLL_MS);
  const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
  const unsubscribe = deps.engine.onCommit((c: CommitInfo) => {
    if (!c.account_ids.includes(accountId) && !c.events.some((e) => e.account_id === accountId)) return;
    for (const e of c.events) if (e.account_id === accountId) sendEvent(e);
    void check(false);
  });
  const lifetime = setTimeout(() => res.end(), MAX_STREAM_MS);
  const ender = () => res.end();
  enders.add(ender);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    open--;
    enders.delete(ender);
    clearInterval(poll);
    clearInterval(heartbeat);
    clearTimeout(lifetime);
    unsubscribe();
  };
  req.raw.on("close", close);
  res.on("close", close);
}

/** Open streams end when the server closes (preClose), so it need not wait for the clients. */
function endOnClose(app: FastifyInstance): Set<() => void> {
  const enders = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const end of [...enders]) end();
  });
  return enders;
}

/** Operator: GET /v1/accounts/:id/stream. */
export const operatorStreamRoutes: FastifyPluginAsyncTypebox<StreamDeps> = async (app, deps) => {
  const enders = endOnClose(app);
  app.get(
    "/accounts/:id/stream",
    {
      schema: {
        tags: ["sessions"],
        summary: "Live balance and session events of an account (server-sent events)",
        params: Type.Object({ id: Id }),
      },
    },
    async (req, reply) => stream(req, reply, req.params.id, deps, enders),
  );
};

/** Customer: GET /api/v1/credits/stream, the caller's own account. */
export const customerStreamRoutes: FastifyPluginAsyncTypebox<
  StreamDeps & { customerAuth: CustomerAuth }
> = async (app, deps) => {
  const enders = endOnClose(app);
  app.get(
    "/credits/stream",
    {
      ...customerRoute(deps.customerAuth, "read"),
      schema: {
        tags: ["credits"],
        summary: "Live balance and session events of your account (server-sent events)",
      },
    },
    async (req, reply) => stream(req, reply, principalOf(req).account_id, deps, enders),
  );
};
