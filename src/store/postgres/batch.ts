/**
 * A ledger batch on PostgreSQL in few round trips: resolve the owners of records named without their
 * account (only when needed), lock the accounts (sorted), load everything else in one statement, write every
 * change in one statement. Every statement is prepared (./named.ts).
 */
import type pg from "pg";
import { budgetCycleStart } from "../../budgets/cycle.ts";
import type { ChangeSet, LoadKeys, Snapshot } from "../../ledger/working.ts";
import type { EventRecord, PendingEvent } from "../../events/types.ts";
import { EVENTS_LOCK_KEY } from "../events-migrations.ts";
import { encodeParts } from "../codec.ts";
import {
  rowToAccount,
  rowToEvent,
  rowToGrant,
  rowToHold,
  rowToRefund,
  rowToUsage,
  usageSources,
} from "../rows.ts";
import { BUDGETS_BRANCH, extraSections, toBudget, type Section } from "./ledger-extras.ts";
import { named } from "./named.ts";
import { branch, split } from "./row-sets.ts";

/** Grant ids in the `parts` (JSON text) of the rows of `rel`. */
export const partGrantIds = (rel: string) =>
  `ARRAY(SELECT p->>0 FROM ${rel}, json_array_elements(${rel}.parts::json) p)`;

const RESOLVE = `SELECT account_id FROM usages WHERE id = ANY($1)
  UNION SELECT account_id FROM holds WHERE id = ANY($2)
  UNION SELECT account_id FROM grants WHERE id = ANY($3)
  UNION SELECT account_id FROM refunds WHERE id = ANY($4)`;

const LOCK = "SELECT * FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE";

const LIVE_GRANT = "g.account_id = ANY($1::text[]) AND g.status = 'active' AND g.remaining > 0";

/**
 * $1 accounts, $2 cycle start, $3 now, $4 hold ids, $5 refund ids, $6 usage ids, $7 grant ids. Usages
 * named by the loaded refunds and holds, and grants named in the parts of the loaded holds and usages, are
 * loaded too. Run after the lock: its snapshot then sees every commit to these accounts. Conditions on the
 * accounts are index conditions, not filters joined by OR, which would test each row against the whole
 * array of accounts.
 */
const LOAD = `WITH h AS (
    SELECT * FROM holds WHERE account_id = ANY($1::text[]) AND status = 'active' AND expires_at <= $3
    UNION ALL SELECT * FROM holds WHERE id = ANY($4::text[])
      AND NOT (account_id = ANY($1::text[]) AND status = 'active' AND expires_at <= $3)
  ), r AS (
    SELECT * FROM refunds WHERE id = ANY($5::text[])
  ), u AS (
    SELECT * FROM usages WHERE id = ANY($6::text[] || ARRAY(SELECT usage_id FROM r)
      || ARRAY(SELECT usage_id FROM h WHERE usage_id IS NOT NULL))
  )
  ${branch("hold", "h", "h")}
  UNION ALL ${branch("refund", "r", "r")}
  UNION ALL ${branch("usage", "u", "u")}
  UNION ALL ${branch("grant", "g", `grants g WHERE ${LIVE_GRANT}`)}
  UNION ALL ${branch(
    "grant",
    "g",
    `grants g WHERE g.id = ANY($7::text[] || ${partGrantIds("h")} || ${partGrantIds("u")}) AND NOT (${LIVE_GRANT})`,
  )}
  UNION ALL ${BUDGETS_BRANCH}`;

export async function loadSnapshot(c: pg.PoolClient, keys: LoadKeys, now: number): Promise<Snapshot> {
  const accountIds = new Set(keys.accountIds);
  const refundIds = [...keys.refundIds];

  // 1. Which accounts do records named without their account belong to? (Not locked yet; re-read after
  // locking.) A debit's own event id needs no lookup: it is only read, to detect a replay or a conflict.
  const resolve = [[...keys.resolve.usages], [...keys.resolve.holds], [...keys.resolve.grants], refundIds];
  if (resolve.some((ids) => ids.length > 0)) {
    const { rows } = await c.query(named(RESOLVE, resolve));
    for (const r of rows) accountIds.add(String(r.account_id));
  }

  // 2. Lock the accounts in id order: concurrent batches of any process queue here, never deadlock.
  const sorted = [...accountIds].sort();
  const accounts = sorted.length ? (await c.query(named(LOCK, [sorted]))).rows.map(rowToAccount) : [];

  // 3. Load what the batch reads, now that nothing of these accounts can change under us.
  const cycle = budgetCycleStart(now);
  const { rows } = await c.query<unknown[]>({
    ...named(LOAD, [
      sorted,
      cycle,
      now,
      [...keys.holdIds],
      refundIds,
      [...keys.usageIds],
      [...keys.grantIds],
    ]),
    rowMode: "array",
  });
  const r = split(rows);
  return {
    accounts,
    grants: r.grant.map(rowToGrant),
    holds: r.hold.map(rowToHold),
    usages: r.usage.map(rowToUsage),
    refunds: r.refund.map(rowToRefund),
    budgets: r.budget.map((b) => toBudget(b, cycle)),
  };
}

