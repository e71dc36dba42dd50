/**
 * Success bodies of the routes whose OpenAPI document does not describe its response yet (the routes that
 * declare no `response` schema). The client types an answer from the generated `sdk/schema.d.ts` whenever
 * the document describes it, and from here only otherwise, so an entry here stops mattering as soon as its
 * route declares a response schema (then delete the entry).
 *
 * These are JSON schemas (TypeBox) rather than bare interfaces so that `test/sdk.test.ts` can check every
 * one against the answers of a real server. Objects accept extra properties: a field added by the server
 * never breaks a client; a field removed or retyped fails the test.
 */
import { Type, type Static, type TSchema } from "@sinclair/typebox";

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** Credits in the operator API: an exact decimal string ("12.5"), never a float. */
export const CreditsString = Type.String({ description: "credits, an exact decimal string" });
/** An ISO 8601 time ("2026-01-31T12:00:00.000Z"). */
export const IsoTime = Type.String({ description: "ISO 8601 time" });
export const JsonObject = Type.Record(Type.String(), Type.Unknown());

export const GrantKind = Type.Union([
  Type.Literal("subscription"),
  Type.Literal("purchase"),
  Type.Literal("promotional"),
  Type.Literal("carryover"),
  Type.Literal("adjustment"),
]);
const Replay = Type.Object({
  replay: Type.Boolean({ description: "true when this answers a request already applied (same id)" }),
});

export const Account = Type.Object({
  id: Type.String(),
  overage_policy: Type.Union([Type.Literal("block"), Type.Literal("allow")]),
  overage_limit: Nullable(CreditsString),
  overage_balance: CreditsString,
  granted_total: CreditsString,
  status: Type.Union([Type.Literal("active"), Type.Literal("suspended"), Type.Literal("closed")]),
  metadata: JsonObject,
  created_at: IsoTime,
});

export const Balance = Type.Object({
  account_id: Type.String(),
  at: IsoTime,
  total: CreditsString,
  available: CreditsString,
  held: CreditsString,
  overage: CreditsString,
  by_kind: Type.Object({
    subscription: CreditsString,
    purchase: CreditsString,
    promotional: CreditsString,
    carryover: CreditsString,
    adjustment: CreditsString,
  }),
  scheduled: CreditsString,
});

export const Grant = Type.Object({
  id: Type.String(),
  account_id: Type.String(),
  kind: GrantKind,
  amount: CreditsString,
  remaining: CreditsString,
  priority: Type.Integer(),
  effective_at: IsoTime,
  expires_at: Nullable(IsoTime),
  created_at: IsoTime,
  status: Type.Union([Type.Literal("active"), Type.Literal("expired"), Type.Literal("voided")]),
  closed_at: Nullable(IsoTime),
  source: Nullable(Type.String()),
  reference: Nullable(Type.String()),
  metadata: JsonObject,
});

export const Usage = Type.Object({
  id: Type.String(),
  account_id: Type.String(),
  service: Type.String(),
  quantity: Nullable(Type.String()),
  cost: CreditsString,
  overage: CreditsString,
  overage_refunded: CreditsString,
  refunded: CreditsString,
  parts: Type.Array(
    Type.Object({ grant_id: Type.String(), kind: GrantKind, amount: CreditsString, refunded: CreditsString }),
  ),
  hold_id: Nullable(Type.String()),
  occurred_at: IsoTime,
  recorded_at: IsoTime,
  metadata: JsonObject,
  txn_id: Type.String(),
});

export const ModifierSummary = Type.Object({
  key: Type.String(),
  value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
  effect: Type.Union([Type.Literal("multiply"), Type.Literal("add_per_unit"), Type.Literal("add_flat")]),
  factor: Type.Optional(Type.String()),
  price: Type.Optional(CreditsString),
  per: Type.Optional(Type.String()),
  amount: Type.Optional(CreditsString),
});

/** How an event was priced: the cost, rounded up once per event, and one line per dimension, modifier and fee. */
export const Pricing = Type.Object({
  service: Type.String(),
  version: Type.Integer({ description: "the rate card version that priced it" }),
  cost: CreditsString,
  breakdown: Type.Array(
    Type.Union([
      Type.Object({
        kind: Type.Literal("usage"),
        dimension: Type.String(),
        unit: Type.String(),
        quantity: Type.String(),
        billed_quantity: Type.String({ description: "after the billing increment and the minimum" }),
        price: CreditsString,
        per: Type.String(),
        modifiers: Type.Array(ModifierSummary),
        multiplier: Type.String(),
        amount: Type.String({ description: "exact credits for this dimension, before the event's rounding" }),
      }),
      Type.Object({ kind: Type.Literal("modifier"), modifier: ModifierSummary, amount: CreditsString }),
      Type.Object({ kind: Type.Literal("fee"), amount: CreditsString }),
    ]),
  ),
});

