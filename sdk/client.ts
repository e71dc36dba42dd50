/**
 * A small typed client for Tally's HTTP API, over `fetch` (Node ≥ 18, browsers, Deno, Bun); no dependencies.
 *
 * Paths, path parameters, query strings and request bodies are typed from `schema.d.ts`, which `npm run sdk`
 * generates from the app's own OpenAPI document; answers are typed from it too, or from `responses.ts` for
 * routes whose document does not describe its answer yet.
 *
 *   const tally = createOperatorClient({ baseUrl: "http://localhost:8080", operatorKey });
 *   const account = await tally.post("/v1/accounts", { body: { metadata: { name: "Acme" } } });
 *   await tally.post("/v1/usage", {
 *     body: { id: "evt_1", account_id: account.id, service: "transcription", quantity: 90 },
 *   });
 *
 *   const me = createCustomerClient({ baseUrl, credential: "tly_live_…" }); // an API key or a JWT
 *   const { total_available_credits } = await me.get("/api/v1/credits");
 *
 * Every error answer (4xx/5xx) is thrown as a TallyApiError carrying the API's error object.
 */
import type { FallbackResponses } from "./responses.ts";
import type { paths } from "./schema.d.ts";

export type { paths } from "./schema.d.ts";
export type * from "./responses.ts";

export type Method = "get" | "put" | "post" | "delete" | "patch";

/** The operation object of `method` on `path` (never when the route does not exist). */
type Op<P, M> = P extends keyof paths ? (M extends keyof paths[P] ? NonNullable<paths[P][M]> : never) : never;

/** Every path under `Prefix` that answers `M`. */
export type RoutePath<M extends Method, Prefix extends string = string> = {
  [P in keyof paths]: P extends `${Prefix}${string}` ? ([Op<P, M>] extends [never] ? never : P) : never;
}[keyof paths];

type PathParamsOf<O> = O extends { parameters: { path: infer X } } ? X : never;
type QueryOf<O> = O extends { parameters: { query?: infer X } } ? Exclude<X, undefined> : never;
type RequiredBodyOf<O> = O extends { requestBody: { content: { "application/json": infer B } } } ? B : never;
type OptionalBodyOf<O> = O extends { requestBody?: infer R }
  ? [Exclude<R, undefined>] extends [never]
    ? never
    : Exclude<R, undefined> extends { content: { "application/json": infer B } }
      ? B
      : never
  : never;

/** What every call accepts besides the route's own parameters. */
export interface CallOptions {
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Sent as `Idempotency-Key`: a retry with the same key gets the first answer (see docs/api.md). */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** The options of a call: `params` (path), `query` and `body` exactly as the route's schema has them. */
export type RequestOptions<P, M> = ([PathParamsOf<Op<P, M>>] extends [never]
  ? { params?: undefined }
  : { params: PathParamsOf<Op<P, M>> }) &
  ([QueryOf<Op<P, M>>] extends [never] ? { query?: undefined } : { query?: QueryOf<Op<P, M>> }) &
  ([RequiredBodyOf<Op<P, M>>] extends [never]
    ? [OptionalBodyOf<Op<P, M>>] extends [never]
      ? { body?: undefined }
      : { body?: OptionalBodyOf<Op<P, M>> }
    : { body: RequiredBodyOf<Op<P, M>> }) &
  CallOptions;

/** The options argument is optional when the route needs nothing in it. */
type Args<P, M> =
  object extends RequestOptions<P, M> ? [options?: RequestOptions<P, M>] : [options: RequestOptions<P, M>];

type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
type DocumentedBody<O> = O extends { responses: infer R }
  ? { [S in keyof R]: S extends 200 | 201 | 202 ? JsonOf<R[S]> : never }[keyof R]
  : never;
type FallbackBody<P, M> = P extends keyof FallbackResponses
  ? M extends keyof FallbackResponses[P]
    ? FallbackResponses[P][M]
    : unknown
  : unknown;

/** The success body of a route: from the OpenAPI document when it describes it, else from responses.ts. */
export type ResponseBody<P, M> = [DocumentedBody<Op<P, M>>] extends [never]
  ? FallbackBody<P, M>
  : DocumentedBody<Op<P, M>>;

/** A success answer with its status and headers. */
export interface ApiResponse<T> {
  data: T;
  status: number;
  headers: Headers;
  /** The server's request id (`x-request-id`), to quote in a support request. */
  requestId: string | null;
  /** True when the server answered from an earlier request with the same Idempotency-Key. */
  replayed: boolean;
}

/** The closed list of error codes (docs/api.md has the status of each). */
export type ErrorCode =
  | "validation_error"
  | "not_found"
  | "insufficient_credits"
  | "idempotency_conflict"
  | "account_not_active"
  | "grant_not_active"
  | "hold_not_active"
  | "hold_expired"
  | "refund_exceeds_usage"
  | "unauthorized"
  | "forbidden"
  | "rate_limited"
  | "payload_too_large"
  | "budget_exceeded"
  | "subscription_conflict"
  | "checkout_not_open"
  | "purchase_not_refundable"
  | "payment_provider_error"
  | "session_not_active"
  | "session_limit_reached"
  | "internal_error";

/** The one error shape of every error answer. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    request_id: string;
    /** The request field at fault, when there is one ("amount", "quantities.input_tokens", "authorization"). */
    field?: string;
    [detail: string]: unknown;
  };
}

