import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { SESSION_LIMITS as L } from "../../domain/sessions.ts";
import type { Metadata } from "../../ledger/types.ts";
import type { EndView, GrantView, SessionService } from "../../sessions/service.ts";
import type { SessionRecord } from "../../sessions/types.ts";
import { Cursor, Id, Limit, Metadata as MetadataSchema, Time, parseTime } from "../schemas.ts";
import { toApi } from "../serialize.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** Live sessions (set by buildApp): the server's sweep timer settles abandoned ones through it. */
    sessions: SessionService;
  }
}

export interface SessionRouteDeps {
  sessions: SessionService;
}

const Seconds = (max: number, description: string) => Type.Integer({ minimum: 0, maximum: max, description });

/** A session as the API shows it: times ISO 8601, amounts in credits. */
export function sessionJson(s: SessionRecord, extra: Record<string, unknown> = {}): unknown {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return toApi({
    id: s.id,
    account_id: s.account_id,
    service: s.service,
    direction: s.direction,
    status: s.status,
    hold_id: s.hold_id,
    rate_card_version: s.rate_version,
    metadata: s.metadata,
    answered_at: s.answered_at,
    holds: s.holds.map((h) => ({ started_at: iso(h.start), ended_at: iso(h.end) })),
    used_seconds: s.used_seconds,
    authorized_seconds: s.authorized_seconds,
    final: s.final,
    grant_seconds: s.grant_seconds,
    validity_seconds: s.validity_seconds,
    debit_interval_seconds: s.debit_interval_seconds,
    valid_until: iso(s.valid_until),
    committed_seconds: s.committed_seconds,
    committed_amount: s.committed_amount,
    billable_seconds: s.billable_seconds,
    charged_seconds: s.charged_seconds,
    charged_amount: s.charged_amount,
    created_at: s.created_at,
    updated_at: s.updated_at,
    ended_at: s.ended_at,
    ...extra,
  });
}

function grantJson(v: GrantView): unknown {
  return sessionJson(v.session, {
    granted_seconds: v.granted_seconds,
    seconds_left: v.granted_seconds,
    max_seconds: v.max_seconds,
    held_amount: v.held_amount,
  });
}

function endJson(v: EndView): unknown {
  return sessionJson(v.session, { replay: v.replay });
}

const time = (v: string | undefined, field: string) => parseTime(v, field);

