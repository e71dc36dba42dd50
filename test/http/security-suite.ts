/**
 * The shared security suite for customer routes (`/api/v1/...`). Every customer route file calls
 * `assertCustomerRouteSecurity` for each of its routes: a route that answers anything but the documented
 * 401/403/404 to a missing, wrong, revoked, expired, forged or foreign credential fails here.
 *
 *   await assertCustomerRouteSecurity(t.base, { method: "GET", path: "/api/v1/credits", scope: "read",
 *     foreign: "own_data", markers: [accountId] }, creds, { snapshot: () => balanceOf(accountId) });
 *
 * Outcomes:
 * - no Authorization header, a non-Bearer scheme, an empty or garbage token, an unknown `tly_live_` key, a
 *   key with one character changed, a revoked key, an expired token, a token whose payload was altered, a
 *   token signed with another secret, an unsigned (`alg: none`) token, the operator key → 401 `unauthorized`;
 * - a credential of this account without the route's scope → 403 `forbidden`;
 * - a valid credential of another account → 404 `not_found` when the route names a resource of this
 *   account (`foreign: "not_found"`: a customer cannot tell another account's resource from a missing one),
 *   or a 2xx answered from the other account's own data, containing none of this account's `markers`
 *   (`foreign: "own_data"`, for routes that name nothing: `GET /api/v1/keys`, `GET /api/v1/credits`, …);
 * - every refusal has the one error shape with the request id of its response;
 * - nothing observable through `snapshot` changes while the refused attempts run.
 */
import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { expect } from "vitest";

export type SecurityScope = "read" | "usage" | "manage";

export interface SecurityRoute {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** The path, with the ids of this account's resources filled in. */
  path: string;
  /** A body that the route would accept from the right credential. */
  body?: unknown;
  /** The scope the route needs; `creds.lacking` must be refused with 403. */
  scope?: SecurityScope;
  /** How a valid credential of another account is answered (see the file comment). */
  foreign: "not_found" | "own_data";
  /** Strings identifying this account's data (account id, resource ids); never in an answer to another account. */
  markers?: string[];
}

export interface SecurityCredentials {
  /** A valid credential of this account with the route's scope. */
  own: string;
  /** A valid credential of another account, with every scope. */
  other: string;
  /** A revoked API key of this account. */
  revoked: string;
  /** An expired token of this account. */
  expired: string;
  /** A valid JWT of this account, to forge variants of (default: `own` when it is a JWT). */
  token?: string;
  /** A valid credential of this account without the route's scope. */
  lacking?: string;
  /** The operator key: it is not a customer credential. */
  operator?: string;
}

export interface SecurityOptions {
  /** Read before and after the refused attempts; the two must be deeply equal (balances, key lists, …). */
  snapshot?: () => Promise<unknown>;
  /** When set, the route is finally called with `creds.own` and must answer this status. */
  ownStatus?: number;
}

export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
  headers: Headers;
}

/** One request with an optional raw Authorization header value. */
export async function send(
  base: string,
  method: string,
  path: string,
  body: unknown,
  authorization: string | undefined,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, {
    method,
    headers,
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/** Variants of a valid JWT that must all be refused: altered payload, foreign signature, `alg: none`. */
export async function forgedTokens(token: string): Promise<Record<string, string>> {
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
  const altered = Buffer.from(
    JSON.stringify({ ...claims, acct: `${String(claims.acct)}x`, scope: "read usage manage" }),
  ).toString("base64url");
  const later = Buffer.from(JSON.stringify({ ...claims, exp: Number(claims.exp) + 86_400 })).toString(
    "base64url",
  );
  const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
  const flipped = signature.slice(0, -2) + (signature.endsWith("AA") ? "BB" : "AA");
  const foreign = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(randomBytes(32));
  return {
    "token with an altered account": `${header}.${altered}.${signature}`,
    "token with an extended expiry": `${header}.${later}.${signature}`,
    "token with a changed signature": `${header}.${payload}.${flipped}`,
    "token signed with another secret": foreign,
    "unsigned token (alg none)": `${none}.${payload}.`,
    "token without its signature": `${header}.${payload}`,
  };
}

function changedKey(key: string): string {
  const last = key[key.length - 1];
  return key.slice(0, -1) + (last === "A" ? "B" : "A");
}

function expectError(r: Answer, status: number, code: string, what: string): void {
  expect(r.status, `${what}: status (${r.text.slice(0, 200)})`).toBe(status);
  expect(r.body?.error?.code, `${what}: error code`).toBe(code);
  expect(typeof r.body.error.message, `${what}: message`).toBe("string");
  expect(r.body.error.request_id, `${what}: request id`).toBe(r.headers.get("x-request-id"));
}

export async function assertCustomerRouteSecurity(
  base: string,
  route: SecurityRoute,
  creds: SecurityCredentials,
  opts: SecurityOptions = {},
): Promise<void> {
  const label = `${route.method} ${route.path}`;
  const call = (authorization: string | undefined) =>
    send(base, route.method, route.path, route.body, authorization);
  const before = opts.snapshot ? await opts.snapshot() : undefined;

  const unauthorized: Record<string, string | undefined> = {
    "no Authorization header": undefined,
    "empty Authorization header": "",
    "Basic scheme": `Basic ${Buffer.from("user:password").toString("base64")}`,
    "Bearer without a token": "Bearer ",
    "garbage token": "Bearer not-a-credential",
    "unknown API key": `Bearer tly_live_${randomBytes(24).toString("base64url")}`,
    "malformed API key": "Bearer tly_live_short",
    "revoked API key": `Bearer ${creds.revoked}`,
    "expired token": `Bearer ${creds.expired}`,
    "two credentials": `Bearer ${creds.own} ${creds.own}`,
  };
  if (creds.own.startsWith("tly_live_"))
    unauthorized["API key with one character changed"] = `Bearer ${changedKey(creds.own)}`;
  if (creds.operator) unauthorized["operator key"] = `Bearer ${creds.operator}`;
  const token = creds.token ?? (creds.own.split(".").length === 3 ? creds.own : undefined);
  if (token)
    for (const [what, forged] of Object.entries(await forgedTokens(token)))
      unauthorized[what] = `Bearer ${forged}`;

  for (const [what, authorization] of Object.entries(unauthorized))
    expectError(await call(authorization), 401, "unauthorized", `${label} with ${what}`);

  if (route.scope && creds.lacking)
    expectError(
      await call(`Bearer ${creds.lacking}`),
      403,
      "forbidden",
      `${label} without scope ${route.scope}`,
    );

  const foreign = await call(`Bearer ${creds.other}`);
  if (route.foreign === "not_found") {
    expectError(foreign, 404, "not_found", `${label} with another account's credential`);
  } else {
    expect(
      foreign.status,
      `${label} with another account's credential: ${foreign.text.slice(0, 200)}`,
    ).toBeLessThan(300);
    expect(foreign.status).toBeGreaterThanOrEqual(200);
    for (const m of route.markers ?? [])
      expect(foreign.text.includes(m), `${label}: another account's answer shows ${m}`).toBe(false);
  }

  if (opts.snapshot)
    expect(await opts.snapshot(), `${label}: refused attempts changed state`).toEqual(before);

  if (opts.ownStatus !== undefined) {
    const own = await call(`Bearer ${creds.own}`);
    expect(own.status, `${label} with this account's credential: ${own.text.slice(0, 200)}`).toBe(
      opts.ownStatus,
    );
  }
}