/** An error answer from Tally. `code` is one of ErrorCode, or `http_<status>` if the body was not Tally's. */
export class TallyApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | `http_${number}`;
  readonly field: string | undefined;
  readonly requestId: string | null;
  /** The error object, with any details (`shortfall`, `required_scope`, …). */
  readonly details: Record<string, unknown>;
  readonly headers: Headers;

  constructor(status: number, body: unknown, headers: Headers) {
    const err = isErrorBody(body) ? body.error : undefined;
    super(err?.message ?? `HTTP ${status}`);
    this.name = "TallyApiError";
    this.status = status;
    this.code = err?.code ?? `http_${status}`;
    this.field = err?.field;
    this.requestId = err?.request_id ?? headers.get("x-request-id");
    this.details = err ?? {};
    this.headers = headers;
  }

  /** Seconds to wait before retrying, from `Retry-After` (set on 429 rate_limited). */
  get retryAfterSeconds(): number | null {
    const v = this.headers.get("retry-after");
    return v === null || !/^\d+$/.test(v) ? null : Number(v);
  }
}

function isErrorBody(body: unknown): body is ErrorBody {
  const e = (body as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  return typeof e === "object" && e !== null && typeof e.code === "string" && typeof e.message === "string";
}

export interface ClientOptions {
  /** Where Tally runs, e.g. "http://localhost:8080". */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

type UntypedOptions = {
  params?: Record<string, string | number>;
  query?: Record<string, unknown>;
  body?: unknown;
} & CallOptions;

/** Items of a list answer: a `{data: [...]}` page or a bare array. */
type ItemOf<R> = R extends readonly (infer I)[] ? I : R extends { data: readonly (infer I)[] } ? I : never;

/** A typed client over the routes whose paths start with `Prefix`. */
export class TallyClient<Prefix extends string> {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  // The signatures carry the types; the bodies cast through `never` so that TypeScript does not expand the
  // union of every route inside a generic body (TS2589, "excessively deep").
  get<P extends RoutePath<"get", Prefix>>(
    path: P,
    ...args: Args<NoInfer<P>, "get">
  ): Promise<ResponseBody<NoInfer<P>, "get">> {
    return this.send("get", path, ((args as unknown[])[0] ?? {}) as UntypedOptions).then(
      (r) => r.data,
    ) as Promise<never>;
  }

  post<P extends RoutePath<"post", Prefix>>(
    path: P,
    ...args: Args<NoInfer<P>, "post">
  ): Promise<ResponseBody<NoInfer<P>, "post">> {
    return this.send("post", path, ((args as unknown[])[0] ?? {}) as UntypedOptions).then(
      (r) => r.data,
    ) as Promise<never>;
  }

  put<P extends RoutePath<"put", Prefix>>(
    path: P,
    ...args: Args<NoInfer<P>, "put">
  ): Promise<ResponseBody<NoInfer<P>, "put">> {
    return this.send("put", path, ((args as unknown[])[0] ?? {}) as UntypedOptions).then(
      (r) => r.data,
    ) as Promise<never>;
  }

  /** Any route, answered with its status and headers as well as its body. */
  call<M extends Method, P extends RoutePath<M, Prefix>>(
    method: M,
    path: P,
    ...args: Args<NoInfer<P>, M>
  ): Promise<ApiResponse<ResponseBody<NoInfer<P>, M>>> {
    return this.send(method, path, ((args as unknown[])[0] ?? {}) as UntypedOptions) as Promise<never>;
  }

  private async send(method: Method, path: string, opts: UntypedOptions): Promise<ApiResponse<unknown>> {
    const url = this.baseUrl + fillPath(path, opts.params) + queryString(opts.query);
    const headers: Record<string, string> = { accept: "application/json", ...this.options.headers };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    if (opts.idempotencyKey !== undefined) headers["idempotency-key"] = opts.idempotencyKey;
    Object.assign(headers, opts.headers);
    const res = await this.fetchImpl(url, {
      method: method.toUpperCase(),
      headers,
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const text = await res.text();
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!res.ok) throw new TallyApiError(res.status, body, res.headers);
    return {
      data: body,
      status: res.status,
      headers: res.headers,
      requestId: res.headers.get("x-request-id"),
      replayed: res.headers.get("idempotent-replayed") === "true",
    };
  }

  /**
   * Every item of a paginated GET route, page after page: follows `next_cursor` in `{data, next_cursor}`
   * pages and the `x-next-cursor` header of bare-array answers (`/api/v1/credits/usage`).
   */
  paginate<P extends RoutePath<"get", Prefix>>(
    path: P,
    ...args: Args<NoInfer<P>, "get">
  ): AsyncIterable<ItemOf<ResponseBody<NoInfer<P>, "get">>> {
    return this.items(path, ((args as unknown[])[0] ?? {}) as UntypedOptions) as AsyncIterable<never>;
  }

  private async *items(path: string, first: UntypedOptions): AsyncGenerator<unknown, void, undefined> {
    let cursor = first.query?.cursor as string | undefined;
    for (;;) {
      const page = await this.send("get", path, {
        ...first,
        query: { ...first.query, ...(cursor ? { cursor } : {}) },
      });
      const body = page.data as unknown;
      const items = Array.isArray(body) ? body : (body as { data?: unknown }).data;
      if (!Array.isArray(items)) throw new Error(`${path} is not a list`);
      yield* items;
      const next = Array.isArray(body)
        ? page.headers.get("x-next-cursor")
        : (body as { next_cursor?: string | null }).next_cursor;
      if (!next) return;
      cursor = next;
    }
  }
}

function fillPath(path: string, params: Record<string, string | number> | undefined): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined || v === "") throw new TypeError(`${path}: missing path parameter ${name}`);
    return encodeURIComponent(String(v));
  });
}

