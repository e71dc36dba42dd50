/**
 * Accounts and their live grants (active, something left) as this connection's last committed batch left
 * them, so the next batch need not read and decode them again (they were most of a batch's load).
 *
 * The cache is used only while nothing else has changed the database since that commit, checked inside the
 * next batch's write transaction: a commit by any other connection or process changes `PRAGMA
 * data_version`, and any other write on this connection (stores sharing it, raw SQL, work rolled back)
 * changes `total_changes()`. Otherwise, and after any failed batch, it starts empty. Records go in and out
 * as copies: the engine mutates the records it is given and hands some to callers.
 */
import type { AccountRecord, GrantRecord, Metadata } from "../../ledger/types.ts";
import type { ChangeSet } from "../../ledger/working.ts";
import { encodeMetadata } from "../codec.ts";

/** More accounts than this and the cache starts over (a bound on memory, not a tuning knob). */
const MAX_ACCOUNTS = 100_000;

export class LedgerCache {
  private readonly accounts = new Map<string, AccountRecord>();
  private readonly live = new Map<string, Map<string, GrantRecord>>();
  /** Every grant given to the current batch, as loaded: the base for its updates. */
  private readonly loaded = new Map<string, GrantRecord>();
  private token: string | null = null;

  /** Called at the start of a batch with the database's state; empties the cache if it changed. */
  begin(token: string): void {
    this.loaded.clear();
    if (token !== this.token) this.clear();
  }

  account(id: string): AccountRecord | undefined {
    const a = this.accounts.get(id);
    return a && { ...a, metadata: copyMetadata(a.metadata) };
  }

  /**
   * The account's live grants as copies for the batch, or undefined when the account is not cached. The
   * cached records stay the base of their updates: the batch never sees them, so they need no copy.
   */
  liveGrants(accountId: string): GrantRecord[] | undefined {
    const m = this.live.get(accountId);
    if (!m) return undefined;
    const copies: GrantRecord[] = [];
    for (const g of m.values()) {
      this.loaded.set(g.id, g);
      copies.push(copyGrant(g));
    }
    return copies;
  }

  /** An account read from the database in this batch, with all its live grants (so far none). */
  putAccount(a: AccountRecord): void {
    this.accounts.set(a.id, { ...a, metadata: copyMetadata(a.metadata) });
    this.live.set(a.id, new Map());
  }

  /** A grant given to the batch; a live grant of a cached account joins that account's set. */
  sawGrant(g: GrantRecord): void {
    const copy = copyGrant(g);
    this.loaded.set(g.id, copy);
    if (isLive(copy)) this.live.get(g.account_id)?.set(g.id, copy);
  }

  /** After the batch committed: what it wrote, as the database now has it. */
  committed(c: ChangeSet, token: string): void {
    for (const a of c.accounts.inserted) this.putAccount(a);
    // Cached records are updated in place: replacing them with copies every batch made each one garbage in
    // the old generation and its copy a survivor of the next scavenge (the writer thread's GC pauses).
    for (const a of c.accounts.updated) {
      const base = this.accounts.get(a.id);
      if (!base) continue;
      // The columns the store's account UPDATE writes.
      base.overage_balance = a.overage_balance;
      base.granted_total = a.granted_total;
      base.status = a.status;
      base.overage_policy = a.overage_policy;
      base.overage_limit = a.overage_limit;
    }
    for (const g of c.grants.inserted) this.place(copyGrant(g));
    for (const g of c.grants.updated) {
      const base = this.live.get(g.account_id)?.get(g.id) ?? this.loaded.get(g.id);
      if (!base) {
        this.forget(g.account_id);
        continue;
      }
      // The columns the store's grant UPDATE writes.
      base.remaining = g.remaining;
      base.status = g.status;
      base.closed_at = g.closed_at;
      base.kind = g.kind;
      base.priority = g.priority;
      this.place(base);
    }
    this.loaded.clear();
    this.token = token;
    if (this.accounts.size > MAX_ACCOUNTS) this.clear();
  }

  /**
   * This connection committed something that touched no account or grant (an index step): if the cache
   * was current at `before`, it still is at `after`.
   */
  carriedOver(before: string, after: string): void {
    if (this.token === before) this.token = after;
  }

  clear(): void {
    this.accounts.clear();
    this.live.clear();
    this.loaded.clear();
    this.token = null;
  }

  private place(g: GrantRecord): void {
    const m = this.live.get(g.account_id);
    if (!m) return;
    if (isLive(g)) m.set(g.id, g);
    else m.delete(g.id);
  }

  private forget(accountId: string): void {
    this.accounts.delete(accountId);
    this.live.delete(accountId);
  }
}

/** The store's live-grant query: `status = 'active' AND remaining > 0`. */
function isLive(g: GrantRecord): boolean {
  return g.status === "active" && g.remaining > 0n;
}

function copyGrant(g: GrantRecord): GrantRecord {
  return { ...g, metadata: copyMetadata(g.metadata) };
}

/** A copy as the database would give it back (metadata is stored as JSON text). */
function copyMetadata(m: Metadata): Metadata {
  const text = encodeMetadata(m);
  return text === "{}" ? {} : (JSON.parse(text) as Metadata);
}
