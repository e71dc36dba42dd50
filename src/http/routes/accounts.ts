import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { parseCredits } from "../../domain/amount.ts";
import { GRANT_KINDS, type Metadata } from "../../ledger/types.ts";
import { toApi } from "../serialize.ts";
import { Credits, Cursor, Id, Limit, Metadata as MetadataSchema, Time, parseTime } from "../schemas.ts";
import type { RouteDeps } from "./deps.ts";
import { emptyBodyIsObject } from "./keys.ts";
import { applySignupGrant } from "../../billing/signup.ts";

/** Operator: accounts, their grants, balance and history. */
export const accountRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  app.post(
    "/accounts",
    {
      schema: {
        tags: ["accounts"],
        summary: "Create an account",
        body: Type.Object(
          {
            id: Type.Optional(Id),
            overage_policy: Type.Optional(Type.Union([Type.Literal("block"), Type.Literal("allow")])),
            overage_limit: Type.Optional(Type.Union([Credits, Type.Null()])),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const r = await engine.createAccount({
        ...(b.id ? { id: b.id } : {}),
        ...(b.overage_policy ? { overage_policy: b.overage_policy } : {}),
        overage_limit:
          b.overage_limit == null
            ? null
            : parseCredits(b.overage_limit, "overage_limit", { allowZero: true }),
        metadata: (b.metadata ?? {}) as Metadata,
      });
      // The signup grant (if the operator set one): derived id, so a retried create never grants twice.
      await applySignupGrant(engine, r.account);
      reply.code(r.replay ? 200 : 201);
      return toApi({ ...r.account, replay: r.replay });
    },
  );

  app.get(
    "/accounts",
    {
      schema: {
        tags: ["accounts"],
        summary: "List accounts",
        querystring: Type.Object({ cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) }),
      },
    },
    async (req) => toApi(await engine.listAccounts({ cursor: req.query.cursor, limit: req.query.limit })),
  );

  app.get(
    "/accounts/:id",
    {
      schema: {
        tags: ["accounts"],
        summary: "Show an account with its balance",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => {
      const account = await engine.getAccount(req.params.id);
      return toApi({ ...account, balance: await engine.balance(account.id) });
    },
  );

  for (const [action, summary] of [
    ["suspend", "Suspend an account: no usage or holds until reactivated"],
    ["reactivate", "Reactivate a suspended account"],
    ["close", "Close an account for good: no more grants, usage or holds; history stays"],
  ] as const) {
    app.post(
      `/accounts/:id/${action}`,
      {
        preValidation: emptyBodyIsObject,
        schema: { tags: ["accounts"], summary, params: Type.Object({ id: Id }) },
      },
      async (req) => {
        const id = req.params.id;
        const r =
          action === "suspend"
            ? await engine.suspendAccount(id)
            : action === "reactivate"
              ? await engine.reactivateAccount(id)
              : await engine.closeAccount(id);
        return toApi({ ...r.account, replay: r.replay });
      },
    );
  }

  app.get(
    "/accounts/:id/balance",
    {
      schema: {
        tags: ["accounts"],
        summary: "Balance now, or at any instant (recomputed from the journal)",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({ at: Type.Optional(Time) }),
      },
    },
    async (req) => toApi(await engine.balance(req.params.id, parseTime(req.query.at, "at"))),
  );

  app.post(
    "/accounts/:id/grants",
    {
      schema: {
        tags: ["grants"],
        summary: "Grant credits to an account",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            id: Type.Optional(Id),
            kind: Type.Union(GRANT_KINDS.map((k) => Type.Literal(k))),
            amount: Credits,
            priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
            effective_at: Type.Optional(Time),
            expires_at: Type.Optional(Type.Union([Time, Type.Null()])),
            reference: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const expiresAt = b.expires_at === null ? null : parseTime(b.expires_at, "expires_at");
      const effectiveAt = parseTime(b.effective_at, "effective_at");
      const r = await engine.grant({
        ...(b.id ? { id: b.id } : {}),
        account_id: req.params.id,
        kind: b.kind,
        amount: parseCredits(b.amount, "amount"),
        ...(b.priority !== undefined ? { priority: b.priority } : {}),
        ...(effectiveAt !== undefined ? { effective_at: effectiveAt } : {}),
        ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
        ...(b.reference ? { reference: b.reference } : {}),
        metadata: (b.metadata ?? {}) as Metadata,
        source: "operator",
      });
      reply.code(r.replay ? 200 : 201);
      return toApi({ ...r.grant, replay: r.replay });
    },
  );

  app.get(
    "/accounts/:id/grants",
    { schema: { tags: ["grants"], summary: "An account's grants", params: Type.Object({ id: Id }) } },
    async (req) => {
      await engine.getAccount(req.params.id);
      return toApi({ data: await engine.listGrants(req.params.id) });
    },
  );

  app.post(
    "/grants/:id/void",
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ["grants"],
        summary: "Void a grant: what remains is written off",
        params: Type.Object({ id: Id }),
        body: Type.Optional(
          Type.Object(
            { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })) },
            { additionalProperties: false },
          ),
        ),
      },
    },
    async (req) => {
      const r = await engine.voidGrant(req.params.id, req.body?.reason);
      return toApi({ ...r.grant, replay: r.replay });
    },
  );

  app.get(
    "/accounts/:id/usage",
    {
      schema: {
        tags: ["usage"],
        summary: "Usage history, newest first",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({
          service: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          from: Type.Optional(Time),
          to: Type.Optional(Time),
          credit_source: Type.Optional(
            Type.Union([...GRANT_KINDS.map((k) => Type.Literal(k)), Type.Literal("overage")]),
          ),
          cursor: Type.Optional(Cursor),
          limit: Type.Optional(Limit),
        }),
      },
    },
    async (req) => {
      await engine.getAccount(req.params.id);
      const q = req.query;
      const from = parseTime(q.from, "from");
      const to = parseTime(q.to, "to");
      return toApi(
        await engine.listUsages({
          account_id: req.params.id,
          ...(q.service ? { service: q.service } : {}),
          ...(from !== undefined ? { from } : {}),
          ...(to !== undefined ? { to } : {}),
          ...(q.credit_source ? { credit_source: q.credit_source } : {}),
          ...(q.cursor ? { cursor: q.cursor } : {}),
          ...(q.limit ? { limit: q.limit } : {}),
        }),
      );
    },
  );

  app.get(
    "/accounts/:id/entries",
    {
      schema: {
        tags: ["usage"],
        summary: "Journal entries of an account, newest first",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({ cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) }),
      },
    },
    async (req) => {
      await engine.getAccount(req.params.id);
      return toApi(
        await engine.listEntries({
          account_id: req.params.id,
          cursor: req.query.cursor,
          limit: req.query.limit,
        }),
      );
    },
  );
};
