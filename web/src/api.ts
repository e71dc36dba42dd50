/**
 * The typed client the dashboard uses for both Tally APIs: the operator API (/v1, operator key) and the
 * customer API (/api/v1, an API key or a token from /api/v1/auth/token). Every call goes to the server
 * that served the page; errors keep the server's code, message and field so the UI can say what to do.
 */

export interface ApiErrorBody {
  code: string;
  message: string;
  request_id?: string;
  field?: string;
  [k: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly body: ApiErrorBody;
  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.field = body.field;
    this.body = body;
  }
  /** The server has no such route: the feature is not on this server (yet). */
  get isMissingRoute(): boolean {
    return this.status === 404 && /^no route /.test(this.message);
  }
}

/** A network failure (server down, connection cut): not an answer from Tally. */
export class NetworkError extends Error {}

export type Credential = { kind: "customer" | "operator"; secret: string };

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

// ---- customer API (/api/v1): the seed's Credits API types, credits as JSON numbers ----

export interface Credits {
  credits_balance: number;
  payg_balance: number;
  total_available_credits: number;
  last_reset_at: string | null;
  total_credits_used: number;
  total_payg_credits_purchased: number;
  next_reset_date: string | null;
  credits_per_month: number;
  [k: string]: unknown;
}

export interface CustomerUsage {
  id: string;
  user_credits_id: string;
  credits_used: number;
  service_type: string;
  audio_duration: number;
  credit_source: string;
  created_at: string;
  usage_metadata: Record<string, unknown>;
}

export interface PaygInfo {
  credits_per_dollar: number;
  min_amount_usd: number;
  max_amount_usd: number;
  currency: string;
  [k: string]: unknown;
}

export interface CheckoutSession {
  session_id: string;
  credits_to_receive: number;
  amount_usd: number | string;
  /** Where the customer pays (the server's local checkout page, or the payment provider's). */
  checkout_url?: string | null;
  [k: string]: unknown;
}

/** A checkout session's state, as GET /api/v1/checkout-sessions/{id} answers it. */
export interface CheckoutStatus {
  id: string;
  status: string; // open, paid, canceled, expired
  credits: string;
  amount_usd: number;
  currency: string;
  purchase_id: string | null;
  [k: string]: unknown;
}

export interface Pack {
  id: string;
  name: string;
  description: string | null;
  credits: string;
  price_usd: number;
  currency: string;
  expires_after_days: number | null;
  active: boolean;
}

export interface Purchase {
  id: string;
  source: string;
  status: string;
  pack_id: string | null;
  amount_usd: number;
  currency: string;
  credits: string;
  credits_expire_at: string | null;
  provider: string;
  created_at: string;
  paid_at: string | null;
  refunded_credits?: string;
  [k: string]: unknown;
}

export interface ApiKey {
  id: string;
  name: string | null;
  prefix: string;
  scopes: string[];
  created_by?: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  secret?: string;
}

// ---- operator API (/v1): credits as exact decimal strings ----

export interface Balance {
  account_id: string;
  at: string;
  total: string;
  available: string;
  held: string;
  overage: string;
  by_kind: Record<string, string>;
  scheduled: string;
}

export interface Account {
  id: string;
  status: string;
  overage_policy: string;
  overage_limit: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
  balance?: Balance;
}

export interface Grant {
  id: string;
  account_id: string;
  kind: string;
  amount: string;
  remaining: string;
  priority: number;
  effective_at: string;
  expires_at: string | null;
  reference?: string | null;
  metadata: Record<string, unknown>;
  status?: string;
  voided_at?: string | null;
  created_at: string;
  [k: string]: unknown;
}

export interface UsagePart {
  grant_id: string;
  kind: string;
  amount: string;
}

export interface OperatorUsage {
  id: string;
  account_id: string;
  service: string;
  quantity: string | null;
  quantities?: Record<string, string> | null;
  cost: string;
  refunded: string;
  overage: string;
  parts: UsagePart[];
  occurred_at: string;
  recorded_at: string;
  metadata: Record<string, unknown>;
  [k: string]: unknown;
}

/** One journal posting (a leg of a double-entry transaction). */
export interface Entry {
  seq: number;
  txn_id: string;
  account_id: string;
  ledger: string;
  amount: string;
  kind: string;
  ref: string;
  at: string;
}

