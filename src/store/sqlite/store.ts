import Database from "better-sqlite3";
import { LedgerCache } from "./ledger-cache.ts";
import { MERGE_QUEUE_SQL, accountRowsSql, indexTails, tailRowsSetting } from "./account-index.ts";
import { loadBudgets, writeExtras, type InsertMany } from "./ledger-extras.ts";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type {
  AccountRecord,
  GrantRecord,
  HoldRecord,
  JournalEntry,
  RefundRecord,
  UsageRecord,
} from "../../ledger/types.ts";
import type { ChangeSet, LoadKeys, Snapshot } from "../../ledger/working.ts";
import { collectAuditFacts } from "../audit-facts.ts";
import type { EventDraft, EventQuery, EventRecord } from "../../events/types.ts";
import { newId } from "../../domain/ids.ts";
import {
  rowToAccount,
  rowToCheckout,
  rowToEntry,
  rowToEvent,
  rowToGrant,
  rowToHold,
  rowToRefund,
  rowToUsage,
  usageSources,
} from "../rows.ts";
import { encodeMetadata, encodeParts } from "../codec.ts";
import {
  decodeIdCursor,
  decodeSeqCursor,
  encodeCursor,
  type AccountState,
  type AuditFacts,
  type CheckoutSession,
  type EntryQuery,
  type JournalState,
  type Page,
  type Store,
  type UsageQuery,
} from "../types.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";

type Row = Record<string, unknown>;
const INSERT_CHUNK = 64;
/** How a write statement's result comes back: rows changed (`run`), or its first row (`get`, RETURNING). */
export type SqlMode = "run" | "get";
export interface SqlResult {
  changes: number;
  row: Record<string, unknown> | null;
}

export interface Statement {
  sql: string;
  params: unknown[];
  mode: SqlMode;
}
export type StatementResult = { ok: true; result: SqlResult } | { ok: false; error: unknown };

/** A statement that writes a table the ledger cache or the engine owns (never through writeSql). */
const LEDGER_WRITE =
  /\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:accounts|grants|holds|usages|postings|refunds)\b/i;
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;
type Stmt = Database.Statement<unknown[], Row>;

/**
 * The embedded store: one better-sqlite3 connection, WAL, synchronous=FULL (every commit is durable).
 * A batch is one BEGIN IMMEDIATE transaction, so several processes on one file are serialised by SQLite.
 */
export class SqliteStore implements Store {
  readonly dialect = "sqlite" as const;
  readonly db: Database.Database;
  private readonly stmts = new Map<string, Stmt>();
  /** Accounts and live grants across batches (ledger-cache.ts says when it may be used). */
  private readonly cache = new LedgerCache();
  /** The last commit left index work for `indexStep` (a merge in progress, or a tail past the threshold). */
  indexWanted = false;
  /** Unindexed rows a per-account tail may hold (./account-index.ts). */
  private readonly tailRows = tailRowsSetting();

  constructor(readonly path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // Measured (docs/performance.md): checkpointing every 1,000 pages ran inside nearly every group
    // commit; a bigger WAL and page cache keep commits to the WAL append they must be.
    this.db.pragma("wal_autocheckpoint = 10000");
    this.db.pragma("cache_size = -262144");
    // When the log starts over (ledger/checkpoint-worker.ts), a file that grew past 64 MB is cut back.
    this.db.pragma("journal_size_limit = 67108864");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("temp_store = MEMORY");
    this.db.exec(MERGE_QUEUE_SQL);
    this.db.defaultSafeIntegers(true);
  }

  /** WAL pages after which a commit on this connection checkpoints (when another thread checkpoints). */
  setAutoCheckpoint(pages: number): void {
    this.db.pragma(`wal_autocheckpoint = ${Math.max(0, Math.floor(pages))}`);
  }

