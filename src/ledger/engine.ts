import { computeBalance } from "../domain/balance.ts";
import { isExpiredAt } from "../domain/burndown.ts";
import { systemClock, type Clock } from "../domain/clock.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { EntryQuery, Page, Store, UsageQuery } from "../store/types.ts";
import type { CommitInfo, CommitListener, EventDraft, EventQuery, EventRecord } from "../events/types.ts";
import { EVENT_LIMITS } from "../events/types.ts";
import { runAudit, type AuditReport } from "./audit.ts";
import { GroupCommitter, type GroupCommitOptions } from "./group-commit.ts";
import {
  LIMITS,
  type AccountRecord,
  type AccountResult,
  type Balance,
  type CaptureInput,
  type CapturePartInput,
  type CaptureResult,
  type ExtendHoldInput,
  type Command,
  type GrantKind,
  type OveragePolicy,
  type CreateAccountInput,
  type DebitInput,
  type DebitResult,
  type GrantInput,
  type GrantRecord,
  type GrantResult,
  type HoldInput,
  type HoldRecord,
  type HoldResult,
  type JournalEntry,
  type RefundInput,
  type RefundResult,
  type SettleResult,
  type UsageRecord,
} from "./types.ts";
import { checkEvents, validateCommand } from "./validate.ts";
import { ThreadExecutor } from "./writer-thread.ts";
import { BACKSTOP_CHECKPOINT_PAGES } from "./writer-wire.ts";
import type { SqlMode, SqliteStore } from "../store/sqlite/store.ts";

/** The file of a SQLite store (null for PostgreSQL and for an in-memory database, which no thread can share). */
function sqliteFile(store: Store): string | null {
  if (store.dialect !== "sqlite") return null;
  const path = (store as { path?: unknown }).path;
  return typeof path === "string" && path !== ":memory:" ? path : null;
}

export interface EngineOptions {
  clock?: Clock;
  groupCommit?: Partial<GroupCommitOptions>;
  /**
   * Where SQLite ledger transactions run: `thread` (the default for a SQLite file) on a writer thread with
   * its own connection, so commits never block the event loop; `inline` on the store's own connection.
   * PostgreSQL and in-memory SQLite always run inline.
   */
  sqliteWriter?: "thread" | "inline";
}

export type BatchItem<T> = { ok: true; value: T } | { ok: false; error: TallyError };

/**
 * The ledger engine: validates commands, runs them through group commit against the store, and answers
 * reads. Every write is atomic; concurrent callers share transactions and durable commits.
 */
export class Engine {
  readonly clock: Clock;
  readonly committer: GroupCommitter;
  private readonly listeners = new Set<CommitListener>();
  /** Stops routing the store's other writes to this engine's writer thread (at close). */
  private releaseWriter: () => void = () => {};

  constructor(
    readonly store: Store,
    opts: EngineOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    const lanes = store.dialect === "sqlite" ? 1 : 4;
    const file = sqliteFile(store);
    const thread = file !== null && (opts.sqliteWriter ?? "thread") === "thread";
    // The checkpoint thread keeps the WAL short: this connection must not checkpoint inside its own commits.
    if (thread) (store as SqliteStore).setAutoCheckpoint(BACKSTOP_CHECKPOINT_PAGES);
    const executor = thread ? new ThreadExecutor(file) : null;
    if (executor) {
      // The store's other writes (idempotency records, settings, webhooks…) join the writer's commits.
      const writer = (sql: string, params: unknown[], mode: SqlMode) => executor.sql(sql, params, mode);
      (store as SqliteStore).writer = writer;
      this.releaseWriter = () => {
        if ((store as SqliteStore).writer === writer) (store as SqliteStore).writer = null;
      };
    }
    this.committer = new GroupCommitter(store, this.clock, {
      ...(executor ? { executor } : {}),
      maxBatch: 1000,
      maxWaitMs: 2,
      lanes,
      retries: 3,
      ...opts.groupCommit,
      onCommit: (info) => this.notify(info),
    });
  }

  /**
   * Calls `listener` after every durable commit in this process with the accounts it changed and the
   * events it wrote (live streams, alerts, auto-recharge). Returns the unsubscribe function.
   */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(info: CommitInfo): void {
    for (const l of this.listeners) {
      try {
        l(info);
      } catch {
        // One listener's failure must not keep the others from hearing about the commit.
      }
    }
  }

  /** Writes events that come with no ledger change (their own transaction) and tells the listeners. */
  async publish(drafts: readonly EventDraft[]): Promise<EventRecord[]> {
    checkEvents([...drafts], EVENT_LIMITS.MAX_PAGE_SIZE);
    const events = await this.store.appendEvents(drafts, this.clock.now());
    const accounts = [...new Set(events.flatMap((e) => (e.account_id ? [e.account_id] : [])))];
    this.notify({ account_ids: accounts, events });
    return events;
  }