export interface Estimate {
  service: string;
  version: number;
  cost: string;
  breakdown: Record<string, unknown>[];
}

export interface RateCardJson {
  version: number;
  effective_at: string;
  services: Record<string, ServiceRate>;
}

export interface ServiceRate {
  unit: string;
  price?: string;
  per?: string;
  increment?: string;
  minimum?: string;
  fee?: string;
  dimensions?: Record<string, { price: string; per?: string; increment?: string; minimum?: string }>;
  modifiers?: unknown[];
  [k: string]: unknown;
}

export interface AuditReport {
  ok: boolean;
  checked_at: string;
  counts: Record<string, unknown>;
  totals: Record<string, unknown>;
  discrepancies: unknown[];
}

export interface HttpAnswer<T> {
  body: T;
  headers: Headers;
  status: number;
}

/** One request; JSON in and out; a Tally error body becomes an ApiError. */
export async function request<T>(
  method: string,
  path: string,
  opts: { credential?: Credential | null; body?: unknown; signal?: AbortSignal } = {},
): Promise<HttpAnswer<T>> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.credential) headers.authorization = `Bearer ${opts.credential.secret}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (method === "POST") headers["idempotency-key"] = crypto.randomUUID();
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new NetworkError("Could not reach the Tally server. Check that it is running, then try again.");
  }
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const err =
      parsed && typeof parsed === "object" && "error" in parsed
        ? (parsed as { error: ApiErrorBody }).error
        : { code: "http_" + res.status, message: `The server answered ${res.status} ${res.statusText}.` };
    throw new ApiError(res.status, err);
  }
  return { body: parsed as T, headers: res.headers, status: res.status };
}

const enc = encodeURIComponent;

function query(params: Record<string, string | number | undefined | null>): string {
  const q = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`)
    .join("&");
  return q ? `?${q}` : "";
}

/** Exchange email and password for a customer token (valid one hour). */
export async function signIn(email: string, password: string): Promise<string> {
  const r = await request<{ access_token: string }>("POST", "/api/v1/auth/token", {
    body: { email, password },
  });
  return r.body.access_token;
}

/** The customer API, as the signed-in customer. */
export class CustomerApi {
  constructor(readonly credential: Credential) {}
  private async get<T>(path: string): Promise<T> {
    return (await request<T>("GET", path, { credential: this.credential })).body;
  }
  private async post<T>(path: string, body: unknown = {}): Promise<T> {
    return (await request<T>("POST", path, { credential: this.credential, body })).body;
  }
  credits(): Promise<Credits> {
    return this.get("/api/v1/credits");
  }
  async usagePage(limit: number, cursor?: string): Promise<{ rows: CustomerUsage[]; next: string | null }> {
    const r = await request<CustomerUsage[]>("GET", `/api/v1/credits/usage${query({ limit, cursor })}`, {
      credential: this.credential,
    });
    return { rows: r.body, next: r.headers.get("x-next-cursor") };
  }
  /** Newest first, following cursors until `since` is passed or `max` rows are read. */
  async usageSince(since: number, max = 5000): Promise<{ rows: CustomerUsage[]; truncated: boolean }> {
    const out: CustomerUsage[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.usagePage(1000, cursor);
      for (const row of page.rows) {
        if (Date.parse(row.created_at) < since) return { rows: out, truncated: false };
        out.push(row);
        if (out.length >= max) return { rows: out, truncated: true };
      }
      if (!page.next) return { rows: out, truncated: false };
      cursor = page.next;
    }
  }
  multipliers(): Promise<Record<string, number>> {
    return this.get("/api/v1/credits/multipliers");
  }
  paygInfo(): Promise<PaygInfo> {
    return this.get("/api/v1/credits/payg/info");
  }
  createCheckout(body: Record<string, unknown>): Promise<CheckoutSession> {
    return this.post("/api/v1/credits/payg/create-checkout-session", body);
  }
  packs(): Promise<Page<Pack>> {
    return this.get("/api/v1/packs");
  }
  buyPack(id: string, savePaymentMethod = false): Promise<CheckoutSession> {
    return this.post(
      `/api/v1/packs/${enc(id)}/checkout`,
      savePaymentMethod ? { save_payment_method: true } : {},
    );
  }
  checkoutStatus(id: string): Promise<CheckoutStatus> {
    return this.get(`/api/v1/checkout-sessions/${enc(id)}`);
  }
  purchases(): Promise<Page<Purchase>> {
    return this.get("/api/v1/purchases?limit=1000");
  }
  keys(): Promise<Page<ApiKey>> {
    return this.get("/api/v1/keys?limit=1000");
  }
  createKey(name: string, scopes: string[]): Promise<ApiKey> {
    return this.post("/api/v1/keys", { name, scopes });
  }
  revokeKey(id: string): Promise<ApiKey> {
    return this.post(`/api/v1/keys/${enc(id)}/revoke`);
  }
  /** Any other customer route (features that arrive with later issues). */
  raw<T>(method: string, path: string, body?: unknown): Promise<T> {
    return request<T>(method, path, {
      credential: this.credential,
      ...(body !== undefined ? { body } : {}),
    }).then((r) => r.body);
  }
}