  private s(sql: string): Stmt {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql) as Stmt;
      this.stmts.set(sql, st);
    }
    return st;
  }

  async migrate(): Promise<number> {
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    let ran = 0;
    const run = this.db.transaction(() => {
      const done = new Set(
        (this.db.prepare("SELECT version FROM schema_migrations").all() as Row[]).map((r) =>
          Number(r.version),
        ),
      );
      for (const m of SQLITE_MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.db.exec(m.sql);
        this.db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
        ran++;
      }
    });
    run.immediate();
    return ran;
  }

  async runBatch<T>(
    keys: LoadKeys,
    now: number,
    apply: (snap: Snapshot) => { changes: ChangeSet; result: T },
  ): Promise<T> {
    let written: { changes: ChangeSet; token: string } | undefined;
    let indexing = false;
    const pre = this.preStatements;
    this.preStatements = null;
    this.preResults = null;
    let preResults: StatementResult[] | null = null;
    const tx = this.db.transaction(() => {
      if (pre) preResults = this.execStatements(pre);
      const snap = this.load(keys, now);
      const { changes, result } = apply(snap);
      this.write(changes);
      indexing = indexTails(
        (sql) => this.s(sql),
        this.tailRows,
        { usages: changes.usages.inserted.length, postings: changes.postings.length },
        "inline",
      ).more;
      written = { changes, token: this.token() };
      return result;
    });
    try {
      const result = tx.immediate();
      // First: once committed, the statements must never be run again, whatever fails next.
      this.preResults = preResults;
      this.cache.committed(written!.changes, written!.token);
      this.indexWanted = indexing;
      return result;
    } catch (err) {
      this.cache.clear();
      throw err;
    }
  }

  /**
   * Where write statements of the main thread go (`writeSql`): set by the engine when a writer thread owns
   * this file's ledger transactions, so those writes join its commits instead of blocking the event loop.
   */
  writer: ((sql: string, params: unknown[], mode: SqlMode) => Promise<SqlResult>) | null = null;

  /**
   * One write statement outside the ledger (idempotency records, settings, webhooks, alerts): on the
   * writer thread when there is one, else here. It must not write the ledger's own tables.
   */
  async writeSql(sql: string, params: unknown[], mode: SqlMode = "run"): Promise<SqlResult> {
    if (this.writer) return this.writer(sql, params, mode);
    const [r] = this.runStatements([{ sql, params, mode }]);
    if (!r!.ok) throw r!.error;
    return r!.result;
  }

  /**
   * Runs write statements in one transaction (one fsync); a statement that fails fails alone, and if the
   * commit fails they all do. They touch no account or grant, so this connection's ledger cache stays valid.
   */
  runStatements(stmts: readonly Statement[]): StatementResult[] {
    let out: StatementResult[] = [];
    let tokens: [string, string] | undefined;
    try {
      this.db
        .transaction(() => {
          const before = this.token();
          out = this.execStatements(stmts);
          tokens = [before, this.token()];
        })
        .immediate();
    } catch (error) {
      return stmts.map(() => ({ ok: false, error }));
    }
    this.cache.carriedOver(...tokens!);
    return out;
  }

  /**
   * Statements to run inside the next ledger batch's transaction, before its own work: the writer thread
   * folds the main thread's queued writes into the commit it is about to make (one fsync for both). Their
   * results are `preResults` once that batch committed; null if it did not (then nothing of them stayed).
   */
  preStatements: readonly Statement[] | null = null;
  preResults: StatementResult[] | null = null;

  private execStatements(stmts: readonly Statement[]): StatementResult[] {
    const out: StatementResult[] = [];
    for (const { sql, params, mode } of stmts) {
      try {
        assert(!LEDGER_WRITE.test(sql), "writeSql never writes the ledger's tables");
        const st = this.s(sql);
        if (mode === "get") {
          const row = (st.get(...params) as Record<string, unknown> | undefined) ?? null;
          out.push({ ok: true, result: { changes: row ? 1 : 0, row } });
        } else out.push({ ok: true, result: { changes: st.run(...params).changes, row: null } });
      } catch (error) {
        out.push({ ok: false, error });
      }
    }
    return out;
  }

  /** What the database is at, for the ledger cache: another connection's commit or any write here moves it. */
  private token(): string {
    const state = this.s("SELECT data_version AS v, total_changes() AS t FROM pragma_data_version").get()!;
    return `${state.v}:${state.t}`;
  }

  /**
   * One idle index step (./account-index.ts) in a transaction of its own; true when more are wanted. Run
   * by the writer thread when it has nothing else to do: a lock held by another process is not waited for.
   */
  indexStep(): boolean {
    let tokens: [string, string] | undefined;
    const tx = this.db.transaction(() => {
      const before = this.token();
      const { more } = indexTails((sql) => this.s(sql), this.tailRows, { usages: 0, postings: 0 }, "idle");
      tokens = [before, this.token()];
      return more;
    });
    // No fsync of its own: a step lost to a crash is simply taken again (marks and index rows go
    // together), and the next ledger commit's fsync makes it durable with everything before it.
    this.db.pragma("synchronous = NORMAL");
    try {
      const more = this.waitingAtMost(0, () => tx.immediate());
      this.cache.carriedOver(...tokens!);
      this.indexWanted = more;
      return more;
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_BUSY") return false;
      throw err;
    } finally {
      this.db.pragma("synchronous = FULL");
    }
  }

  /**
   * A RESTART checkpoint (writer thread, between batches): copies the frames not yet copied, waits at most
   * `waitMs` for readers to leave the log, and so lets the next commit write from the start of the WAL
   * file again. Busy (readers stayed) is not an error: the checkpoint thread asks again.
   */
  restartLog(waitMs: number): void {
    try {
      this.waitingAtMost(waitMs, () => this.db.pragma("wal_checkpoint(RESTART)"));
    } catch {
      // Busy or I/O trouble: the next request from the checkpoint thread tries again.
    }
  }

  /** Runs `fn` with another connection's lock waited for at most `ms` (instead of the usual 10 s). */
  private waitingAtMost<T>(ms: number, fn: () => T): T {
    this.db.pragma(`busy_timeout = ${ms}`);
    try {
      return fn();
    } finally {
      this.db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    }
  }

  private load(keys: LoadKeys, now: number): Snapshot {
    const snap: Snapshot = { accounts: [], grants: [], holds: [], usages: [], refunds: [] };
    this.cache.begin(this.token());
    const accountIds = new Set(keys.accountIds);
    const grantIds = new Set<string>();
    const seenGrants = new Map<string, GrantRecord>();
    const seenHolds = new Set<string>();
    const seenUsages = new Set<string>();

    const addGrant = (g: GrantRecord) => {
      seenGrants.set(g.id, g);
      snap.grants.push(g);
      this.cache.sawGrant(g);
    };
    const addUsage = (u: UsageRecord) => {
      if (seenUsages.has(u.id)) return;
      seenUsages.add(u.id);
      snap.usages.push(u);
      accountIds.add(u.account_id);
      for (const p of u.parts) grantIds.add(p.grant_id);
    };
    const addHold = (h: HoldRecord) => {
      if (seenHolds.has(h.id)) return;
      seenHolds.add(h.id);
      snap.holds.push(h);
      accountIds.add(h.account_id);
      for (const p of h.parts) grantIds.add(p.grant_id);
      if (h.usage_id) {
        const u = this.s("SELECT * FROM usages WHERE id = ?").get(h.usage_id);
        if (u) addUsage(rowToUsage(u));
      }
    };
    for (const id of keys.refundIds) {
      const r = this.s("SELECT * FROM refunds WHERE id = ?").get(id);
      if (!r) continue;
      const refund = rowToRefund(r);
      snap.refunds.push(refund);
      const u = this.s("SELECT * FROM usages WHERE id = ?").get(refund.usage_id);
      if (u) addUsage(rowToUsage(u));
    }
    // Usages named by id (each debit's idempotency lookup): one statement for the batch.
    if (keys.usageIds.size > 0)
      for (const u of this.s("SELECT * FROM usages WHERE id IN (SELECT value FROM json_each(?))").all(
        JSON.stringify([...keys.usageIds]),
      ))
        addUsage(rowToUsage(u));
    for (const id of keys.holdIds) {
      const h = this.s("SELECT * FROM holds WHERE id = ?").get(id);
      if (h) addHold(rowToHold(h));
    }
    for (const id of keys.grantIds) {
      const g = this.s("SELECT * FROM grants WHERE id = ?").get(id);
      if (!g) continue;
      const grant = rowToGrant(g);
      addGrant(grant);
      accountIds.add(grant.account_id);
    }
    // The accounts and their live grants: from the cache, else one statement each for all the others.
    const missing: string[] = [];
    for (const id of accountIds) {
      const a = this.cache.account(id);
      if (!a) {
        missing.push(id);
        continue;
      }
      snap.accounts.push(a);
      for (const g of this.cache.liveGrants(id)!)
        if (!seenGrants.has(g.id)) {
          seenGrants.set(g.id, g);
          snap.grants.push(g);
        }
    }
    if (missing.length > 0) {
      const ids = JSON.stringify(missing);
      for (const r of this.s("SELECT * FROM accounts WHERE id IN (SELECT value FROM json_each(?))").all(
        ids,
      )) {
        const a = rowToAccount(r);
        snap.accounts.push(a);
        this.cache.putAccount(a);
      }
      for (const g of this.s(
        `SELECT * FROM grants INDEXED BY grants_live
         WHERE account_id IN (SELECT value FROM json_each(?)) AND status = 'active' AND remaining > 0`,
      ).all(ids)) {
        const seen = seenGrants.get(String(g.id));
        // Loaded by id before its account was cached: now it joins the account's live set too.
        if (seen) this.cache.sawGrant(seen);
        else addGrant(rowToGrant(g));
      }
    }
    for (const h of this.s(
      "SELECT * FROM holds WHERE account_id IN (SELECT value FROM json_each(?)) AND status = 'active' AND expires_at <= ?",
    ).all(JSON.stringify([...accountIds]), now))
      addHold(rowToHold(h));
    for (const id of grantIds) {
      if (seenGrants.has(id)) continue;
      const g = this.s("SELECT * FROM grants WHERE id = ?").get(id);
      if (g) addGrant(rowToGrant(g));
    }
    snap.budgets = loadBudgets(this.db, accountIds, now);
    return snap;
  }

  private write(c: ChangeSet): void {
    const insAccount = this.s(
      "INSERT INTO accounts (id, overage_policy, overage_limit, overage_balance, granted_total, status, metadata, created_at, request) VALUES (?,?,?,?,?,?,?,?,?)",
    );
    for (const a of c.accounts.inserted)
      insAccount.run(
        a.id,
        a.overage_policy,
        a.overage_limit,
        a.overage_balance,
        a.granted_total,
        a.status,
        encodeMetadata(a.metadata),
        a.created_at,
        a.request,
      );
    const updAccount = this.s(
      "UPDATE accounts SET overage_balance = ?, granted_total = ?, status = ?, overage_policy = ?, overage_limit = ? WHERE id = ?",
    );
    for (const a of c.accounts.updated)
      updAccount.run(a.overage_balance, a.granted_total, a.status, a.overage_policy, a.overage_limit, a.id);

    const insGrant = this.s(
      `INSERT INTO grants (id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key,
        status, closed_at, source, reference, metadata, request) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    for (const g of c.grants.inserted)
      insGrant.run(
        g.id,
        g.account_id,
        g.kind,
        g.amount,
        g.remaining,
        g.priority,
        g.effective_at,
        g.expires_at,
        g.created_at,
        g.order_key,
        g.status,
        g.closed_at,
        g.source,
        g.reference,
        encodeMetadata(g.metadata),
        g.request,
      );
    const updGrant = this.s(
      "UPDATE grants SET remaining = ?, status = ?, closed_at = ?, kind = ?, priority = ? WHERE id = ?",
    );
    for (const g of c.grants.updated)
      updGrant.run(g.remaining, g.status, g.closed_at, g.kind, g.priority, g.id);

    const insHold = this.s(
      `INSERT INTO holds (id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id,
        metadata, request) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    for (const h of c.holds.inserted)
      insHold.run(
        h.id,
        h.account_id,
        h.amount,
        encodeParts(h.parts),
        h.status,
        h.expires_at,
        h.created_at,
        h.closed_at,
        h.captured_amount,
        h.usage_id,
        encodeMetadata(h.metadata),
        h.request,
      );

    // Usages before hold updates: a captured hold names its usage.
    this.insertMany(
      "usages",
      "id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id, occurred_at, recorded_at, metadata, txn_id",
      c.usages.inserted,
      (u, a) =>
        a.push(
          u.id,
          u.account_id,
          u.service,
          u.quantity,
          u.cost,
          u.overage,
          u.overage_refunded,
          u.refunded,
          encodeParts(u.parts),
          usageSources(u),
          u.hold_id,
          u.occurred_at,
          u.recorded_at,
          encodeMetadata(u.metadata),
          u.txn_id,
        ),
    );
    const updUsage = this.s("UPDATE usages SET refunded = ?, overage_refunded = ?, parts = ? WHERE id = ?");
    for (const u of c.usages.updated)
      updUsage.run(u.refunded, u.overage_refunded, encodeParts(u.parts), u.id);

    const updHold = this.s(
      "UPDATE holds SET parts = ?, status = ?, closed_at = ?, captured_amount = ?, usage_id = ?, amount = ?, expires_at = ? WHERE id = ?",
    );
    // amount and expires_at change when a hold is extended (live sessions).
    for (const h of c.holds.updated)
      updHold.run(
        encodeParts(h.parts),
        h.status,
        h.closed_at,
        h.captured_amount,
        h.usage_id,
        h.amount,
        h.expires_at,
        h.id,
      );

    const insRefund = this.s(
      "INSERT INTO refunds (id, usage_id, account_id, amount, reason, created_at, txn_id, request) VALUES (?,?,?,?,?,?,?,?)",
    );
    for (const r of c.refunds.inserted)
      insRefund.run(r.id, r.usage_id, r.account_id, r.amount, r.reason, r.created_at, r.txn_id, r.request);

    this.insertMany("events", "id, type, account_id, data, created_at", c.events, (e, a) =>
      a.push(e.id, e.type, e.account_id, JSON.stringify(e.data), e.created_at),
    );
    this.insertMany("postings", "txn_id, account_id, ledger, amount, kind, ref, at", c.postings, (p, a) =>
      a.push(p.txn_id, p.account_id, p.ledger, p.amount, p.kind, p.ref, p.at),
    );
    writeExtras(this.db, c, this.insertMany);
  }

  /**
   * Multi-row INSERTs in chunks: one statement per 64 rows instead of one per row. `push` appends a row's
   * values to one argument array, reused across chunks (spread into `run`: measured faster than binding
   * the array itself).
   * `tail` follows the VALUES list (an upsert's ON CONFLICT clause).
   */
  readonly insertMany: InsertMany = (table, columns, rows, push, tail = "") => {
    if (rows.length === 0) return;
    const width = columns.split(",").length;
    const one = `(${new Array(width).fill("?").join(",")})`;
    const args: unknown[] = [];
    let i = 0;
    if (rows.length >= INSERT_CHUNK) {
      const full = this.s(
        `INSERT INTO ${table} (${columns}) VALUES ${new Array(INSERT_CHUNK).fill(one).join(",")}${tail}`,
      );
      for (; i + INSERT_CHUNK <= rows.length; i += INSERT_CHUNK) {
        args.length = 0;
        for (let j = i; j < i + INSERT_CHUNK; j++) push(rows[j]!, args);
        full.run(...args);
      }
    }
    if (i === rows.length) return;
    const single = this.s(`INSERT INTO ${table} (${columns}) VALUES ${one}${tail}`);
    for (; i < rows.length; i++) {
      args.length = 0;
      push(rows[i]!, args);
      single.run(...args);
    }
  };

  // ---------- reads ----------

  async getAccount(id: string): Promise<AccountRecord | null> {
    const r = this.s("SELECT * FROM accounts WHERE id = ?").get(id);
    return r ? rowToAccount(r) : null;
  }

  async listAccounts(cursor: string | undefined, limit: number): Promise<Page<AccountRecord>> {
    const after = decodeIdCursor(cursor) ?? "";
    const rows = this.s("SELECT * FROM accounts WHERE id > ? ORDER BY id LIMIT ?").all(after, limit + 1);
    const data = rows.slice(0, limit).map(rowToAccount);
    return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }

  async getGrant(id: string): Promise<GrantRecord | null> {
    const r = this.s("SELECT * FROM grants WHERE id = ?").get(id);
    return r ? rowToGrant(r) : null;
  }

  async listGrants(accountId: string): Promise<GrantRecord[]> {
    return this.s("SELECT * FROM grants WHERE account_id = ? ORDER BY created_at, id")
      .all(accountId)
      .map(rowToGrant);
  }

  async getHold(id: string): Promise<HoldRecord | null> {
    const r = this.s("SELECT * FROM holds WHERE id = ?").get(id);
    return r ? rowToHold(r) : null;
  }

  async getUsage(id: string): Promise<UsageRecord | null> {
    const r = this.s("SELECT * FROM usages WHERE id = ?").get(id);
    return r ? rowToUsage(r) : null;
  }

  async getUsages(ids: readonly string[]): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    const st = this.s("SELECT * FROM usages WHERE id = ?");
    for (const id of ids) {
      const r = st.get(id);
      if (r) out.push(rowToUsage(r));
    }
    return out;
  }

  async getRefund(id: string): Promise<RefundRecord | null> {
    const r = this.s("SELECT * FROM refunds WHERE id = ?").get(id);
    return r ? rowToRefund(r) : null;
  }

  async accountState(accountId: string): Promise<AccountState | null> {
    // One read transaction, so grants and holds are seen at the same instant.
    return this.db.transaction(() => {
      const a = this.s("SELECT * FROM accounts WHERE id = ?").get(accountId);
      if (!a) return null;
      const holds = this.s("SELECT * FROM holds WHERE account_id = ? AND status = 'active'")
        .all(accountId)
        .map(rowToHold);
      const grants = this.s(
        "SELECT * FROM grants WHERE account_id = ? AND status = 'active' AND remaining > 0",
      )
        .all(accountId)
        .map(rowToGrant);
      const seen = new Set(grants.map((g) => g.id));
      for (const h of holds)
        for (const p of h.parts) {
          if (seen.has(p.grant_id)) continue;
          const g = this.s("SELECT * FROM grants WHERE id = ?").get(p.grant_id);
          if (g) grants.push(rowToGrant(g));
          seen.add(p.grant_id);
        }
      return { account: rowToAccount(a), grants, holds };
    })();
  }

  async journalState(accountId: string, at: number): Promise<JournalState | null> {
    return this.db.transaction(() => {
      const a = this.s("SELECT * FROM accounts WHERE id = ?").get(accountId);
      if (!a) return null;
      const sums = new Map<string, bigint>();
      for (const r of this.s(
        `SELECT ledger, SUM(amount) AS s FROM (${accountRowsSql("postings", () => "t.at <= ?")}) GROUP BY ledger`,
      ).all(accountId, at, accountId, at))
        sums.set(String(r.ledger), BigInt(r.s as bigint));
      const grants: GrantRecord[] = [];
      const holds: HoldRecord[] = [];
      const grantIds = new Set<string>();
      for (const [ledger, s] of sums) {
        if (s === 0n) continue;
        if (ledger.startsWith("hold:")) {
          const h = this.s("SELECT * FROM holds WHERE id = ?").get(ledger.slice(5));
          if (h) {
            const hold = rowToHold(h);
            holds.push(hold);
            for (const p of hold.parts) grantIds.add(p.grant_id);
          }
        } else if (ledger.startsWith("grant:")) grantIds.add(ledger.slice(6));
      }
      for (const id of grantIds) {
        const g = this.s("SELECT * FROM grants WHERE id = ?").get(id);
        if (g) grants.push(rowToGrant(g));
      }
      return { account: rowToAccount(a), sums, grants, holds };
    })();
  }

  async listUsages(q: UsageQuery): Promise<Page<UsageRecord>> {
    const where: string[] = [];
    const args: unknown[] = [];
    const before = decodeSeqCursor(q.cursor);
    if (before !== null) {
      where.push("{seq} < ?");
      args.push(BigInt(before));
    }
    if (q.service) {
      where.push("t.service = ?");
      args.push(q.service);
    }
    if (q.from !== undefined) {
      where.push("t.recorded_at >= ?");
      args.push(q.from);
    }
    if (q.to !== undefined) {
      where.push("t.recorded_at < ?");
      args.push(q.to);
    }
    if (q.credit_source) {
      where.push("t.sources LIKE ?");
      args.push(`% ${q.credit_source} %`);
    }
    const sql = accountRowsSql("usages", (seq) => where.join(" AND ").replaceAll("{seq}", seq), true);
    const part = [q.account_id, ...args, q.limit + 1];
    const rows = this.s(`${sql} ORDER BY seq DESC LIMIT ?`).all(...part, ...part, q.limit + 1);
    const page = rows.slice(0, q.limit);
    return {
      data: page.map(rowToUsage),
      next_cursor: rows.length > q.limit ? encodeCursor(String(page[page.length - 1]!.seq)) : null,
    };
  }

  async listEntries(q: EntryQuery): Promise<Page<JournalEntry>> {
    const before = decodeSeqCursor(q.cursor);
    const sql = accountRowsSql("postings", (seq) => (before === null ? "" : `${seq} < ?`), true);
    const part = before === null ? [q.account_id, q.limit + 1] : [q.account_id, BigInt(before), q.limit + 1];
    const rows = this.s(`${sql} ORDER BY seq DESC LIMIT ?`).all(...part, ...part, q.limit + 1);
    const page = rows.slice(0, q.limit).map(rowToEntry);
    return {
      data: page,
      next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  async findDueAccounts(now: number, limit: number): Promise<string[]> {
    return this.s(
      `SELECT account_id FROM grants WHERE status = 'active' AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?
       UNION SELECT account_id FROM holds WHERE status = 'active' AND expires_at <= ? LIMIT ?`,
    )
      .all(now, now, limit)
      .map((r) => String(r.account_id));
  }

  async auditFacts(): Promise<AuditFacts> {
    // Read everything inside one transaction so the audit sees one consistent instant.
    this.db.exec("BEGIN");
    try {
      return await collectAuditFacts(async (sql) => this.db.prepare(sql).all() as Row[]);
    } finally {
      this.db.exec("COMMIT");
    }
  }

  async accountTotals(accountId: string): Promise<{ consumed: bigint; granted: Record<string, bigint> }> {
    const c = this.s(
      `SELECT COALESCE(SUM(amount), 0) AS s FROM (${accountRowsSql("postings", () => "t.ledger = 'consumed'")})`,
    ).get(accountId, accountId);
    const granted: Record<string, bigint> = {};
    for (const r of this.s(
      "SELECT kind, SUM(amount) AS s FROM grants WHERE account_id = ? GROUP BY kind",
    ).all(accountId))
      granted[String(r.kind)] = BigInt(r.s as bigint);
    return { consumed: BigInt((c?.s as bigint) ?? 0n), granted };
  }

  async insertCheckoutSession(s: CheckoutSession): Promise<void> {
    this.s(
      `INSERT INTO checkout_sessions (id, account_id, amount_cents, currency, credits, status, provider, created_at, expires_at)
       VALUES (?,?,?,?,?,?,?,?,?)`,
    ).run(
      s.id,
      s.account_id,
      s.amount_cents,
      s.currency,
      s.credits,
      s.status,
      s.provider,
      s.created_at,
      s.expires_at,
    );
  }

  async getCheckoutSession(id: string): Promise<CheckoutSession | null> {
    const r = this.s("SELECT * FROM checkout_sessions WHERE id = ?").get(id);
    return r ? rowToCheckout(r) : null;
  }

  async getSetting(key: string): Promise<string | null> {
    const r = this.s("SELECT value FROM settings WHERE key = ?").get(key);
    return r ? String(r.value) : null;
  }

  async putSetting(key: string, value: string): Promise<void> {
    await this.writeSql(
      "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      [key, value, Date.now()],
    );
  }

  async putSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.writeSql(
      "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
      [key, value, Date.now()],
    );
    return (await this.getSetting(key))!;
  }

  async listSettings(prefix: string): Promise<{ key: string; value: string }[]> {
    return this.s("SELECT key, value FROM settings WHERE substr(key, 1, length(?)) = ? ORDER BY key")
      .all(prefix, prefix)
      .map((r) => ({ key: String(r.key), value: String(r.value) }));
  }

  async appendEvents(drafts: readonly EventDraft[], now: number): Promise<EventRecord[]> {
    const ins = this.s("INSERT INTO events (id, type, account_id, data, created_at) VALUES (?,?,?,?,?)");
    const tx = this.db.transaction(() =>
      drafts.map((d) => {
        const id = newId("evt", now);
        const r = ins.run(id, d.type, d.account_id, JSON.stringify(d.data), now);
        return { ...d, id, created_at: now, seq: Number(r.lastInsertRowid) };
      }),
    );
    return tx.immediate();
  }

  async listEvents(q: EventQuery): Promise<EventRecord[]> {
    const where: string[] = ["seq > ?"];
    const args: unknown[] = [q.after_seq ?? 0];
    if (q.account_id !== undefined) {
      where.push("account_id = ?");
      args.push(q.account_id);
    }
    if (q.types !== undefined && q.types.length > 0) {
      where.push(`type IN (${q.types.map(() => "?").join(",")})`);
      args.push(...q.types);
    }
    args.push(q.limit);
    return this.db
      .prepare(`SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`)
      .all(...args)
      .map((r) => rowToEvent(r as Record<string, unknown>));
  }

  async scanUsages(afterSeq: number, limit: number): Promise<{ seq: number; usage: UsageRecord }[]> {
    return this.s("SELECT * FROM usages WHERE seq > ? ORDER BY seq LIMIT ?")
      .all(afterSeq, limit)
      .map((r) => ({ seq: Number(r.seq), usage: rowToUsage(r) }));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
