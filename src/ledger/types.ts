/** Records and commands of the credit ledger. Amounts are bigint micro-credits; times are epoch ms. */
import type { EventDraft } from "../events/types.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Metadata = { [key: string]: Json };

export const GRANT_KINDS = ["subscription", "purchase", "promotional", "carryover", "adjustment"] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/**
 * Default priorities (lower is used first) that make the seeds' rules hold: an old plan's carried-over
 * supply first, then the current monthly supply, then promotional credits, then operator adjustments,
 * then purchased packs ("pack credits are used only when the monthly supply runs out").
 */
export const DEFAULT_PRIORITY: Record<GrantKind, number> = {
  carryover: 10,
  subscription: 20,
  promotional: 30,
  adjustment: 40,
  purchase: 50,
};

export type OveragePolicy = "block" | "allow";
export type AccountStatus = "active" | "suspended" | "closed";

export interface AccountRecord {
  id: string;
  overage_policy: OveragePolicy;
  /** Most overage that may be outstanding at once; null = no limit (only with policy allow). */
  overage_limit: bigint | null;
  /** Outstanding overage: credits consumed beyond the grants, billed on the statement. Derived from the journal. */
  overage_balance: bigint;
  /** Everything ever granted to the account (bounded by MAX_ACCOUNT_GRANTED). Derived from the journal. */
  granted_total: bigint;
  status: AccountStatus;
  metadata: Metadata;
  created_at: number;
  request: string;
}

export type GrantStatus = "active" | "expired" | "voided";

export interface GrantRecord {
  id: string;
  account_id: string;
  kind: GrantKind;
  amount: bigint;
  /** Derived state: always equals the sum of the journal postings on `grant:<id>`. */
  remaining: bigint;
  priority: number;
  effective_at: number;
  expires_at: number | null;
  created_at: number;
  /** Creation order, the last burn-down tie-breaker: a time-sortable key made when the grant is created. */
  order_key: string;
  status: GrantStatus;
  /** When the grant was expired or voided (the write-off time). */
  closed_at: number | null;
  source: string | null;
  reference: string | null;
  metadata: Metadata;
  /** Canonical JSON of the creating request, for replay/conflict detection of client-chosen ids. */
  request: string;
}

/** Part of a usage or hold drawn from one grant. */
export interface Part {
  grant_id: string;
  kind: GrantKind;
  amount: bigint;
}

export type HoldStatus = "active" | "captured" | "released" | "expired";

export interface HoldRecord {
  id: string;
  account_id: string;
  amount: bigint;
  /** What is still held, per grant, in burn-down order. Sums to the `hold:<id>` journal balance. */
  parts: Part[];
  status: HoldStatus;
  expires_at: number;
  created_at: number;
  closed_at: number | null;
  captured_amount: bigint;
  /** The usage created by the capture. */
  usage_id: string | null;
  metadata: Metadata;
  request: string;
}

export interface UsagePart extends Part {
  refunded: bigint;
}

export interface UsageRecord {
  /** Client-chosen event id: the idempotency key, kept forever. */
  id: string;
  account_id: string;
  service: string;
  quantity: string | null;
  cost: bigint;
  /** Part of the cost not covered by grants (overage policy allow). */
  overage: bigint;
  overage_refunded: bigint;
  refunded: bigint;
  parts: UsagePart[];
  hold_id: string | null;
  occurred_at: number;
  recorded_at: number;
  metadata: Metadata;
  txn_id: string;
}

export interface RefundRecord {
  id: string;
  usage_id: string;
  account_id: string;
  amount: bigint;
  reason: string | null;
  created_at: number;
  txn_id: string;
  request: string;
}

export type TxnKind =
  "grant" | "debit" | "hold" | "capture" | "release" | "hold_expiry" | "refund" | "expiry" | "void";

/** One leg of a journal transaction. The legs of a transaction sum to zero. */
export interface Posting {
  txn_id: string;
  account_id: string;
  /** Ledger account: issued, consumed, expired, voided, overage, grant:<id>, hold:<id>. */
  ledger: string;
  amount: bigint;
  kind: TxnKind;
  /** The object the transaction is about: grant, usage, hold or refund id. */
  ref: string;
  /** Effective time (expiries are effective at expires_at even when swept late). */
  at: number;
}

export interface JournalEntry extends Posting {
  seq: number;
}

/** A spend cap as a batch sees it: its limit and what was spent in the current cycle (src/budgets). */
export interface BudgetState {
  id: string;
  account_id: string;
  /** null: every usage of the account; else only usage through this API key. */
  api_key_id: string | null;
  limit: bigint;
  cycle_start: number;
  spent: bigint;
}

// ---------- commands ----------

export interface CreateAccountInput {
  id?: string;
  overage_policy?: OveragePolicy;
  overage_limit?: bigint | null;
  metadata?: Metadata;
}

export interface GrantInput {
  /** Optional client-chosen id; makes the call idempotent. */
  id?: string;
  account_id: string;
  kind: GrantKind;
  amount: bigint;
  priority?: number;
  effective_at?: number;
  expires_at?: number | null;
  metadata?: Metadata;
  reference?: string | null;
  source?: string | null;
  /** Outbox events written with this change, only if it applies (never on a replay); not compared on replay. */
  events?: EventDraft[];
}

