/**
 * Webhook endpoints: a URL, a signing secret (Standard Webhooks `whsec_…`) and the event types it wants.
 * An operator endpoint (account_id null) hears every account; a customer's hears only its own account.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { EVENT_TYPE_PATTERN } from "../events/types.ts";
import { int, intOrNull, sqlFor, strOrNull, type Row, type Sql } from "../events/sql.ts";
import type { Engine } from "../ledger/engine.ts";

export const MAX_ENDPOINTS_PER_OWNER = 20;
export const MAX_EVENT_TYPES = 50;
export const MAX_URL_LENGTH = 2048;

export type EndpointStatus = "enabled" | "disabled";

export interface EndpointRecord {
  id: string;
  account_id: string | null;
  url: string;
  /** `*`, exact types, or `<object>.*`. */
  event_types: string[];
  description: string | null;
  status: EndpointStatus;
  created_by: string;
  created_at: number;
  disabled_at: number | null;
}

export interface EndpointWithSecret extends EndpointRecord {
  secret: string;
}

export function rowToEndpoint(r: Row): EndpointWithSecret {
  return {
    id: String(r.id),
    account_id: strOrNull(r.account_id),
    url: String(r.url),
    secret: String(r.secret),
    event_types: String(r.event_types).split(" ").filter(Boolean),
    description: strOrNull(r.description),
    status: String(r.status) as EndpointStatus,
    created_by: String(r.created_by),
    created_at: int(r.created_at),
    disabled_at: intOrNull(r.disabled_at),
  };
}

export function withoutSecret(e: EndpointWithSecret): EndpointRecord {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { secret, ...rest } = e;
  return rest;
}

/** Whether an endpoint wants an event of this type for this account. */
export function endpointWants(e: EndpointRecord, type: string, accountId: string | null): boolean {
  if (e.account_id !== null && e.account_id !== accountId) return false;
  return e.event_types.some(
    (t) => t === "*" || t === type || (t.endsWith(".*") && type.startsWith(t.slice(0, -1))),
  );
}

function checkTypes(types: unknown): string[] {
  if (!Array.isArray(types) || types.length === 0 || types.length > MAX_EVENT_TYPES)
    throw TallyError.validation("event_types", `must list 1 to ${MAX_EVENT_TYPES} event types (or "*")`);
  const out = new Set<string>();
  for (const t of types) {
    const ok =
      typeof t === "string" &&
      t.length <= 64 &&
      (t === "*" || EVENT_TYPE_PATTERN.test(t) || /^[a-z][a-z0-9_]*\.\*$/.test(t));
    if (!ok) throw TallyError.validation("event_types", `has ${JSON.stringify(t)}, not an event type`);
    out.add(t);
  }
  return [...out].sort();
}