/** Every change of the batch in one statement (data-modifying WITH), then the events. */
export async function writeChanges(c: pg.PoolClient, ch: ChangeSet): Promise<void> {
  const sections = [...ledgerSections(ch), ...extraSections(ch)];
  if (sections.length) {
    // Inserted and updated rows are disjoint, so no part needs to see another part's rows; foreign keys
    // are checked at the end of the statement, when every part has run.
    const values: unknown[] = [];
    const parts = sections.map((s) => {
      const base = values.length;
      values.push(...s.values);
      return s.sql.replace(/\$(\d+)/g, (_, n: string) => `$${base + Number(n)}`);
    });
    const last = parts.pop()!;
    const text = parts.length ? `WITH ${parts.map((p, i) => `w${i} AS (${p})`).join(", ")} ${last}` : last;
    await c.query(named(text, values));
  }
  if (ch.events.length) await insertEvents(c, ch.events);
}

/** Takes the events lock, so that seq order is commit order for readers tailing the outbox. */
export async function insertEvents(
  c: pg.PoolClient,
  events: readonly PendingEvent[],
): Promise<EventRecord[]> {
  await c.query(named("SELECT pg_advisory_xact_lock($1::bigint)", [EVENTS_LOCK_KEY]));
  const { rows } = await c.query(
    named(
      `INSERT INTO events (id, type, account_id, data, created_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) RETURNING *`,
      col(
        events,
        (e) => e.id,
        (e) => e.type,
        (e) => e.account_id,
        (e) => JSON.stringify(e.data),
        (e) => e.created_at,
      ),
    ),
  );
  return rows.map(rowToEvent);
}