  /** Outbox events in commit order. */
  listEvents(q: Omit<EventQuery, "limit"> & { limit?: number }): Promise<EventRecord[]> {
    const limit = q.limit ?? LIMITS.DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > EVENT_LIMITS.MAX_PAGE_SIZE)
      throw TallyError.validation("limit", `must be an integer from 1 to ${EVENT_LIMITS.MAX_PAGE_SIZE}`);
    return this.store.listEvents({ ...q, limit });
  }

  private run<T>(cmd: Command): Promise<T> {
    try {
      validateCommand(cmd);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.committer.submit(withId(cmd, this.clock.now())) as Promise<T>;
  }

  createAccount(input: CreateAccountInput = {}): Promise<AccountResult> {
    return this.run({ type: "create_account", input });
  }

  /** Suspended accounts take no usage and no holds until reactivated. */
  suspendAccount(accountId: string): Promise<AccountResult> {
    return this.run({ type: "set_account_status", account_id: accountId, status: "suspended" });
  }

  reactivateAccount(accountId: string): Promise<AccountResult> {
    return this.run({ type: "set_account_status", account_id: accountId, status: "active" });
  }

  /** Final: a closed account takes no grants, usage or holds; its history stays. */
  closeAccount(accountId: string): Promise<AccountResult> {
    return this.run({ type: "set_account_status", account_id: accountId, status: "closed" });
  }

  /** Sets an account's overage policy and limit (plans decide them). */
  setAccountOverage(
    accountId: string,
    overagePolicy: OveragePolicy,
    overageLimit: bigint | null,
  ): Promise<AccountResult> {
    return this.run({
      type: "set_account_overage",
      account_id: accountId,
      overage_policy: overagePolicy,
      overage_limit: overageLimit,
    });
  }

  /** Changes a live grant's kind and priority (no credits move). Setting what is set is a replay. */
  reclassifyGrant(grantId: string, kind: GrantKind, priority: number): Promise<GrantResult> {
    return this.run({ type: "reclassify_grant", grant_id: grantId, kind, priority });
  }

  grant(input: GrantInput): Promise<GrantResult> {
    return this.run({ type: "grant", input });
  }

  voidGrant(grantId: string, reason?: string): Promise<GrantResult> {
    return this.run({ type: "void_grant", grant_id: grantId, reason: reason ?? null });
  }

  debit(input: DebitInput): Promise<DebitResult> {
    return this.run({ type: "debit", input });
  }

  /** Many debits in one call; each gets its own result, and one refusal does not affect the others. */
  async debitBatch(inputs: readonly DebitInput[]): Promise<BatchItem<DebitResult>[]> {
    if (inputs.length > LIMITS.MAX_BATCH_EVENTS)
      throw TallyError.validation("events", `must hold at most ${LIMITS.MAX_BATCH_EVENTS} events`);
    const settled = await Promise.allSettled(inputs.map((i) => this.debit(i)));
    return settled.map((s) => {
      if (s.status === "fulfilled") return { ok: true, value: s.value };
      if (s.reason instanceof TallyError) return { ok: false, error: s.reason };
      throw s.reason;
    });
  }

  hold(input: HoldInput): Promise<HoldResult> {
    return this.run({ type: "hold", input });
  }

  capture(input: CaptureInput): Promise<CaptureResult> {
    return this.run({ type: "capture", input });
  }

  release(holdId: string): Promise<HoldResult> {
    return this.run({ type: "release", hold_id: holdId });
  }

  /** Adds credits to an active hold and/or pushes its expiry (see ExtendHoldInput). */
  extendHold(input: ExtendHoldInput): Promise<HoldResult> {
    return this.run({ type: "extend_hold", input });
  }

  /** Captures part of an active hold, which stays open with the rest (see CapturePartInput). */
  capturePart(input: CapturePartInput): Promise<CaptureResult> {
    return this.run({ type: "capture_part", input });
  }

  refund(input: RefundInput): Promise<RefundResult> {
    return this.run({ type: "refund", input });
  }

  /** Writes off what is due on one account (grant expiries, hold expiries). */
  settle(accountId: string): Promise<SettleResult> {
    return this.run({ type: "settle", account_id: accountId });
  }

  /** The expiry sweep: settles every account with something due, in rounds of `limit` accounts. */
  async sweep(limit = 500): Promise<SettleResult & { accounts: number }> {
    const total = { expired_grants: 0, expired_holds: 0, accounts: 0 };
    for (let round = 0; round < 1000; round++) {
      const due = await this.store.findDueAccounts(this.clock.now(), limit);
      if (due.length === 0) break;
      const results = await Promise.all(due.map((id) => this.settle(id)));
      for (const r of results) {
        total.expired_grants += r.expired_grants;
        total.expired_holds += r.expired_holds;
      }
      total.accounts += due.length;
      if (due.length < limit) break;
    }
    return total;
  }

  // ---------- reads ----------

  async getAccount(id: string): Promise<AccountRecord> {
    const a = await this.store.getAccount(id);
    if (!a) throw TallyError.notFound("account", id, "account_id");
    return a;
  }

  async getGrant(id: string): Promise<GrantRecord> {
    const g = await this.store.getGrant(id);
    if (!g) throw TallyError.notFound("grant", id, "grant_id");
    return asOf(g, this.clock.now());
  }

  async getHold(id: string): Promise<HoldRecord> {
    const h = await this.store.getHold(id);
    if (!h) throw TallyError.notFound("hold", id, "hold_id");
    return h;
  }

  async getUsage(id: string): Promise<UsageRecord> {
    const u = await this.store.getUsage(id);
    if (!u) throw TallyError.notFound("usage", id, "usage_id");
    return u;
  }

  /**
   * Balance at an instant (default: now). Now comes from the live grant remainders; another instant is
   * recomputed from the journal. Expired credits are excluded even before the sweep writes them off.
   */
  async balance(accountId: string, at?: number): Promise<Balance> {
    const now = this.clock.now();
    if (at === undefined || at === now) {
      const st = await this.store.accountState(accountId);
      if (!st) throw TallyError.notFound("account", accountId, "account_id");
      return computeBalance(accountId, st.grants, st.holds, st.account.overage_balance, now);
    }
    const js = await this.store.journalState(accountId, at);
    if (!js) throw TallyError.notFound("account", accountId, "account_id");
    // A grant's status as it was at `at` (expiry is judged by the clock in computeBalance).
    const grants = js.grants.map((g) => ({
      ...g,
      status:
        g.status === "voided" && g.closed_at !== null && g.closed_at <= at
          ? ("voided" as const)
          : ("active" as const),
      remaining: js.sums.get(`grant:${g.id}`) ?? 0n,
    }));
    const holds = js.holds.map((h) => {
      const held = js.sums.get(`hold:${h.id}`) ?? 0n;
      // Still held at `at`: only the amount matters. Past its expiry but unsettled: its parts are current.
      const parts = h.expires_at > at ? [{ grant_id: "", kind: "purchase" as const, amount: held }] : h.parts;
      return { ...h, status: "active" as const, parts };
    });
    return computeBalance(accountId, grants, holds, -(js.sums.get("overage") ?? 0n), at);
  }

  async listUsages(q: Omit<UsageQuery, "limit"> & { limit?: number }): Promise<Page<UsageRecord>> {
    return this.store.listUsages({ ...q, limit: pageSize(q.limit) });
  }

  async listEntries(q: Omit<EntryQuery, "limit"> & { limit?: number }): Promise<Page<JournalEntry>> {
    return this.store.listEntries({ ...q, limit: pageSize(q.limit) });
  }

  async listAccounts(q: { cursor?: string; limit?: number } = {}): Promise<Page<AccountRecord>> {
    return this.store.listAccounts(q.cursor, pageSize(q.limit));
  }

  async listGrants(accountId: string): Promise<GrantRecord[]> {
    const now = this.clock.now();
    return (await this.store.listGrants(accountId)).map((g) => asOf(g, now));
  }

  audit(): Promise<AuditReport> {
    return runAudit(this.store);
  }

  /** Waits for queued commands to commit. */
  drain(): Promise<void> {
    return this.committer.drain();
  }

  /** Finishes in-flight commits, then closes the store. */
  async close(): Promise<void> {
    // Writes made while the last batches drain go to the store's own connection, never to a closing thread.
    this.releaseWriter();
    await this.committer.close();
    await this.store.close();
  }
}