/** Loopback, private, link-local and unique-local addresses: not for customer endpoints (SSRF). */
function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h.endsWith(".internal") || h.endsWith(".local"))
    return true;
  const v = isIP(h);
  if (v === 4) {
    const [a, b] = h.split(".").map(Number) as [number, number];
    return (
      a === 10 ||
      a === 127 ||
      a === 0 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (v === 6)
    return (
      h === "::1" ||
      h === "::" ||
      h.startsWith("fc") ||
      h.startsWith("fd") ||
      h.startsWith("fe80") ||
      h.startsWith("::ffff:")
    );
  return false;
}

export function checkUrl(url: unknown, allowPrivate: boolean): string {
  if (typeof url !== "string" || url.length === 0 || url.length > MAX_URL_LENGTH)
    throw TallyError.validation("url", `must be an http(s) URL of at most ${MAX_URL_LENGTH} characters`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw TallyError.validation("url", "is not a URL");
  }
  if (u.protocol !== "https:" && u.protocol !== "http:")
    throw TallyError.validation("url", "must be http or https");
  if (u.username || u.password) throw TallyError.validation("url", "must not carry credentials");
  if (!allowPrivate && isPrivateHost(u.hostname))
    throw TallyError.validation("url", "must not point at a private or loopback address");
  return u.toString();
}

export function newSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

export interface EndpointInput {
  url: string;
  event_types: string[];
  description?: string | null;
}

export class EndpointService {
  readonly sql: Sql;

  /** `allowPrivateCustomerUrls`: customer endpoints may point at private addresses (tests, closed networks). */
  constructor(
    readonly engine: Engine,
    private readonly opts: { allowPrivateCustomerUrls?: boolean } = {},
  ) {
    this.sql = sqlFor(engine.store);
  }

  /** `owner`: the account of a customer endpoint, null for the operator's own. */
  async create(
    owner: string | null,
    input: EndpointInput,
    createdBy: string,
    asCustomer: boolean,
  ): Promise<EndpointWithSecret> {
    const url = checkUrl(input.url, !asCustomer || this.opts.allowPrivateCustomerUrls === true);
    const types = checkTypes(input.event_types);
    const description = checkDescription(input.description);
    if (owner !== null) await this.engine.getAccount(owner);
    const n = await this.sql.one(
      owner === null
        ? "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE account_id IS NULL"
        : "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE account_id = ?",
      owner === null ? [] : [owner],
    );
    if (int(n?.n) >= MAX_ENDPOINTS_PER_OWNER)
      throw TallyError.validation("url", `${MAX_ENDPOINTS_PER_OWNER} endpoints exist, the most allowed`);
    const now = this.engine.clock.now();
    const id = newId("whe", now);
    await this.sql.run(
      `INSERT INTO webhook_endpoints (id, account_id, url, secret, event_types, description, status, created_by, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'enabled', ?, ?)`,
      [id, owner, url, newSecret(), types.join(" "), description, createdBy, now],
    );
    return (await this.getWithSecret(id))!;
  }

  async getWithSecret(id: string): Promise<EndpointWithSecret | null> {
    const r = await this.sql.one("SELECT * FROM webhook_endpoints WHERE id = ?", [id]);
    return r ? rowToEndpoint(r) : null;
  }

  /**
   * The endpoint, seen by `scope`: undefined = the operator (any endpoint), a string = a customer (only its
   * own account's; another account's reads as missing).
   */
  async require(id: string, scope?: string): Promise<EndpointWithSecret> {
    const e = await this.getWithSecret(id);
    if (!e || (scope !== undefined && e.account_id !== scope))
      throw TallyError.notFound("webhook endpoint", id, "endpoint_id");
    return e;
  }

  async list(filter: { account_id?: string | null }): Promise<EndpointRecord[]> {
    const rows =
      filter.account_id === undefined
        ? await this.sql.all("SELECT * FROM webhook_endpoints ORDER BY id LIMIT 1000")
        : filter.account_id === null
          ? await this.sql.all("SELECT * FROM webhook_endpoints WHERE account_id IS NULL ORDER BY id")
          : await this.sql.all("SELECT * FROM webhook_endpoints WHERE account_id = ? ORDER BY id", [
              filter.account_id,
            ]);
    return rows.map((r) => withoutSecret(rowToEndpoint(r)));
  }

  async listEnabled(): Promise<EndpointWithSecret[]> {
    return (await this.sql.all("SELECT * FROM webhook_endpoints WHERE status = 'enabled' ORDER BY id")).map(
      rowToEndpoint,
    );
  }

  async update(
    id: string,
    scope: string | undefined,
    patch: Partial<EndpointInput> & { status?: EndpointStatus },
    asCustomer: boolean,
  ): Promise<EndpointRecord> {
    const e = await this.require(id, scope);
    const url =
      patch.url !== undefined
        ? checkUrl(patch.url, !asCustomer || this.opts.allowPrivateCustomerUrls === true)
        : e.url;
    const types = patch.event_types !== undefined ? checkTypes(patch.event_types) : e.event_types;
    const description = patch.description !== undefined ? checkDescription(patch.description) : e.description;
    const status = patch.status ?? e.status;
    if (status !== "enabled" && status !== "disabled")
      throw TallyError.validation("status", "must be enabled or disabled");
    const disabledAt = status === "disabled" ? (e.disabled_at ?? this.engine.clock.now()) : null;
    await this.sql.run(
      "UPDATE webhook_endpoints SET url = ?, event_types = ?, description = ?, status = ?, disabled_at = ? WHERE id = ?",
      [url, types.join(" "), description, status, disabledAt, id],
    );
    return withoutSecret((await this.getWithSecret(id))!);
  }

  async remove(id: string, scope: string | undefined): Promise<void> {
    await this.require(id, scope);
    await this.sql.run(
      "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?)",
      [id],
    );
    await this.sql.run("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", [id]);
    await this.sql.run("DELETE FROM webhook_endpoints WHERE id = ?", [id]);
  }

  /** Disables the endpoint unless already disabled; true when this call did it (so one event is emitted). */
  async disable(id: string, at: number): Promise<boolean> {
    return (
      (await this.sql.run(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = ? WHERE id = ? AND status = 'enabled'",
        [at, id],
      )) === 1
    );
  }
}

function checkDescription(d: unknown): string | null {
  if (d === undefined || d === null) return null;
  if (typeof d !== "string" || d.length > 256)
    throw TallyError.validation("description", "must be at most 256 characters");
  return d;
}
