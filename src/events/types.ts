import type { Metadata } from "../ledger/types.ts";

/**
 * The events outbox. Every event is written in the same transaction as the change that causes it, so an
 * event exists exactly when its change does; consumers (webhooks, alerts, live streams) read it by seq.
 */
export interface EventDraft {
  /** `<object>.<past-tense verb>`, e.g. grant.created, subscription.renewed. */
  type: string;
  account_id: string | null;
  /** API-shaped payload: amounts as credit decimal strings, times as ISO 8601 (see toEventData). */
  data: Metadata;
}

/** An event as the ledger drafts it inside a batch: its id and time are fixed before the commit. */
export interface PendingEvent extends EventDraft {
  id: string;
  created_at: number;
}

export interface EventRecord extends PendingEvent {
  /** Position in the outbox: strictly increasing in commit order as readers see it. */
  seq: number;
}

export interface EventQuery {
  /** Only events after this position. */
  after_seq?: number;
  account_id?: string;
  types?: readonly string[];
  limit: number;
}

/** Limits on what a command may carry and what one page returns. */
export const EVENT_LIMITS = {
  MAX_EVENTS_PER_COMMAND: 10,
  MAX_TYPE_LENGTH: 64,
  MAX_DATA_BYTES: 8192,
  MAX_PAGE_SIZE: 1000,
} as const;

export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/** Event types the ledger itself emits. Others (plans, purchases, sessions, alerts) add their own. */
export const LEDGER_EVENT_TYPES = [
  "account.created",
  "account.status_changed",
  "grant.created",
  "grant.voided",
  "grant.expired",
  "hold.expired",
  "usage.refunded",
] as const;

/** Called after every durable commit, in the process that committed it. */
export interface CommitInfo {
  /** Accounts whose balance or records the commit changed. */
  account_ids: string[];
  events: PendingEvent[];
}
export type CommitListener = (info: CommitInfo) => void;
