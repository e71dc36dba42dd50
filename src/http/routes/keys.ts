import { Type, type FastifyPluginAsyncTypebox, type Static } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { TallyError } from "../../domain/errors.ts";
import type { AccountRecord } from "../../ledger/types.ts";
import type { ApiKeyRecord, CustomerUserRecord } from "../../store/auth-store.ts";
import { PASSWORD_MAX, PASSWORD_MIN, SCOPES, type CustomerAuth } from "../customer-auth.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import type { RouteDeps } from "./deps.ts";

/** What the credential route plugins are given. */
export interface CredentialRouteDeps extends RouteDeps {
  customerAuth: CustomerAuth;
}

export const ScopeSchema = Type.Union(
  SCOPES.map((s) => Type.Literal(s)),
  { description: "read: balances and history; usage: report usage; manage: keys and purchases" },
);

const Iso = Type.String({ format: "date-time" });
const IsoOrNull = Type.Union([Iso, Type.Null()]);

/** An API key as listed: never its secret. */
export const ApiKeySchema = Type.Object(
  {
    id: Type.String(),
    account_id: Type.String(),
    name: Type.String(),
    prefix: Type.String({ description: "the first characters of the secret, to tell keys apart" }),
    scopes: Type.Array(ScopeSchema),
    created_by: Type.Union([Type.String(), Type.Null()]),
    created_at: Iso,
    last_used_at: IsoOrNull,
    revoked_at: IsoOrNull,
  },
  { additionalProperties: false },
);

/** The answer to creating a key: the key and, this once, its secret. */
export const CreatedApiKeySchema = Type.Object(
  {
    ...ApiKeySchema.properties,
    secret: Type.String({ description: "the API key; shown once, store it now" }),
  },
  { additionalProperties: false },
);

export const ApiKeyPageSchema = Type.Object({
  data: Type.Array(ApiKeySchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

export const KeyCreateBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    scopes: Type.Optional(
      Type.Array(ScopeSchema, {
        minItems: 1,
        maxItems: SCOPES.length,
        uniqueItems: true,
        description: 'default ["read", "usage"]',
      }),
    ),
  },
  { additionalProperties: false },
);
export type KeyCreateInput = Static<typeof KeyCreateBody>;
export const DEFAULT_KEY_NAME = "default";
export const DEFAULT_KEY_SCOPES = ["read", "usage"] as const;

const UserSchema = Type.Object(
  { id: Type.String(), account_id: Type.String(), email: Type.String(), created_at: Iso },
  { additionalProperties: false },
);

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function keyToApi(k: ApiKeyRecord): Static<typeof ApiKeySchema> {
  return {
    id: k.id,
    account_id: k.account_id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    created_by: k.created_by,
    created_at: iso(k.created_at)!,
    last_used_at: iso(k.last_used_at),
    revoked_at: iso(k.revoked_at),
  };
}

function userToApi(u: CustomerUserRecord): Static<typeof UserSchema> {
  return { id: u.id, account_id: u.account_id, email: u.email, created_at: iso(u.created_at)! };
}

/** New credentials only for accounts that are not closed. */
export function requireNotClosed(a: AccountRecord): void {
  if (a.status === "closed")
    throw new TallyError("account_not_active", `account ${a.id} is closed`, {
      field: "account_id",
      status: a.status,
    });
}

/**
 * preValidation for POSTs whose body is optional: no body at all reads as `{}` (a schema marked optional
 * is still validated against `undefined` by Fastify, which refuses it with "body must be object").
 */
export async function emptyBodyIsObject(req: FastifyRequest): Promise<void> {
  if (req.body === undefined || req.body === null) req.body = {};
}

/** Secrets and tokens must not be kept by caches. */
export function noStore(reply: FastifyReply): void {
  void reply.header("cache-control", "no-store");
}

/**
 * Operator (under /v1, behind the operator key): an account's API keys and users.
 * POST /accounts/:id/keys, GET /accounts/:id/keys, POST /keys/:key_id/revoke,
 * POST /accounts/:id/users, GET /accounts/:id/users.
 */
export const operatorKeyRoutes: FastifyPluginAsyncTypebox<CredentialRouteDeps> = async (
  app,
  { engine, customerAuth },
) => {
  app.post(
    "/accounts/:id/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create a customer API key (the secret is in this answer only)",
        params: Type.Object({ id: Id }),
        body: KeyCreateBody,
        response: { 201: CreatedApiKeySchema },
      },
      preValidation: emptyBodyIsObject,
    },
    async (req, reply) => {
      const account = await engine.getAccount(req.params.id);
      requireNotClosed(account);
      const { key, secret } = await customerAuth.createKey(account.id, {
        name: req.body.name ?? DEFAULT_KEY_NAME,
        scopes: req.body.scopes ?? DEFAULT_KEY_SCOPES,
        created_by: "operator",
      });
      noStore(reply);
      reply.code(201);
      return { ...keyToApi(key), secret };
    },
  );

  app.get(
    "/accounts/:id/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "An account's API keys, revoked ones included (never their secrets)",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({ cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) }),
        response: { 200: ApiKeyPageSchema },
      },
    },
    async (req) => {
      await engine.getAccount(req.params.id);
      const page = await customerAuth.listKeys(req.params.id, req.query.cursor, req.query.limit ?? 100);
      return { data: page.data.map(keyToApi), next_cursor: page.next_cursor };
    },
  );

  app.post(
    "/keys/:key_id/revoke",
    {
      schema: {
        tags: ["keys"],
        summary: "Revoke an API key (at once; revoking again changes nothing)",
        params: Type.Object({ key_id: Id }),
        response: { 200: ApiKeySchema },
      },
    },
    async (req) => keyToApi(await customerAuth.revokeKey(req.params.key_id)),
  );

  app.post(
    "/accounts/:id/users",
    {
      schema: {
        tags: ["keys"],
        summary: "Create a customer user (email and password) who can obtain tokens",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            email: Type.String({ format: "email", minLength: 3, maxLength: 254 }),
            password: Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX }),
          },
          { additionalProperties: false },
        ),
        response: { 201: UserSchema },
      },
    },
    async (req, reply) => {
      const account = await engine.getAccount(req.params.id);
      requireNotClosed(account);
      const user = await customerAuth.createUser(account.id, req.body.email, req.body.password);
      reply.code(201);
      return userToApi(user);
    },
  );

  app.get(
    "/accounts/:id/users",
    {
      schema: {
        tags: ["keys"],
        summary: "An account's customer users",
        params: Type.Object({ id: Id }),
        response: { 200: Type.Object({ data: Type.Array(UserSchema) }) },
      },
    },
    async (req) => {
      await engine.getAccount(req.params.id);
      return { data: (await customerAuth.listUsers(req.params.id)).map(userToApi) };
    },
  );
};