/** Operator: live sessions (voice calls): start, update, end, read, list; per-account concurrency limit. */
export const sessionRoutes: FastifyPluginAsyncTypebox<SessionRouteDeps> = async (app, { sessions }) => {
  app.post(
    "/sessions",
    {
      schema: {
        tags: ["sessions"],
        summary: "Start a live session: hold the first grant",
        body: Type.Object(
          {
            account_id: Id,
            service: Type.String({ minLength: 1, maxLength: 64 }),
            direction: Type.Optional(Type.Union([Type.Literal("inbound"), Type.Literal("outbound")])),
            metadata: Type.Optional(MetadataSchema),
            grant_seconds: Type.Optional(
              Type.Integer({ minimum: L.MIN_GRANT_SECONDS, maximum: L.MAX_GRANT_SECONDS }),
            ),
            validity_seconds: Type.Optional(
              Type.Integer({ minimum: L.MIN_VALIDITY_SECONDS, maximum: L.MAX_VALIDITY_SECONDS }),
            ),
            debit_interval_seconds: Type.Optional(
              Type.Integer({ minimum: L.MIN_DEBIT_INTERVAL_SECONDS, maximum: L.MAX_DEBIT_INTERVAL_SECONDS }),
            ),
            answered_at: Type.Optional(Time),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const answered = time(b.answered_at, "answered_at");
      const v = await sessions.start({
        account_id: b.account_id,
        service: b.service,
        ...(b.direction ? { direction: b.direction } : {}),
        metadata: (b.metadata ?? {}) as Metadata,
        ...(b.grant_seconds !== undefined ? { grant_seconds: b.grant_seconds } : {}),
        ...(b.validity_seconds !== undefined ? { validity_seconds: b.validity_seconds } : {}),
        ...(b.debit_interval_seconds !== undefined
          ? { debit_interval_seconds: b.debit_interval_seconds }
          : {}),
        ...(answered !== undefined ? { answered_at: answered } : {}),
      });
      reply.code(201);
      return grantJson(v);
    },
  );

  app.post(
    "/sessions/:id/update",
    {
      schema: {
        tags: ["sessions"],
        summary: "Report usage so far; extends the grant (final: true when no further grant is covered)",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            answered_at: Type.Optional(Time),
            hold_started_at: Type.Optional(Time),
            hold_ended_at: Type.Optional(Time),
            billable_seconds: Type.Optional(Seconds(L.MAX_SESSION_SECONDS, "billable seconds so far")),
            grant_seconds: Type.Optional(
              Type.Integer({ minimum: L.MIN_GRANT_SECONDS, maximum: L.MAX_GRANT_SECONDS }),
            ),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const b = req.body;
      const answered = time(b.answered_at, "answered_at");
      const holdStart = time(b.hold_started_at, "hold_started_at");
      const holdEnd = time(b.hold_ended_at, "hold_ended_at");
      const v = await sessions.update(req.params.id, {
        ...(answered !== undefined ? { answered_at: answered } : {}),
        ...(holdStart !== undefined ? { hold_started_at: holdStart } : {}),
        ...(holdEnd !== undefined ? { hold_ended_at: holdEnd } : {}),
        ...(b.billable_seconds !== undefined ? { billable_seconds: b.billable_seconds } : {}),
        ...(b.grant_seconds !== undefined ? { grant_seconds: b.grant_seconds } : {}),
      });
      return grantJson(v);
    },
  );

  app.post(
    "/sessions/:id/end",
    {
      schema: {
        tags: ["sessions"],
        summary: "End a session: capture the exact price of the whole call, release the rest (idempotent)",
        params: Type.Object({ id: Id }),
        body: Type.Optional(
          Type.Object(
            {
              answered_at: Type.Optional(Time),
              ended_at: Type.Optional(Time),
              holds: Type.Optional(
                Type.Array(
                  Type.Object(
                    { started_at: Time, ended_at: Type.Optional(Time) },
                    { additionalProperties: false },
                  ),
                  { maxItems: L.MAX_HOLD_INTERVALS },
                ),
              ),
              billable_seconds: Type.Optional(Seconds(L.MAX_SESSION_SECONDS, "billable seconds of the call")),
            },
            { additionalProperties: false },
          ),
        ),
      },
    },
    async (req) => {
      const b = req.body ?? {};
      const answered = time(b.answered_at, "answered_at");
      const ended = time(b.ended_at, "ended_at");
      const holds = b.holds?.map((h, i) => ({
        start: time(h.started_at, `holds[${i}].started_at`)!,
        end: time(h.ended_at, `holds[${i}].ended_at`) ?? null,
      }));
      const v = await sessions.end(req.params.id, {
        ...(answered !== undefined ? { answered_at: answered } : {}),
        ...(ended !== undefined ? { ended_at: ended } : {}),
        ...(holds ? { holds } : {}),
        ...(b.billable_seconds !== undefined ? { billable_seconds: b.billable_seconds } : {}),
      });
      return endJson(v);
    },
  );

  app.get(
    "/sessions/:id",
    { schema: { tags: ["sessions"], summary: "Show a session", params: Type.Object({ id: Id }) } },
    async (req) => sessionJson(await sessions.read(req.params.id)),
  );

  app.get(
    "/accounts/:id/sessions",
    {
      schema: {
        tags: ["sessions"],
        summary: "An account's sessions, oldest first",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({
          status: Type.Optional(
            Type.Union([Type.Literal("active"), Type.Literal("ended"), Type.Literal("abandoned")]),
          ),
          cursor: Type.Optional(Cursor),
          limit: Type.Optional(Limit),
        }),
      },
    },
    async (req) => {
      await sessions.engine.getAccount(req.params.id);
      const page = await sessions.store.list({
        account_id: req.params.id,
        ...(req.query.status ? { status: req.query.status } : {}),
        ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        limit: req.query.limit ?? 100,
      });
      return { data: page.data.map((s) => sessionJson(s)), next_cursor: page.next_cursor };
    },
  );

  app.get(
    "/accounts/:id/session-limit",
    {
      schema: {
        tags: ["sessions"],
        summary: "The account's limit on concurrent sessions (null: none)",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => {
      await sessions.engine.getAccount(req.params.id);
      return {
        account_id: req.params.id,
        max_concurrent: await sessions.concurrencyLimit(req.params.id),
        active: await sessions.store.countActive(req.params.id),
      };
    },
  );

  app.put(
    "/accounts/:id/session-limit",
    {
      schema: {
        tags: ["sessions"],
        summary: "Set or remove (null) the account's limit on concurrent sessions",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            max_concurrent: Type.Union([
              Type.Integer({ minimum: 1, maximum: L.MAX_CONCURRENT_LIMIT }),
              Type.Null(),
            ]),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      await sessions.setConcurrencyLimit(req.params.id, req.body.max_concurrent);
      return { account_id: req.params.id, max_concurrent: req.body.max_concurrent };
    },
  );
};
