import { toApi } from "../domain/api-json.ts";
import { invariant } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { EventDraft, PendingEvent } from "../events/types.ts";
import type {
  AccountRecord,
  BudgetState,
  GrantRecord,
  HoldRecord,
  Posting,
  RefundRecord,
  TxnKind,
  UsageRecord,
} from "./types.ts";

/** What a batch loads before it runs: every record its commands may read, for the accounts they touch. */
export interface Snapshot {
  accounts: AccountRecord[];
  /** Active grants with something left, of the loaded accounts, plus grants named by id or by loaded parts. */
  grants: GrantRecord[];
  /** Holds named by id, plus active holds of the loaded accounts that are due to expire. */
  holds: HoldRecord[];
  usages: UsageRecord[];
  refunds: RefundRecord[];
  /** Budgets of the loaded accounts with their spend in the current cycle (stores that have them). */
  budgets?: BudgetState[];
}

/** Ids a batch needs loaded. */
export interface LoadKeys {
  accountIds: Set<string>;
  grantIds: Set<string>;
  holdIds: Set<string>;
  usageIds: Set<string>;
  /**
   * Records named by commands that do not name their account (void, capture, release, refund): stores that
   * lock by account look up whose they are first. Creating commands name their account.
   */
  resolve: { usages: Set<string>; holds: Set<string>; grants: Set<string> };
  refundIds: Set<string>;
}

export function emptyKeys(): LoadKeys {
  return {
    accountIds: new Set(),
    grantIds: new Set(),
    holdIds: new Set(),
    usageIds: new Set(),
    resolve: { usages: new Set(), holds: new Set(), grants: new Set() },
    refundIds: new Set(),
  };
}

/** Everything a batch writes, in one durable transaction. */
export interface ChangeSet {
  accounts: { inserted: AccountRecord[]; updated: AccountRecord[] };
  grants: { inserted: GrantRecord[]; updated: GrantRecord[] };
  holds: { inserted: HoldRecord[]; updated: HoldRecord[] };
  usages: { inserted: UsageRecord[]; updated: UsageRecord[] };
  refunds: { inserted: RefundRecord[] };
  postings: Posting[];
  /** Outbox events, written in the same transaction. */
  events: PendingEvent[];
  /** Amounts to add to budget spend counters. */
  budget_charges?: BudgetCharge[];
}

export interface BudgetCharge {
  budget_id: string;
  cycle_start: number;
  amount: bigint;
}

class Table<T extends { id: string; account_id?: string }> {
  readonly rows = new Map<string, T>();
  readonly inserted = new Set<string>();
  readonly dirty = new Set<string>();
  private readonly byAccount = new Map<string, T[]>();

  load(row: T): void {
    if (this.rows.has(row.id)) return;
    this.rows.set(row.id, row);
    this.index(row);
  }
  get(id: string): T | undefined {
    return this.rows.get(id);
  }
  ofAccount(accountId: string): readonly T[] {
    return this.byAccount.get(accountId) ?? [];
  }
  insert(row: T): void {
    invariant(!this.rows.has(row.id), `duplicate insert of ${row.id}`);
    this.rows.set(row.id, row);
    this.inserted.add(row.id);
    this.index(row);
  }
  private index(row: T): void {
    if (row.account_id === undefined) return;
    const list = this.byAccount.get(row.account_id);
    if (list) list.push(row);
    else this.byAccount.set(row.account_id, [row]);
  }
  touch(id: string): void {
    invariant(this.rows.has(id), `update of unknown ${id}`);
    if (!this.inserted.has(id)) this.dirty.add(id);
  }
  changes(): { inserted: T[]; updated: T[] } {
    return {
      inserted: [...this.inserted].map((id) => this.rows.get(id)!),
      updated: [...this.dirty].map((id) => this.rows.get(id)!),
    };
  }
}

/**
 * The in-memory state a batch works on: the snapshot, mutated by each command in turn, with every
 * change tracked so the store can write it in bulk.
 */
export class Working {
  readonly accounts = new Table<AccountRecord>();
  readonly grants = new Table<GrantRecord>();
  readonly holds = new Table<HoldRecord>();
  readonly usages = new Table<UsageRecord>();
  readonly refunds = new Table<RefundRecord>();
  readonly postings: Posting[] = [];
  readonly events: PendingEvent[] = [];
  /** Accounts whose due expiries were already written in this batch. */
  readonly settled = new Set<string>();
  /** Budgets by account, and the charges made to them in this batch (src/ledger/budgets.ts). */
  readonly budgets = new Map<string, BudgetState[]>();
  readonly budgetCharges = new Map<string, BudgetCharge>();

  constructor(snap: Snapshot) {
    for (const b of snap.budgets ?? []) {
      const list = this.budgets.get(b.account_id);
      if (list) list.push({ ...b });
      else this.budgets.set(b.account_id, [{ ...b }]);
    }
    for (const a of snap.accounts) this.accounts.load(a);
    for (const g of snap.grants) this.grants.load(g);
    for (const h of snap.holds) this.holds.load(h);
    for (const u of snap.usages) this.usages.load(u);
    for (const r of snap.refunds) this.refunds.load(r);
  }

  grantsOf(accountId: string): readonly GrantRecord[] {
    return this.grants.ofAccount(accountId);
  }

  holdsOf(accountId: string): readonly HoldRecord[] {
    return this.holds.ofAccount(accountId);
  }

  /** Appends one balanced journal transaction. */
  post(
    txnId: string,
    accountId: string,
    kind: TxnKind,
    ref: string,
    at: number,
    legs: [string, bigint][],
  ): void {
    let sum = 0n;
    for (const [, amount] of legs) sum += amount;
    invariant(sum === 0n, `transaction ${txnId} does not balance (${sum})`);
    for (const [ledger, amount] of legs) {
      if (amount === 0n) continue;
      this.postings.push({ txn_id: txnId, account_id: accountId, ledger, amount, kind, ref, at });
    }
  }

  /** Adds an outbox event; `data` is turned into API JSON (credits as decimal strings, ISO times). */
  emit(type: string, accountId: string | null, data: Record<string, unknown>, now: number): void {
    this.events.push({
      id: newId("evt", now),
      type,
      account_id: accountId,
      data: toApi(data) as EventDraft["data"],
      created_at: now,
    });
  }

  /** Adds events a command carries (already validated API JSON). */
  emitDrafts(drafts: readonly EventDraft[] | undefined, now: number): void {
    for (const d of drafts ?? [])
      this.events.push({
        id: newId("evt", now),
        type: d.type,
        account_id: d.account_id,
        data: d.data,
        created_at: now,
      });
  }

  changes(): ChangeSet {
    return {
      accounts: this.accounts.changes(),
      grants: this.grants.changes(),
      holds: this.holds.changes(),
      usages: this.usages.changes(),
      refunds: { inserted: this.refunds.changes().inserted },
      postings: this.postings,
      events: this.events,
      budget_charges: [...this.budgetCharges.values()],
    };
  }
}

export function copyUsage(u: UsageRecord): UsageRecord {
  return { ...u, parts: u.parts.map((p) => ({ ...p })) };
}
export function copyHold(h: HoldRecord): HoldRecord {
  return { ...h, parts: h.parts.map((p) => ({ ...p })) };
}
