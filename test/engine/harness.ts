/**
 * Shared set-up for the engine conformance suite: an engine on a fresh database of each store kind, a
 * manual clock that only moves forward, and helpers that assert outcomes (typed errors, "nothing changed").
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, expect } from "vitest";
import { ManualClock } from "../../src/domain/clock.ts";
import { TallyError, type ErrorCode } from "../../src/domain/errors.ts";
import { Engine } from "../../src/ledger/engine.ts";
import type { CreateAccountInput, GrantInput, JournalEntry, UsageRecord } from "../../src/ledger/types.ts";
import type { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { Store } from "../../src/store/types.ts";
import { freshDatabase, type StoreKind, type TestDatabase } from "../support/stores.ts";

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** Every test clock starts here (2030-01-01) and only moves forward. */
export const T0 = Date.UTC(2030, 0, 1);

/** Whole or decimal credits to micro-credits, exactly: cr(1.5) === 1_500_000n. */
export function cr(credits: number): bigint {
  const [whole, frac = ""] = String(credits).split(".");
  if (frac.length > 6) throw new Error(`cr(${credits}): more than 6 decimals`);
  return BigInt(whole!) * 1_000_000n + BigInt(frac.padEnd(6, "0"));
}

let seq = 0;
/** A unique client-chosen id for this run. */
export function uid(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++seq}`;
}

export interface EngineCtx {
  kind: StoreKind;
  db: TestDatabase;
  store: Store;
  engine: Engine;
  clock: ManualClock;
}

async function openCtx(kind: StoreKind): Promise<EngineCtx> {
  const db = await freshDatabase(kind);
  const store = await db.open();
  const clock = new ManualClock(T0);
  const engine = new Engine(store, { clock });
  return { kind, db, store, engine, clock };
}

async function closeCtx(c: EngineCtx): Promise<void> {
  await c.engine.close();
  await c.db.destroy();
}

/**
 * One database per describe block; before each test the clock moves `stepMs` (default 30 days) past
 * anything earlier tests did, so nothing of theirs is ever "now". After each test the whole journal must
 * still audit clean.
 */
export function useEngine(kind: StoreKind, opts: { stepMs?: number } = {}): EngineCtx {
  const step = opts.stepMs ?? 30 * DAY;
  let c: EngineCtx | undefined;
  const get = (): EngineCtx => {
    if (!c) throw new Error("engine not open yet");
    return c;
  };
  beforeAll(async () => {
    c = await openCtx(kind);
  });
  beforeEach(() => {
    const clock = get().clock;
    clock.set(clock.now() + step);
  });
  afterEach(async () => {
    if (!c) return;
    await c.engine.drain();
    const report = await c.engine.audit();
    expect(report.discrepancies, "audit after test").toEqual([]);
    expect(report.ok).toBe(true);
  });
  afterAll(async () => {
    if (c) await closeCtx(c);
  });
  return {
    get kind() {
      return kind;
    },
    get db() {
      return get().db;
    },
    get store() {
      return get().store;
    },
    get engine() {
      return get().engine;
    },
    get clock() {
      return get().clock;
    },
  };
}

/** A database of its own for one test (for global operations such as sweep counts or tampering). */
export async function withFreshEngine(kind: StoreKind, body: (c: EngineCtx) => Promise<void>): Promise<void> {
  const c = await openCtx(kind);
  try {
    await body(c);
  } finally {
    await closeCtx(c);
  }
}

export async function newAccount(engine: Engine, input: CreateAccountInput = {}): Promise<string> {
  const { account } = await engine.createAccount({ id: uid("acct"), ...input });
  return account.id;
}

/** An account with one grant per entry of `grants` (in that order). Returns the account and grant ids. */
export async function fundedAccount(
  engine: Engine,
  grants: Omit<GrantInput, "account_id">[],
  input: CreateAccountInput = {},
): Promise<{ account: string; grants: string[] }> {
  const account = await newAccount(engine, input);
  const ids: string[] = [];
  for (const g of grants) ids.push((await engine.grant({ ...g, account_id: account })).grant.id);
  return { account, grants: ids };
}

/** Asserts that `p` rejects with a TallyError of this code (and field, when given); returns the error. */
export async function expectTallyError(
  p: Promise<unknown>,
  code: ErrorCode,
  field?: string,
): Promise<TallyError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}${field ? ` on ${field}` : ""}, got success`).toBeDefined();
  expect(caught, `expected a TallyError, got ${String(caught)}`).toBeInstanceOf(TallyError);
  const err = caught as TallyError;
  expect({ code: err.code, field: field === undefined ? undefined : err.field }).toEqual({ code, field });
  return err;
}