export interface DebitInput {
  /** Client-chosen event id: the idempotency key. */
  id: string;
  account_id: string;
  amount: bigint;
  service: string;
  quantity?: string | null;
  metadata?: Metadata;
  occurred_at?: number;
  /** The API key the usage came through: its budgets apply too (not part of the idempotency comparison). */
  api_key_id?: string | null;
  /** Outbox events written with this change, only if it applies (never on a replay); not compared on replay. */
  events?: EventDraft[];
}

export interface HoldInput {
  id?: string;
  account_id: string;
  amount: bigint;
  /** Lifetime from now; or give expires_at. Bounded by MAX_HOLD_TTL_MS. */
  ttl_ms?: number;
  expires_at?: number;
  metadata?: Metadata;
  /** Outbox events written with this change, only if it applies (never on a replay); not compared on replay. */
  events?: EventDraft[];
}

export interface CaptureInput {
  hold_id: string;
  /** Final amount; may be less than, equal to or more than the held amount. */
  amount: bigint;
  /** Usage id of the resulting usage (idempotency key); defaults to one derived from the hold. */
  usage_id?: string;
  service: string;
  quantity?: string | null;
  metadata?: Metadata;
  /** Outbox events written with this change, only if it applies (never on a replay); not compared on replay. */
  events?: EventDraft[];
}

/**
 * Adds credits to an active hold (drawn by burn-down, all or nothing) and/or moves its expiry (live
 * sessions extend their hold on every update). `from_amount` makes it safe to retry and to race: the
 * hold's total must be `from_amount` before (or already `from_amount + amount`: a replay).
 */
export interface ExtendHoldInput {
  hold_id: string;
  /** More credits to hold (0: only move the expiry). */
  amount: bigint;
  from_amount?: bigint;
  /** New expiry; never earlier than the current one. */
  expires_at?: number;
}

/**
 * Captures part of an active hold and keeps it open with the rest (a live session's periodic debit).
 * The usage id is the idempotency key: the same id and content is a replay.
 */
export interface CapturePartInput {
  hold_id: string;
  /** At most what the hold still holds. */
  amount: bigint;
  usage_id: string;
  service: string;
  quantity?: string | null;
  metadata?: Metadata;
  /** Compare-and-set: the hold's captured_amount must be this before (else idempotency_conflict). */
  from_captured?: bigint;
}

export interface RefundInput {
  id?: string;
  usage_id: string;
  /** Defaults to everything not yet refunded. */
  amount?: bigint;
  reason?: string | null;
  /** Outbox events written with this change, only if it applies (never on a replay); not compared on replay. */
  events?: EventDraft[];
}

export type Command =
  | { type: "create_account"; input: CreateAccountInput }
  | { type: "grant"; input: GrantInput }
  | { type: "void_grant"; grant_id: string; reason?: string | null }
  | { type: "debit"; input: DebitInput }
  | { type: "hold"; input: HoldInput }
  | { type: "capture"; input: CaptureInput }
  | { type: "release"; hold_id: string }
  | { type: "extend_hold"; input: ExtendHoldInput }
  | { type: "capture_part"; input: CapturePartInput }
  | { type: "refund"; input: RefundInput }
  | { type: "settle"; account_id: string }
  | { type: "set_account_status"; account_id: string; status: AccountStatus }
  | {
      type: "set_account_overage";
      account_id: string;
      overage_policy: OveragePolicy;
      overage_limit: bigint | null;
    }
  | { type: "reclassify_grant"; grant_id: string; kind: GrantKind; priority: number };

// ---------- results ----------

export interface DebitResult {
  usage: UsageRecord;
  replay: boolean;
}

export interface HoldResult {
  hold: HoldRecord;
  replay: boolean;
}

export interface CaptureResult {
  hold: HoldRecord;
  usage: UsageRecord;
  replay: boolean;
}

export interface RefundResult {
  refund: RefundRecord;
  usage: UsageRecord;
  replay: boolean;
}

export interface GrantResult {
  grant: GrantRecord;
  replay: boolean;
}

export interface AccountResult {
  account: AccountRecord;
  replay: boolean;
}

export interface SettleResult {
  expired_grants: number;
  expired_holds: number;
}

export interface Balance {
  account_id: string;
  at: number;
  /** available + held */
  total: bigint;
  /** Spendable now: unexpired, effective grant remainders not set aside by a hold. */
  available: bigint;
  held: bigint;
  /** Outstanding overage (allow policy). */
  overage: bigint;
  /** Available by grant kind. */
  by_kind: Record<GrantKind, bigint>;
  /** Granted but not effective yet. */
  scheduled: bigint;
}

/** Limits on everything. */
export const LIMITS = {
  MAX_HOLD_TTL_MS: 7 * 24 * 3600_000,
  DEFAULT_HOLD_TTL_MS: 15 * 60_000,
  MAX_ID_LENGTH: 128,
  MAX_SERVICE_LENGTH: 64,
  MAX_METADATA_BYTES: 4096,
  MAX_PAGE_SIZE: 1000,
  DEFAULT_PAGE_SIZE: 100,
  MAX_BATCH_EVENTS: 1000,
  MAX_PRIORITY: 100,
} as const;
