import { createHash } from "node:crypto";
import { formatCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { EventDraft } from "../events/types.ts";
import { newId } from "../domain/ids.ts";
import type { Engine } from "../ledger/engine.ts";
import type { GrantRecord, UsageRecord } from "../ledger/types.ts";

/** The service name of removal adjustments in the usage history. */
export const ADJUSTMENT_SERVICE = "adjustment";
const MAX_REASON = 1024;

export interface AdjustmentInput {
  /** Client-chosen id (adj_…); makes the call idempotent. */
  id?: string;
  account_id: string;
  /** Positive: credits added (an adjustment grant); negative: credits removed. Micro-credits. */
  amount: bigint;
  reason: string;
  /** For additions: when the credits expire (default never). */
  expires_at?: number | null;
}

export interface Adjustment {
  id: string;
  account_id: string;
  direction: "add" | "remove";
  amount: bigint;
  reason: string;
  created_at: number;
  /** The grant an addition created, or the usage a removal recorded. */
  grant_id: string | null;
  usage_id: string | null;
  replay: boolean;
}

function derived(prefix: string, id: string): string {
  return `${prefix}_${createHash("sha256").update(id).digest("base64url").slice(0, 26)}`;
}

/**
 * Operator adjustments, always with a reason, always in the history. An addition is an `adjustment`
 * grant. A removal takes credits by burn-down through a hold captured at once (a hold never goes into
 * overage, so a removal can never overdraw, whatever the account's overage policy); it appears in the
 * usage history as service "adjustment" with the reason, and in statements as `removed`.
 */
export async function adjust(engine: Engine, input: AdjustmentInput): Promise<Adjustment> {
  const reason = typeof input.reason === "string" ? input.reason.trim() : "";
  if (reason === "" || reason.length > MAX_REASON)
    throw TallyError.validation("reason", `is required (1 to ${MAX_REASON} characters)`);
  if (input.amount === 0n) throw TallyError.validation("amount", "must not be zero");
  const id = input.id ?? newId("adj", engine.clock.now());
  const metadata = { adjustment_id: id, reason };
  const event = (direction: "add" | "remove", amount: bigint): EventDraft => ({
    type: "adjustment.created",
    account_id: input.account_id,
    data: {
      adjustment_id: id,
      account_id: input.account_id,
      direction,
      amount: formatCredits(amount),
      reason,
    },
  });
  if (input.amount > 0n) {
    const r = await engine.grant({
      id: derived("grt_adj", id),
      account_id: input.account_id,
      kind: "adjustment",
      amount: input.amount,
      expires_at: input.expires_at ?? null,
      source: "operator",
      reference: id,
      metadata,
      events: [event("add", input.amount)],
    });
    return fromGrant(id, r.grant, reason, r.replay);
  }
  if (input.expires_at != null) throw TallyError.validation("expires_at", "applies only to additions");
  const amount = -input.amount;
  const usageId = derived("use_adj", id);
  const existing = await engine.store.getUsage(usageId);
  if (existing) {
    if (existing.account_id !== input.account_id || existing.cost !== amount)
      throw new TallyError("idempotency_conflict", `adjustment ${id} exists with other content`, {
        field: "id",
      });
    return fromUsage(id, existing, reason, true);
  }
  const hold = await engine.hold({
    id: derived("hld_adj", id),
    account_id: input.account_id,
    amount,
    ttl_ms: 60_000,
    metadata,
  });
  const c = await engine.capture({
    hold_id: hold.hold.id,
    amount,
    usage_id: usageId,
    service: ADJUSTMENT_SERVICE,
    metadata,
    events: [event("remove", amount)],
  });
  return fromUsage(id, c.usage, reason, c.replay);
}

function fromGrant(id: string, g: GrantRecord, reason: string, replay: boolean): Adjustment {
  return {
    id,
    account_id: g.account_id,
    direction: "add",
    amount: g.amount,
    reason,
    created_at: g.created_at,
    grant_id: g.id,
    usage_id: null,
    replay,
  };
}

function fromUsage(id: string, u: UsageRecord, reason: string, replay: boolean): Adjustment {
  return {
    id,
    account_id: u.account_id,
    direction: "remove",
    amount: u.cost,
    reason,
    created_at: u.recorded_at,
    grant_id: null,
    usage_id: u.id,
    replay,
  };
}

/** An account's adjustments (additions from its grants, removals from its usage history), newest first. */
export async function listAdjustments(engine: Engine, accountId: string): Promise<Adjustment[]> {
  await engine.getAccount(accountId);
  const out: Adjustment[] = [];
  for (const g of await engine.store.listGrants(accountId))
    if (g.kind === "adjustment" && typeof g.metadata.adjustment_id === "string")
      out.push(fromGrant(g.metadata.adjustment_id, g, String(g.metadata.reason ?? ""), false));
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const p = await engine.listUsages({
      account_id: accountId,
      service: ADJUSTMENT_SERVICE,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    for (const u of p.data)
      if (typeof u.metadata.adjustment_id === "string")
        out.push(fromUsage(u.metadata.adjustment_id, u, String(u.metadata.reason ?? ""), false));
    if (!p.next_cursor) break;
    cursor = p.next_cursor;
  }
  return out.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1)).map((a) => ({ ...a }));
}
