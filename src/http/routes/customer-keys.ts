import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { PASSWORD_MAX, customerRoute, principalOf, requireScope } from "../customer-auth.ts";
import { Cursor, Id, Limit } from "../schemas.ts";
import {
  ApiKeyPageSchema,
  ApiKeySchema,
  CreatedApiKeySchema,
  DEFAULT_KEY_NAME,
  DEFAULT_KEY_SCOPES,
  emptyBodyIsObject,
  KeyCreateBody,
  keyToApi,
  noStore,
  requireNotClosed,
  type CredentialRouteDeps,
} from "./keys.ts";

const TokenSchema = Type.Object(
  {
    access_token: Type.String(),
    token_type: Type.Literal("bearer"),
    expires_in: Type.Integer({ description: "seconds until the token expires" }),
  },
  { additionalProperties: false },
);

/**
 * Customer (under /api/v1): `POST /auth/token` (no credential; email + password → JWT), and the caller's
 * own API keys: `GET /keys` (scope read), `POST /keys` (manage), `POST /keys/:key_id/revoke` (manage).
 * Each key route authenticates itself (CustomerAuth.hook(), a no-op when an enclosing scope already did).
 * A key of another account is answered 404 exactly like a key that does not exist.
 */
export const customerKeyRoutes: FastifyPluginAsyncTypebox<CredentialRouteDeps> = async (
  app,
  { engine, customerAuth },
) => {
  app.post(
    "/auth/token",
    {
      schema: {
        tags: ["auth"],
        summary: "Exchange a user's email and password for a bearer token (JWT)",
        body: Type.Object(
          {
            email: Type.String({ minLength: 1, maxLength: 254 }),
            password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX }),
          },
          { additionalProperties: false },
        ),
        response: { 200: TokenSchema },
      },
    },
    async (req, reply) => {
      const token = await customerAuth.issueToken(req.body.email, req.body.password);
      noStore(reply);
      return token;
    },
  );

  app.get(
    "/keys",
    {
      ...customerRoute(customerAuth, "read"),
      schema: {
        tags: ["keys"],
        summary: "Your account's API keys (never their secrets)",
        querystring: Type.Object({ cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) }),
        response: { 200: ApiKeyPageSchema },
      },
    },
    async (req) => {
      const me = principalOf(req);
      const page = await customerAuth.listKeys(me.account_id, req.query.cursor, req.query.limit ?? 100);
      return { data: page.data.map(keyToApi), next_cursor: page.next_cursor };
    },
  );

  app.post(
    "/keys",
    {
      ...customerRoute(customerAuth, "manage"),
      schema: {
        tags: ["keys"],
        summary: "Create an API key for your account (the secret is in this answer only)",
        body: KeyCreateBody,
        response: { 201: CreatedApiKeySchema },
      },
      preValidation: emptyBodyIsObject,
    },
    async (req, reply) => {
      const me = principalOf(req);
      const scopes = req.body.scopes ?? DEFAULT_KEY_SCOPES;
      // No credential makes a key stronger than itself.
      for (const s of scopes) requireScope(me, s);
      requireNotClosed(await engine.getAccount(me.account_id));
      const { key, secret } = await customerAuth.createKey(me.account_id, {
        name: req.body.name ?? DEFAULT_KEY_NAME,
        scopes,
        created_by: me.credential === "api_key" ? `key:${me.key_id}` : `user:${me.user_id ?? "unknown"}`,
      });
      noStore(reply);
      reply.code(201);
      return { ...keyToApi(key), secret };
    },
  );

  app.post(
    "/keys/:key_id/revoke",
    {
      ...customerRoute(customerAuth, "manage"),
      schema: {
        tags: ["keys"],
        summary: "Revoke one of your account's API keys",
        params: Type.Object({ key_id: Id }),
        response: { 200: ApiKeySchema },
      },
    },
    async (req) => keyToApi(await customerAuth.revokeKey(req.params.key_id, principalOf(req).account_id)),
  );
};
