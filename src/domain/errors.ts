/**
 * The closed list of error codes. Every expected failure in Tally carries one of these.
 * The HTTP layer maps each code to exactly one status in one place.
 */
export const ERROR_CODES = [
  "validation_error",
  "not_found",
  "insufficient_credits",
  "idempotency_conflict",
  "account_not_active",
  "grant_not_active",
  "hold_not_active",
  "hold_expired",
  "refund_exceeds_usage",
  "unauthorized",
  "forbidden",
  "rate_limited",
  "payload_too_large",
  "budget_exceeded",
  "subscription_conflict",
  "checkout_not_open",
  "purchase_not_refundable",
  "payment_provider_error",
  "session_not_active",
  "session_limit_reached",
  "internal_error",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorDetails {
  field?: string;
  /** Micro-credits still missing, for insufficient_credits. */
  shortfall?: bigint;
  [key: string]: unknown;
}

export class TallyError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = "TallyError";
    this.code = code;
    this.details = details;
  }

  get field(): string | undefined {
    return this.details.field;
  }

  static validation(field: string, problem: string): TallyError {
    return new TallyError("validation_error", `${field} ${problem}`, { field });
  }

  static notFound(what: string, id: string, field: string): TallyError {
    return new TallyError("not_found", `${what} ${id} does not exist`, { field, id });
  }

  toJSON(): Record<string, unknown> {
    const details: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.details)) details[k] = typeof v === "bigint" ? v.toString() : v;
    return { code: this.code, message: this.message, ...details };
  }
}

export function isTallyError(e: unknown): e is TallyError {
  return e instanceof TallyError;
}

/** Invariant that must never break; a failure is a bug, never an expected outcome. */
export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}