export const RecordedUsage = Type.Intersect([
  Usage,
  Replay,
  Type.Object({ pricing: Type.Optional(Pricing) }),
]);

/** The error object of the one error shape (`{"error": {...}}`). */
export const ErrorObject = Type.Object({
  code: Type.String(),
  message: Type.String(),
  request_id: Type.String(),
  field: Type.Optional(Type.String()),
});

export const BatchResults = Type.Object({
  results: Type.Array(
    Type.Union([
      Type.Object({ id: Type.String(), ok: Type.Literal(true), usage: RecordedUsage }),
      Type.Object({ id: Type.String(), ok: Type.Literal(false), error: ErrorObject }),
    ]),
  ),
});

export const Entry = Type.Object({
  seq: Type.Integer(),
  txn_id: Type.String(),
  account_id: Type.String(),
  ledger: Type.String({ description: "issued, consumed, expired, voided, overage, grant:<id>, hold:<id>" }),
  amount: CreditsString,
  kind: Type.String(),
  ref: Type.String(),
  at: IsoTime,
});

export const Hold = Type.Object({
  id: Type.String(),
  account_id: Type.String(),
  amount: CreditsString,
  parts: Type.Array(Type.Object({ grant_id: Type.String(), kind: GrantKind, amount: CreditsString })),
  status: Type.Union([
    Type.Literal("active"),
    Type.Literal("captured"),
    Type.Literal("released"),
    Type.Literal("expired"),
  ]),
  expires_at: IsoTime,
  created_at: IsoTime,
  closed_at: Nullable(IsoTime),
  captured_amount: CreditsString,
  usage_id: Nullable(Type.String()),
  metadata: JsonObject,
});

export const Refund = Type.Object({
  id: Type.String(),
  usage_id: Type.String(),
  account_id: Type.String(),
  amount: CreditsString,
  reason: Nullable(Type.String()),
  created_at: IsoTime,
  txn_id: Type.String(),
});

export const Audit = Type.Object({
  ok: Type.Boolean(),
  checked_at: IsoTime,
  counts: Type.Record(Type.String(), Type.Integer()),
  totals: Type.Record(Type.String(), CreditsString),
  discrepancies: Type.Array(
    Type.Object({ check: Type.String(), id: Type.String(), expected: Type.String(), actual: Type.String() }),
  ),
});

/** Pay-as-you-go settings; numbers, as the seed's Credits API has them. */
export const Payg = Type.Object({
  credits_per_dollar: Type.Number(),
  min_amount_usd: Type.Number(),
  max_amount_usd: Type.Number(),
  currency: Type.String(),
});

const Decimal = Type.String();
export const ServiceRate = Type.Object({
  unit: Type.String(),
  description: Type.Optional(Type.String()),
  price: Type.Optional(Decimal),
  per: Type.Optional(Decimal),
  increment: Type.Optional(Decimal),
  minimum: Type.Optional(Decimal),
  fee: Type.Optional(Decimal),
  dimensions: Type.Optional(
    Type.Record(
      Type.String(),
      Type.Object({
        unit: Type.Optional(Type.String()),
        price: Decimal,
        per: Type.Optional(Decimal),
        increment: Type.Optional(Decimal),
        minimum: Type.Optional(Decimal),
      }),
    ),
  ),
  modifiers: Type.Optional(
    Type.Array(
      Type.Object({
        key: Type.String(),
        value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
        multiply: Type.Optional(Decimal),
        add_per_unit: Type.Optional(Type.Object({ price: Decimal, per: Type.Optional(Decimal) })),
        add_flat: Type.Optional(Decimal),
        dimension: Type.Optional(Type.String()),
        multiplier_key: Type.Optional(Type.String()),
        description: Type.Optional(Type.String()),
      }),
    ),
  ),
});

export const RateCard = Type.Object({
  version: Type.Integer(),
  effective_at: IsoTime,
  services: Type.Record(Type.String(), ServiceRate),
});