function queryString(query: Record<string, unknown> | undefined): string {
  if (!query) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The operator API (`/v1/…`), with the operator key. */
export type OperatorClient = TallyClient<"/v1/">;
/** The customer API (`/api/v1/…`), with a customer API key or token. */
export type CustomerClient = TallyClient<"/api/v1/">;

/** A client of the operator API under /v1. The operator key is printed once at first start (or TALLY_ADMIN_KEY). */
export function createOperatorClient(
  opts: Omit<ClientOptions, "token"> & { operatorKey: string },
): OperatorClient {
  const { operatorKey, ...rest } = opts;
  return new TallyClient<"/v1/">({ ...rest, token: operatorKey });
}

/** A client of the customer API under /api/v1, with an API key (`tly_live_…`) or a token from customerLogin. */
export function createCustomerClient(
  opts: Omit<ClientOptions, "token"> & { credential: string },
): CustomerClient {
  const { credential, ...rest } = opts;
  return new TallyClient<"/api/v1/">({ ...rest, token: credential });
}

export type TokenResponse = ResponseBody<"/api/v1/auth/token", "post">;

/** Exchanges a customer user's email and password for a token (`POST /api/v1/auth/token`) and a client using it. */
export async function customerLogin(
  opts: Omit<ClientOptions, "token"> & { email: string; password: string },
): Promise<{ client: CustomerClient; token: TokenResponse }> {
  const { email, password, ...rest } = opts;
  const token = await new TallyClient<"/api/v1/">(rest).post("/api/v1/auth/token", {
    body: { email, password },
  });
  return { client: createCustomerClient({ ...rest, credential: token.access_token }), token };
}