/** Same as expectTallyError for a synchronous call. */
export function expectTallyErrorSync(f: () => unknown, code: ErrorCode, field?: string): TallyError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}${field ? ` on ${field}` : ""}, got success`).toBeDefined();
  expect(caught, `expected a TallyError, got ${String(caught)}`).toBeInstanceOf(TallyError);
  const err = caught as TallyError;
  expect({ code: err.code, field: field === undefined ? undefined : err.field }).toEqual({ code, field });
  return err;
}

export async function allEntries(engine: Engine, accountId: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await engine.listEntries({
      account_id: accountId,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    out.push(...page.data);
    if (!page.next_cursor) return out.reverse();
    cursor = page.next_cursor;
  }
}

export async function allUsages(engine: Engine, accountId: string): Promise<UsageRecord[]> {
  const out: UsageRecord[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await engine.listUsages({
      account_id: accountId,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    out.push(...page.data);
    if (!page.next_cursor) return out.reverse();
    cursor = page.next_cursor;
  }
}

/**
 * Everything observable about the store (global record counts) and about the given accounts (balance,
 * grants, journal, usages), for "nothing changed" assertions.
 */
export async function snapshot(engine: Engine, accountIds: string[] = []): Promise<unknown> {
  const report = await engine.audit();
  const accounts: Record<string, unknown> = {};
  for (const id of accountIds) {
    accounts[id] = {
      account: await engine.getAccount(id),
      balance: await engine.balance(id),
      grants: await engine.listGrants(id),
      entries: await allEntries(engine, id),
      usages: await allUsages(engine, id),
    };
  }
  return { counts: report.counts, totals: report.totals, accounts };
}

/** Runs `f`, which must fail with a TallyError of `code`/`field`, and asserts that nothing changed. */
export async function expectRefusedUnchanged(
  engine: Engine,
  accountIds: string[],
  f: () => Promise<unknown>,
  code: ErrorCode,
  field?: string,
): Promise<TallyError> {
  await engine.drain();
  const before = await snapshot(engine, accountIds);
  const err = await expectTallyError(f(), code, field);
  await engine.drain();
  expect(await snapshot(engine, accountIds)).toEqual(before);
  return err;
}

/** Sum of a list of bigints. */
export function sum(xs: readonly bigint[]): bigint {
  return xs.reduce((s, x) => s + x, 0n);
}

/** Parts of a usage or hold as plain [grant, kind, amount] triples, easy to compare. */
export function partsOf(
  parts: readonly { grant_id: string; kind: string; amount: bigint }[],
): [string, string, bigint][] {
  return parts.map((p) => [p.grant_id, p.kind, p.amount]);
}

/**
 * Runs one SQL statement directly on the test database, bypassing the engine (for tampering tests).
 * Placeholders are `?`; they become `$n` on PostgreSQL. Rejects with the database's error.
 */
export async function rawExec(c: EngineCtx, sql: string, params: unknown[] = []): Promise<void> {
  if (c.kind === "sqlite") {
    (c.store as unknown as SqliteStore).db.prepare(sql).run(...params);
    return;
  }
  const client = new pg.Client({ connectionString: c.db.url });
  await client.connect();
  try {
    let n = 0;
    await client.query(
      sql.replace(/\?/g, () => `$${++n}`),
      params.map((p) => (typeof p === "bigint" ? p.toString() : p)),
    );
  } finally {
    await client.end();
  }
}