/** `GET /api/v1/credits`, exactly the seed's fields (credits as JSON numbers). */
export const CreditsInfo = Type.Object({
  credits_balance: Type.Number(),
  payg_balance: Type.Number(),
  total_available_credits: Type.Number(),
  last_reset_at: Nullable(IsoTime),
  total_credits_used: Type.Number(),
  total_payg_credits_purchased: Type.Number(),
  next_reset_date: Nullable(IsoTime),
  credits_per_month: Type.Number(),
});

/** A row of `GET /api/v1/credits/usage` (a bare JSON array; the next page's cursor is the `x-next-cursor` header). */
export const CreditsUsageRow = Type.Object({
  id: Type.String(),
  user_credits_id: Type.String(),
  credits_used: Type.Number(),
  service_type: Type.String(),
  audio_duration: Type.Number({ description: "seconds of audio, 0 for services not priced by time" }),
  credit_source: Type.String(),
  created_at: IsoTime,
  usage_metadata: JsonObject,
});

export const CheckoutSession = Type.Object({
  session_id: Type.String(),
  credits_to_receive: Type.Number(),
  amount_usd: Type.Number(),
});

const Page = <T extends TSchema>(item: T) =>
  Type.Object({ data: Type.Array(item), next_cursor: Nullable(Type.String()) });
const WithReplay = <T extends TSchema>(t: T) => Type.Intersect([t, Replay]);

/** Path → method → the success body, for the routes the OpenAPI document leaves undescribed. */
export const FALLBACK_RESPONSES = {
  "/v1/accounts": { get: Page(Account), post: WithReplay(Account) },
  "/v1/accounts/{id}": { get: Type.Intersect([Account, Type.Object({ balance: Balance })]) },
  "/v1/accounts/{id}/suspend": { post: WithReplay(Account) },
  "/v1/accounts/{id}/reactivate": { post: WithReplay(Account) },
  "/v1/accounts/{id}/close": { post: WithReplay(Account) },
  "/v1/accounts/{id}/balance": { get: Balance },
  "/v1/accounts/{id}/grants": { get: Type.Object({ data: Type.Array(Grant) }), post: WithReplay(Grant) },
  "/v1/grants/{id}/void": { post: WithReplay(Grant) },
  "/v1/accounts/{id}/usage": { get: Page(Usage) },
  "/v1/accounts/{id}/entries": { get: Page(Entry) },
  "/v1/holds": { post: WithReplay(Hold) },
  "/v1/holds/{id}": { get: Hold },
  "/v1/holds/{id}/capture": { post: Type.Object({ hold: Hold, usage: Usage, replay: Type.Boolean() }) },
  "/v1/holds/{id}/release": { post: WithReplay(Hold) },
  "/v1/usage/{id}": { get: Usage },
  "/v1/usage/{id}/refund": { post: Type.Object({ refund: Refund, usage: Usage, replay: Type.Boolean() }) },
  "/v1/audit": { get: Audit },
  "/v1/payg": { get: Payg, put: Payg },
  "/v1/usage": { post: RecordedUsage },
  "/v1/usage/batch": { post: BatchResults },
  "/v1/estimate": { post: Pricing },
  "/v1/rate-card": { get: RateCard, put: RateCard },
  "/v1/rate-card/versions": { get: Type.Object({ data: Type.Array(RateCard) }) },
  "/api/v1/credits": { get: CreditsInfo },
  "/api/v1/credits/usage": { get: Type.Array(CreditsUsageRow) },
  "/api/v1/credits/multipliers": { get: Type.Record(Type.String(), Type.Number()) },
  "/api/v1/credits/payg/info": { get: Payg },
  "/api/v1/credits/payg/create-checkout-session": { post: CheckoutSession },
} as const;

type FallbackSchemas = typeof FALLBACK_RESPONSES;
/** The fallback success body of each (path, method), as types. */
export type FallbackResponses = {
  [P in keyof FallbackSchemas]: {
    [M in keyof FallbackSchemas[P]]: FallbackSchemas[P][M] extends TSchema
      ? Static<FallbackSchemas[P][M]>
      : never;
  };
};

export type Account = Static<typeof Account>;
export type Balance = Static<typeof Balance>;
export type Grant = Static<typeof Grant>;
export type Usage = Static<typeof Usage>;
export type RecordedUsage = Static<typeof RecordedUsage>;
export type Pricing = Static<typeof Pricing>;
export type Hold = Static<typeof Hold>;
export type Refund = Static<typeof Refund>;
export type Entry = Static<typeof Entry>;
export type RateCard = Static<typeof RateCard>;
export type CreditsInfo = Static<typeof CreditsInfo>;
export type CreditsUsageRow = Static<typeof CreditsUsageRow>;
