import type { Direction, HoldInterval } from "../domain/sessions.ts";
import type { Metadata } from "../ledger/types.ts";

export type SessionStatus = "active" | "ended" | "abandoned";

/**
 * A live session (a call). Usage facts live here; the money lives in the ledger hold `hold_id` (what is
 * held and what was already captured are read from the hold, the source of truth).
 */
export interface SessionRecord {
  id: string;
  account_id: string;
  service: string;
  direction: Direction;
  status: SessionStatus;
  /** Null for a free call (nothing to hold). */
  hold_id: string | null;
  /**
   * The hold's total (held + captured) and expiry as this service last wrote them: the compare-and-set
   * values of the next ledger command (a stale value is refused by the ledger, then read again).
   */
  hold_amount: bigint;
  hold_expires_at: number;
  /** The rate card version in force at the start: the whole call is priced by it. */
  rate_version: number;
  metadata: Metadata;
  grant_seconds: number;
  validity_seconds: number;
  debit_interval_seconds: number;
  answered_at: number | null;
  holds: HoldInterval[];
  /** Last reported billable seconds. */
  used_seconds: number;
  /** Billable seconds the held and committed credits cover. */
  authorized_seconds: number;
  /** Billable seconds already captured by the periodic debit, and the usages that did it. */
  committed_seconds: number;
  committed_amount: bigint;
  commit_usage_ids: string[];
  /** A final grant was given (the caller was told to wrap up). */
  final: boolean;
  /** An update must come before this, or the session is settled as abandoned. */
  valid_until: number;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  /** At the end: billable seconds of the whole call, the seconds charged (≤ billable when the balance ran out), the amount. */
  billable_seconds: number | null;
  charged_seconds: number | null;
  charged_amount: bigint | null;
  /** Optimistic concurrency: every write is conditional on the version read. */
  version: number;
}

export interface SessionQuery {
  account_id: string;
  status?: SessionStatus;
  cursor?: string;
  limit: number;
}

/** Sessions on one store. Writes are conditional, so several processes can serve the same sessions. */
export interface SessionStore {
  /** Inserts unless the account already has `maxConcurrent` active sessions (atomic across processes). */
  insert(s: SessionRecord, maxConcurrent: number | null): Promise<boolean>;
  get(id: string): Promise<SessionRecord | null>;
  /** Writes `s` (with s.version = expected + 1) if the stored version is still `expectedVersion`. */
  update(s: SessionRecord, expectedVersion: number): Promise<boolean>;
  listActive(accountId: string): Promise<SessionRecord[]>;
  /** One account's active sessions whose validity ran out. */
  listDueOf(accountId: string, now: number): Promise<SessionRecord[]>;
  countActive(accountId: string): Promise<number>;
  /** Active sessions whose validity ran out, oldest deadline first. */
  listDue(now: number, limit: number): Promise<SessionRecord[]>;
  list(q: SessionQuery): Promise<{ data: SessionRecord[]; next_cursor: string | null }>;
}

export function encodeSession(s: SessionRecord): string {
  return JSON.stringify(s, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

export function decodeSession(text: string): SessionRecord {
  const o = JSON.parse(text) as SessionRecord & Record<string, unknown>;
  o.committed_amount = BigInt(o.committed_amount as unknown as string);
  o.hold_amount = BigInt(o.hold_amount as unknown as string);
  o.charged_amount = o.charged_amount === null ? null : BigInt(o.charged_amount as unknown as string);
  return o;
}