function ledgerSections(ch: ChangeSet): Section[] {
  const out: Section[] = [];
  const add = <T>(rows: readonly T[], sql: string, ...getters: ((r: T) => unknown)[]) => {
    if (rows.length) out.push({ sql, values: col(rows, ...getters) });
  };
  add(
    ch.accounts.inserted,
    `INSERT INTO accounts (id, overage_policy, overage_limit, overage_balance, granted_total, status, metadata, created_at,
       request)
     SELECT id, overage_policy, overage_limit, overage_balance, granted_total, status, metadata::jsonb, created_at, request
     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[],
       $9::text[])
       AS v(id, overage_policy, overage_limit, overage_balance, granted_total, status, metadata, created_at, request)`,
    (a) => a.id,
    (a) => a.overage_policy,
    (a) => str(a.overage_limit),
    (a) => str(a.overage_balance),
    (a) => str(a.granted_total),
    (a) => a.status,
    (a) => JSON.stringify(a.metadata),
    (a) => a.created_at,
    (a) => a.request,
  );
  add(
    ch.accounts.updated,
    `UPDATE accounts a SET overage_balance = v.overage_balance, granted_total = v.granted_total, status = v.status,
       overage_policy = v.overage_policy, overage_limit = v.overage_limit
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
       AS v(id, overage_balance, granted_total, status, overage_policy, overage_limit)
     WHERE a.id = v.id`,
    (a) => a.id,
    (a) => str(a.overage_balance),
    (a) => str(a.granted_total),
    (a) => a.status,
    (a) => a.overage_policy,
    (a) => str(a.overage_limit),
  );
  add(
    ch.grants.inserted,
    `INSERT INTO grants (id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key,
       status, closed_at, source, reference, metadata, request)
     SELECT id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key, status,
       closed_at, source, reference, metadata::jsonb, request
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::bigint[], $8::bigint[],
       $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[])
       AS v(id, account_id, kind, amount, remaining, priority, effective_at, expires_at, created_at, order_key, status,
         closed_at, source, reference, metadata, request)`,
    (g) => g.id,
    (g) => g.account_id,
    (g) => g.kind,
    (g) => str(g.amount),
    (g) => str(g.remaining),
    (g) => g.priority,
    (g) => g.effective_at,
    (g) => g.expires_at,
    (g) => g.created_at,
    (g) => g.order_key,
    (g) => g.status,
    (g) => g.closed_at,
    (g) => g.source,
    (g) => g.reference,
    (g) => JSON.stringify(g.metadata),
    (g) => g.request,
  );
  add(
    ch.grants.updated,
    `UPDATE grants g SET remaining = v.remaining, status = v.status, closed_at = v.closed_at, kind = v.kind,
       priority = v.priority
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::int[])
       AS v(id, remaining, status, closed_at, kind, priority)
     WHERE g.id = v.id`,
    (g) => g.id,
    (g) => str(g.remaining),
    (g) => g.status,
    (g) => g.closed_at,
    (g) => g.kind,
    (g) => g.priority,
  );
  add(
    ch.holds.inserted,
    `INSERT INTO holds (id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id,
       metadata, request)
     SELECT id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id,
       metadata::jsonb, request
     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
       $9::bigint[], $10::text[], $11::text[], $12::text[])
       AS v(id, account_id, amount, parts, status, expires_at, created_at, closed_at, captured_amount, usage_id, metadata,
         request)`,
    (h) => h.id,
    (h) => h.account_id,
    (h) => str(h.amount),
    (h) => encodeParts(h.parts),
    (h) => h.status,
    (h) => h.expires_at,
    (h) => h.created_at,
    (h) => h.closed_at,
    (h) => str(h.captured_amount),
    (h) => h.usage_id,
    (h) => JSON.stringify(h.metadata),
    (h) => h.request,
  );
  add(
    ch.usages.inserted,
    `INSERT INTO usages (id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
       occurred_at, recorded_at, metadata, txn_id)
     SELECT id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
       occurred_at, recorded_at, metadata::jsonb, txn_id
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
       $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[])
       AS v(id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources, hold_id,
         occurred_at, recorded_at, metadata, txn_id)`,
    (u) => u.id,
    (u) => u.account_id,
    (u) => u.service,
    (u) => u.quantity,
    (u) => str(u.cost),
    (u) => str(u.overage),
    (u) => str(u.overage_refunded),
    (u) => str(u.refunded),
    (u) => encodeParts(u.parts),
    (u) => usageSources(u),
    (u) => u.hold_id,
    (u) => u.occurred_at,
    (u) => u.recorded_at,
    (u) => JSON.stringify(u.metadata),
    (u) => u.txn_id,
  );
  add(
    ch.usages.updated,
    `UPDATE usages u SET refunded = v.refunded, overage_refunded = v.overage_refunded, parts = v.parts
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v(id, refunded, overage_refunded, parts)
     WHERE u.id = v.id`,
    (u) => u.id,
    (u) => str(u.refunded),
    (u) => str(u.overage_refunded),
    (u) => encodeParts(u.parts),
  );
  add(
    ch.holds.updated,
    // amount and expires_at change when a hold is extended (live sessions).
    `UPDATE holds h SET parts = v.parts, status = v.status, closed_at = v.closed_at, captured_amount = v.captured_amount,
       usage_id = v.usage_id, amount = v.amount, expires_at = v.expires_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[])
       AS v(id, parts, status, closed_at, captured_amount, usage_id, amount, expires_at)
     WHERE h.id = v.id`,
    (h) => h.id,
    (h) => encodeParts(h.parts),
    (h) => h.status,
    (h) => h.closed_at,
    (h) => str(h.captured_amount),
    (h) => h.usage_id,
    (h) => str(h.amount),
    (h) => h.expires_at,
  );
  add(
    ch.refunds.inserted,
    `INSERT INTO refunds (id, usage_id, account_id, amount, reason, created_at, txn_id, request)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[])`,
    (r) => r.id,
    (r) => r.usage_id,
    (r) => r.account_id,
    (r) => str(r.amount),
    (r) => r.reason,
    (r) => r.created_at,
    (r) => r.txn_id,
    (r) => r.request,
  );
  add(
    ch.postings,
    `INSERT INTO postings (txn_id, account_id, ledger, amount, kind, ref, at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])`,
    (p) => p.txn_id,
    (p) => p.account_id,
    (p) => p.ledger,
    (p) => str(p.amount),
    (p) => p.kind,
    (p) => p.ref,
    (p) => p.at,
  );
  return out;
}

function str(v: bigint | null): string | null {
  return v === null ? null : v.toString();
}

/** Column arrays for unnest(): one array per field, in the order of the getters. */
function col<T>(rows: readonly T[], ...getters: ((r: T) => unknown)[]): unknown[][] {
  return getters.map((g) => rows.map(g));
}
