import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TallyError } from "../../domain/errors.ts";
import type { Engine } from "../../ledger/engine.ts";
import type { Balance } from "../../ledger/types.ts";
import type { SessionEvent, SessionService } from "../../sessions/service.ts";
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

/**
 * A server-sent event stream of one account: `balance` at once and on every change (polled every
 * STREAM_POLL_MS, and at once after a session event of this process), and the session events
 * (`session.started`, `session.final_warning`, `session.ended`, `session.abandoned`).
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
  send("balance", toApi(last));
  let checking = false;
  const check = async () => {
    if (checking || res.writableEnded) return;
    checking = true;
    try {
      const b = await deps.engine.balance(accountId);
      if (balanceKey(b) !== balanceKey(last)) send("balance", toApi(b));
      last = b;
    } catch {
      /* the store is briefly unavailable: try again at the next tick */
    } finally {
      checking = false;
    }
  };
  const poll = setInterval(() => void check(), STREAM_POLL_MS);
  const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
  const unsubscribe = deps.sessions.onEvent((e: SessionEvent) => {
    if (e.account_id !== accountId) return;
    send(e.type, toApi(e.data));
    void check();
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