/**
 * Gives every creating command its id before it runs, so that re-running it after an ambiguous store
 * failure (a batch re-run command by command) is a replay, never a second grant, hold or refund.
 */
function withId(cmd: Command, now: number): Command {
  switch (cmd.type) {
    case "create_account":
      return cmd.input.id ? cmd : { ...cmd, input: { ...cmd.input, id: newId("acct", now) } };
    case "grant":
      return cmd.input.id ? cmd : { ...cmd, input: { ...cmd.input, id: newId("grt", now) } };
    case "hold":
      return cmd.input.id ? cmd : { ...cmd, input: { ...cmd.input, id: newId("hld", now) } };
    case "refund":
      return cmd.input.id ? cmd : { ...cmd, input: { ...cmd.input, id: newId("rfd", now) } };
    default:
      return cmd;
  }
}

/**
 * A grant as it stands at `now`: one used up before its expiry has nothing to write off, so no sweep
 * touches it; past its expiry it is expired all the same.
 */
function asOf(g: GrantRecord, now: number): GrantRecord {
  if (g.status === "active" && isExpiredAt(g, now))
    return { ...g, status: "expired", closed_at: g.expires_at };
  return g;
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return LIMITS.DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.MAX_PAGE_SIZE)
    throw TallyError.validation("limit", `must be an integer from 1 to ${LIMITS.MAX_PAGE_SIZE}`);
  return limit;
}