/** The operator API. */
export class OperatorApi {
  constructor(readonly credential: Credential) {}
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (
      await request<T>(method, path, { credential: this.credential, ...(body !== undefined ? { body } : {}) })
    ).body;
  }
  raw<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.call(method, path, body);
  }
  accounts(cursor?: string, limit = 1000): Promise<Page<Account>> {
    return this.call("GET", `/v1/accounts${query({ cursor, limit })}`);
  }
  account(id: string): Promise<Account> {
    return this.call("GET", `/v1/accounts/${enc(id)}`);
  }
  grants(id: string): Promise<{ data: Grant[] }> {
    return this.call("GET", `/v1/accounts/${enc(id)}/grants`);
  }
  grant(accountId: string, body: Record<string, unknown>): Promise<Grant> {
    return this.call("POST", `/v1/accounts/${enc(accountId)}/grants`, body);
  }
  voidGrant(id: string, reason: string): Promise<Grant> {
    return this.call("POST", `/v1/grants/${enc(id)}/void`, reason ? { reason } : {});
  }
  usage(
    id: string,
    filters: { service?: string; credit_source?: string; from?: string; to?: string; cursor?: string },
  ): Promise<Page<OperatorUsage>> {
    return this.call("GET", `/v1/accounts/${enc(id)}/usage${query({ ...filters, limit: 100 })}`);
  }
  entries(id: string, cursor?: string): Promise<Page<Entry>> {
    return this.call("GET", `/v1/accounts/${enc(id)}/entries${query({ cursor, limit: 100 })}`);
  }
  usageDetail(id: string): Promise<OperatorUsage & { refunds?: Record<string, unknown>[] }> {
    return this.call("GET", `/v1/usage/${enc(id)}`);
  }
  refund(usageId: string, body: { amount?: string; reason?: string }): Promise<unknown> {
    return this.call("POST", `/v1/usage/${enc(usageId)}/refund`, body);
  }
  hold(id: string): Promise<Record<string, unknown>> {
    return this.call("GET", `/v1/holds/${enc(id)}`);
  }
  setStatus(id: string, action: "suspend" | "reactivate" | "close"): Promise<Account> {
    return this.call("POST", `/v1/accounts/${enc(id)}/${action}`, {});
  }
  rateCard(): Promise<RateCardJson> {
    return this.call("GET", "/v1/rate-card");
  }
  rateCardVersions(): Promise<{ data: RateCardJson[] }> {
    return this.call("GET", "/v1/rate-card/versions");
  }
  publishRateCard(services: Record<string, ServiceRate>): Promise<RateCardJson> {
    return this.call("PUT", "/v1/rate-card", { services });
  }
  estimate(body: Record<string, unknown>): Promise<Estimate> {
    return this.call("POST", "/v1/estimate", body);
  }
  audit(): Promise<AuditReport> {
    return this.call("GET", "/v1/audit");
  }
  payg(): Promise<PaygInfo> {
    return this.call("GET", "/v1/payg");
  }
}

/** Whether a route exists on this server: false only when it answers "no route". */
export async function routeExists(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.isMissingRoute) return false;
    return true;
  }
}

/** Fetches a file with the credential and hands it to the browser as a download (CSV statements). */
export async function download(credential: Credential, path: string, fallbackName: string): Promise<void> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${credential.secret}` } });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: ApiErrorBody } | null;
    throw new ApiError(res.status, body?.error ?? { code: `http_${res.status}`, message: res.statusText });
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
