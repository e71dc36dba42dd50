import { TallyError } from "../domain/errors.ts";
import type {
  AccountRecord,
  GrantKind,
  GrantRecord,
  HoldRecord,
  JournalEntry,
  RefundRecord,
  UsageRecord,
} from "../ledger/types.ts";
import type { EventDraft, EventQuery, EventRecord } from "../events/types.ts";
import type { ChangeSet, LoadKeys, Snapshot } from "../ledger/working.ts";

export type Dialect = "sqlite" | "postgres";

/** A pay-as-you-go checkout: what the customer pays and the credits it will receive once paid. */
export interface CheckoutSession {
  id: string;
  account_id: string;
  amount_cents: bigint;
  currency: string;
  /** Micro-credits to grant on payment. */
  credits: bigint;
  status: "open" | "paid" | "canceled" | "expired";
  provider: string;
  created_at: number;
  expires_at: number;
}

export interface Page<T> {
  data: T[];
  /** Opaque cursor for the next page; null when this is the last page. */
  next_cursor: string | null;
}

export interface UsageQuery {
  account_id: string;
  service?: string;
  /** recorded_at >= from */
  from?: number;
  /** recorded_at < to */
  to?: number;
  /** Usages that drew at least partly from this kind of grant ("overage" for the uncovered part). */
  credit_source?: GrantKind | "overage";
  cursor?: string;
  limit: number;
}

export interface EntryQuery {
  account_id: string;
  cursor?: string;
  limit: number;
}

/** What a balance needs: the account, its live grants and its active holds (with the grants they hold from). */
export interface AccountState {
  account: AccountRecord;
  grants: GrantRecord[];
  holds: HoldRecord[];
}

/** Journal sums of one account up to an instant, by ledger account. */
export interface JournalState {
  account: AccountRecord;
  sums: Map<string, bigint>;
  grants: GrantRecord[];
  holds: HoldRecord[];
}

/** A discrepancy the store's audit queries found. */
export interface AuditFinding {
  check: string;
  id: string;
  expected: string;
  actual: string;
}

export interface AuditFacts {
  counts: {
    transactions: number;
    postings: number;
    grants: number;
    holds: number;
    usages: number;
    accounts: number;
  };
  totals: Record<string, bigint>;
  findings: AuditFinding[];
}

/**
 * One interface over SQLite and PostgreSQL. Writes happen only through `runBatch`: the store locks and
 * loads what the batch needs, the engine computes the changes in memory, and the store writes them in the
 * same transaction and commits durably once.
 */
export interface Store {
  readonly dialect: Dialect;
  /** Applies pending migrations; returns how many ran. */
  migrate(): Promise<number>;
  runBatch<T>(
    keys: LoadKeys,
    now: number,
    apply: (snap: Snapshot) => { changes: ChangeSet; result: T },
  ): Promise<T>;

  getAccount(id: string): Promise<AccountRecord | null>;
  listAccounts(cursor: string | undefined, limit: number): Promise<Page<AccountRecord>>;
  getGrant(id: string): Promise<GrantRecord | null>;
  listGrants(accountId: string): Promise<GrantRecord[]>;
  getHold(id: string): Promise<HoldRecord | null>;
  getUsage(id: string): Promise<UsageRecord | null>;
  /** Several usages by id in one query (missing ids are left out). */
  getUsages(ids: readonly string[]): Promise<UsageRecord[]>;
  getRefund(id: string): Promise<RefundRecord | null>;
  accountState(accountId: string): Promise<AccountState | null>;
  journalState(accountId: string, at: number): Promise<JournalState | null>;
  listUsages(q: UsageQuery): Promise<Page<UsageRecord>>;
  listEntries(q: EntryQuery): Promise<Page<JournalEntry>>;
  /** Accounts with a grant or hold past its expiry that is not written off yet. */
  findDueAccounts(now: number, limit: number): Promise<string[]>;
  auditFacts(): Promise<AuditFacts>;
  /** Lifetime figures of an account: credits consumed (net of refunds) and granted, by grant kind. */
  accountTotals(accountId: string): Promise<{ consumed: bigint; granted: Record<string, bigint> }>;
  insertCheckoutSession(s: CheckoutSession): Promise<void>;
  getCheckoutSession(id: string): Promise<CheckoutSession | null>;
  /** Server settings (operator key hash, rate card, …): a small key-value table. */
  getSetting(key: string): Promise<string | null>;
  putSetting(key: string, value: string): Promise<void>;
  /** Sets the value unless the key has one; returns the value in force (first writer wins, across processes). */
  putSettingIfAbsent(key: string, value: string): Promise<string>;
  /** Settings whose key starts with `prefix`, in key order. */
  listSettings(prefix: string): Promise<{ key: string; value: string }[]>;
  /** Writes events that come with no ledger change, in a transaction of their own. */
  appendEvents(drafts: readonly EventDraft[], now: number): Promise<EventRecord[]>;
  /** Outbox events in seq order (after `after_seq`, of one account, of some types). */
  listEvents(q: EventQuery): Promise<EventRecord[]>;
  /** Usages in insertion order, for audits that check each record. */
  scanUsages(afterSeq: number, limit: number): Promise<{ seq: number; usage: UsageRecord }[]>;
  close(): Promise<void>;
}

export function encodeCursor(seq: number | bigint | string): string {
  return Buffer.from(String(seq)).toString("base64url");
}

/** A position in a list ordered by sequence number; a malformed cursor is a validation error, never page one. */
export function decodeSeqCursor(cursor: string | undefined): string | null {
  return decode(cursor, /^[0-9]{1,18}$/);
}

/** A position in a list ordered by id. */
export function decodeIdCursor(cursor: string | undefined): string | null {
  return decode(cursor, /^[0-9A-Za-z_.:-]{1,128}$/);
}

function decode(cursor: string | undefined, shape: RegExp): string | null {
  if (cursor === undefined) return null;
  const text = typeof cursor === "string" ? Buffer.from(cursor, "base64url").toString() : "";
  if (!shape.test(text) || encodeCursor(text) !== cursor)
    throw TallyError.validation("cursor", "is not a cursor returned by this list");
  return text;
}
