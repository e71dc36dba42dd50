import { compareBurnDown, isExpiredAt, planAllocation, sumParts } from "../domain/burndown.ts";
import { TallyError, invariant } from "../domain/errors.ts";
import { MAX_ACCOUNT_GRANTED, MAX_AMOUNT, formatCredits } from "../domain/amount.ts";
import { newId } from "../domain/ids.ts";
import { assertSameFields, assertSameRequest, requestText } from "./request.ts";
import {
  DEFAULT_PRIORITY,
  LIMITS,
  type AccountRecord,
  type AccountResult,
  type CaptureInput,
  type GrantKind,
  type CapturePartInput,
  type CreateAccountInput,
  type ExtendHoldInput,
  type DebitInput,
  type GrantInput,
  type HoldInput,
  type RefundInput,
  type CaptureResult,
  type Command,
  type DebitResult,
  type GrantRecord,
  type GrantResult,
  type HoldRecord,
  type HoldResult,
  type Part,
  type RefundResult,
  type SettleResult,
  type UsagePart,
  type UsageRecord,
} from "./types.ts";
import { copyHold, copyUsage, emptyKeys, type LoadKeys, type Working } from "./working.ts";
import { checkBudgets, chargeBudgets } from "./budgets.ts";

/*
 * Each handler checks everything first and throws a TallyError before it changes anything, so a refused
 * command leaves the batch state as it found it. The one exception is `settle`, which every handler runs
 * first for its account: writing off what is already due is correct whatever the command then does.
 */

export function keysOf(cmds: readonly Command[]): LoadKeys {
  const k = emptyKeys();
  for (const c of cmds) {
    switch (c.type) {
      case "create_account":
        if (c.input.id) k.accountIds.add(c.input.id);
        break;
      case "grant":
        k.accountIds.add(c.input.account_id);
        if (c.input.id) k.grantIds.add(c.input.id);
        break;
      case "void_grant":
        k.grantIds.add(c.grant_id);
        k.resolve.grants.add(c.grant_id);
        break;
      case "debit":
        k.accountIds.add(c.input.account_id);
        k.usageIds.add(c.input.id);
        break;
      case "hold":
        k.accountIds.add(c.input.account_id);
        if (c.input.id) k.holdIds.add(c.input.id);
        break;
      case "capture":
        k.holdIds.add(c.input.hold_id);
        k.resolve.holds.add(c.input.hold_id);
        k.usageIds.add(c.input.usage_id ?? captureUsageId(c.input.hold_id));
        break;
      case "release":
        k.holdIds.add(c.hold_id);
        k.resolve.holds.add(c.hold_id);
        break;
      case "extend_hold":
        k.holdIds.add(c.input.hold_id);
        k.resolve.holds.add(c.input.hold_id);
        break;
      case "capture_part":
        k.holdIds.add(c.input.hold_id);
        k.resolve.holds.add(c.input.hold_id);
        k.usageIds.add(c.input.usage_id);
        break;
      case "refund":
        k.usageIds.add(c.input.usage_id);
        k.resolve.usages.add(c.input.usage_id);
        if (c.input.id) k.refundIds.add(c.input.id);
        break;
      case "settle":
      case "set_account_status":
      case "set_account_overage":
        k.accountIds.add(c.account_id);
        break;
      case "reclassify_grant":
        k.grantIds.add(c.grant_id);
        k.resolve.grants.add(c.grant_id);
        break;
    }
  }
  return k;
}

export function captureUsageId(holdId: string): string {
  return holdId.startsWith("hld_") ? "use_" + holdId.slice(4) : "use_" + holdId;
}

export function applyCommand(w: Working, cmd: Command, now: number): unknown {
  switch (cmd.type) {
    case "create_account":
      return createAccount(w, cmd.input, now);
    case "grant":
      return grant(w, cmd.input, now);
    case "void_grant":
      return voidGrant(w, cmd.grant_id, cmd.reason ?? null, now);
    case "debit":
      return debit(w, cmd.input, now);
    case "hold":
      return hold(w, cmd.input, now);
    case "capture":
      return capture(w, cmd.input, now);
    case "release":
      return release(w, cmd.hold_id, now);
    case "extend_hold":
      return extendHold(w, cmd.input, now);
    case "capture_part":
      return capturePart(w, cmd.input, now);
    case "refund":
      return refund(w, cmd.input, now);
    case "settle":
      requireAccount(w, cmd.account_id, "account_id");
      return settle(w, cmd.account_id, now);
    case "set_account_status":
      return setAccountStatus(w, cmd.account_id, cmd.status, now);
    case "set_account_overage":
      return setAccountOverage(w, cmd.account_id, cmd.overage_policy, cmd.overage_limit);
    case "reclassify_grant":
      return reclassifyGrant(w, cmd.grant_id, cmd.kind, cmd.priority, now);
  }
}

function requireAccount(w: Working, id: string, field: string): AccountRecord {
  const a = w.accounts.get(id);
  if (!a) throw TallyError.notFound("account", id, field);
  return a;
}

function requireActive(a: AccountRecord): void {
  if (a.status !== "active")
    throw new TallyError("account_not_active", `account ${a.id} is ${a.status}`, {
      field: "account_id",
      status: a.status,
    });
}

// ---------- accounts and grants ----------

function createAccount(w: Working, input: CreateAccountInput, now: number): AccountResult {
  const fields = {
    overage_policy: input.overage_policy ?? "block",
    overage_limit: input.overage_limit ?? null,
    metadata: input.metadata ?? {},
  };
  if (input.id) {
    const existing = w.accounts.get(input.id);
    if (existing) {
      assertSameRequest("account", input.id, existing.request, fields);
      return { account: { ...existing }, replay: true };
    }
  }
  if (fields.overage_limit !== null && fields.overage_policy !== "allow")
    throw TallyError.validation("overage_limit", "applies only with overage_policy allow");
  const account: AccountRecord = {
    id: input.id ?? newId("acct", now),
    overage_policy: fields.overage_policy,
    overage_limit: fields.overage_limit,
    overage_balance: 0n,
    granted_total: 0n,
    status: "active",
    metadata: fields.metadata,
    created_at: now,
    request: requestText(fields),
  };
  w.accounts.insert(account);
  w.emit(
    "account.created",
    account.id,
    { account_id: account.id, overage_policy: account.overage_policy },
    now,
  );
  return { account: { ...account }, replay: false };
}

/**
 * Suspend (no usage, no holds; grants still allowed), reactivate, or close (final: nothing more is
 * granted or spent; what remains stays on the record). Setting the status it already has is a replay.
 */
function setAccountStatus(
  w: Working,
  accountId: string,
  status: AccountRecord["status"],
  now: number,
): AccountResult {
  const a = requireAccount(w, accountId, "account_id");
  if (a.status === status) return { account: { ...a }, replay: true };
  if (a.status === "closed")
    throw new TallyError("account_not_active", `account ${a.id} is closed and cannot be reopened`, {
      field: "account_id",
      status: a.status,
    });
  const from = a.status;
  a.status = status;
  w.accounts.touch(a.id);
  w.emit("account.status_changed", a.id, { account_id: a.id, from, to: status }, now);
  return { account: { ...a }, replay: false };
}

/**
 * Sets the overage policy and limit (a plan decides them). Outstanding overage stays; a lower limit only
 * refuses new overage. Setting what is already set is a replay.
 */
function setAccountOverage(
  w: Working,
  accountId: string,
  policy: AccountRecord["overage_policy"],
  limit: bigint | null,
): AccountResult {
  const a = requireAccount(w, accountId, "account_id");
  if (limit !== null && policy !== "allow")
    throw TallyError.validation("overage_limit", "applies only with overage_policy allow");
  if (a.overage_policy === policy && a.overage_limit === limit) return { account: { ...a }, replay: true };
  a.overage_policy = policy;
  a.overage_limit = limit;
  w.accounts.touch(a.id);
  return { account: { ...a }, replay: false };
}

/**
 * Changes a live grant's kind and priority, nothing else: no credits move, so the journal and the audit
 * are untouched, and credits later returned to it (a refund, a released hold) come back to it as to any
 * grant. A plan change uses it to make the old plan's monthly grant a carryover that is used first until
 * it expires at the old period's end. Setting what is already set is a replay.
 */
function reclassifyGrant(
  w: Working,
  grantId: string,
  kind: GrantKind,
  priority: number,
  now: number,
): GrantResult {
  const g = w.grants.get(grantId);
  if (!g) throw TallyError.notFound("grant", grantId, "grant_id");
  if (g.kind === kind && g.priority === priority) return { grant: { ...g }, replay: true };
  if (g.status !== "active" || isExpiredAt(g, now))
    throw new TallyError(
      "grant_not_active",
      `grant ${grantId} is ${g.status === "active" ? "expired" : g.status}`,
      {
        field: "grant_id",
        id: grantId,
      },
    );
  const from = { kind: g.kind, priority: g.priority };
  g.kind = kind;
  g.priority = priority;
  w.grants.touch(g.id);
  w.emit("grant.reclassified", g.account_id, { ...grantEventData(g), priority, from }, now);
  return { grant: { ...g }, replay: false };
}

function grant(w: Working, input: GrantInput, now: number): GrantResult {
  const fields = {
    account_id: input.account_id,
    kind: input.kind,
    amount: input.amount,
    priority: input.priority ?? DEFAULT_PRIORITY[input.kind],
    effective_at: input.effective_at ?? null,
    expires_at: input.expires_at ?? null,
    metadata: input.metadata ?? {},
    reference: input.reference ?? null,
    source: input.source ?? null,
  };
  if (input.id) {
    const existing = w.grants.get(input.id);
    if (existing) {
      assertSameRequest("grant", input.id, existing.request, fields);
      return { grant: { ...existing }, replay: true };
    }
  }
  const account = requireAccount(w, input.account_id, "account_id");
  if (account.status === "closed") requireActive(account);
  const effectiveAt = input.effective_at ?? now;
  if (fields.expires_at !== null) {
    if (fields.expires_at <= effectiveAt)
      throw TallyError.validation("expires_at", "must be after effective_at");
    if (fields.expires_at <= now) throw TallyError.validation("expires_at", "must be in the future");
  }
  if (account.granted_total + input.amount > MAX_ACCOUNT_GRANTED)
    throw TallyError.validation(
      "amount",
      `would take the account's lifetime grants past ${formatCredits(MAX_ACCOUNT_GRANTED)} credits`,
    );
  settle(w, account.id, now);
  account.granted_total += input.amount;
  w.accounts.touch(account.id);
  const g: GrantRecord = {
    id: input.id ?? newId("grt", now),
    account_id: account.id,
    kind: input.kind,
    amount: input.amount,
    remaining: input.amount,
    priority: fields.priority,
    effective_at: effectiveAt,
    expires_at: fields.expires_at,
    created_at: now,
    order_key: newId("grt", now),
    status: "active",
    closed_at: null,
    source: fields.source,
    reference: fields.reference,
    metadata: fields.metadata,
    request: requestText(fields),
  };
  w.grants.insert(g);
  w.post(newId("txn", now), account.id, "grant", g.id, now, [
    ["issued", -g.amount],
    [`grant:${g.id}`, g.amount],
  ]);
  w.emit("grant.created", account.id, grantEventData(g), now);
  w.emitDrafts(input.events, now);
  return { grant: { ...g }, replay: false };
}

function voidGrant(w: Working, grantId: string, reason: string | null, now: number): GrantResult {
  const g = w.grants.get(grantId);
  if (!g) throw TallyError.notFound("grant", grantId, "grant_id");
  if (g.status === "voided") return { grant: { ...g }, replay: true };
  if (g.status === "expired" || isExpiredAt(g, now))
    throw new TallyError("grant_not_active", `grant ${grantId} has expired`, {
      field: "grant_id",
      id: grantId,
    });
  settle(w, g.account_id, now);
  const left = g.remaining;
  g.remaining = 0n;
  g.status = "voided";
  g.closed_at = now;
  w.grants.touch(g.id);
  w.post(newId("txn", now), g.account_id, "void", g.id, now, [
    [`grant:${g.id}`, -left],
    ["voided", left],
  ]);
  w.emit("grant.voided", g.account_id, { ...grantEventData(g), written_off: left, reason }, now);
  return { grant: { ...g }, replay: false };
}

function grantEventData(g: GrantRecord): Record<string, unknown> {
  return {
    grant_id: g.id,
    account_id: g.account_id,
    kind: g.kind,
    amount: g.amount,
    remaining: g.remaining,
    effective_at: g.effective_at,
    expires_at: g.expires_at,
    reference: g.reference,
    source: g.source,
  };
}

// ---------- debits ----------

interface Draw {
  parts: Part[];
  overage: bigint;
}

/** Plans a draw of `amount` from the account's grants, applying its overage policy. Changes nothing. */
function planDraw(w: Working, account: AccountRecord, amount: bigint, now: number): Draw {
  const plan = planAllocation(w.grantsOf(account.id), amount, now);
  if (plan.shortfall === 0n) return { parts: plan.parts, overage: 0n };
  if (account.overage_policy === "allow") {
    // Without a limit, outstanding overage is still bounded by MAX_AMOUNT: it must fit the ledger.
    const room = (account.overage_limit ?? MAX_AMOUNT) - account.overage_balance;
    if (plan.shortfall <= room) return { parts: plan.parts, overage: plan.shortfall };
    const missing = plan.shortfall - (room > 0n ? room : 0n);
    throw insufficient(account.id, missing, plan.covered);
  }
  throw insufficient(account.id, plan.shortfall, plan.covered);
}

function insufficient(accountId: string, shortfall: bigint, available: bigint): TallyError {
  return new TallyError(
    "insufficient_credits",
    `account ${accountId} is short of ${formatCredits(shortfall)} credits`,
    { field: "amount", shortfall, available },
  );
}

/** Takes the planned parts from their grants; returns the journal legs (negative on each grant). */
function takeParts(w: Working, parts: readonly Part[]): [string, bigint][] {
  const legs: [string, bigint][] = [];
  for (const p of parts) {
    const g = w.grants.get(p.grant_id)!;
    invariant(g.remaining >= p.amount, `grant ${g.id} overdrawn`);
    g.remaining -= p.amount;
    w.grants.touch(g.id);
    legs.push([`grant:${g.id}`, -p.amount]);
  }
  return legs;
}

function debit(w: Working, input: DebitInput, now: number): DebitResult {
  const fields = {
    account_id: input.account_id,
    amount: input.amount,
    service: input.service,
    quantity: input.quantity ?? null,
    metadata: input.metadata ?? {},
    hold_id: null,
    ...(input.occurred_at !== undefined ? { occurred_at: input.occurred_at } : {}),
  };
  const existing = w.usages.get(input.id);
  if (existing) {
    assertSameFields("usage", input.id, usageFields(existing, input.occurred_at !== undefined), fields);
    return { usage: copyUsage(existing), replay: true };
  }
  const account = requireAccount(w, input.account_id, "account_id");
  requireActive(account);
  settle(w, account.id, now);
  const draw = planDraw(w, account, input.amount, now);
  checkBudgets(w, account.id, input.api_key_id ?? null, input.amount);
  chargeBudgets(w, account.id, input.api_key_id ?? null, input.amount);
  const txnId = newId("txn", now);
  const legs = takeParts(w, draw.parts);
  if (draw.overage > 0n) {
    account.overage_balance += draw.overage;
    w.accounts.touch(account.id);
    legs.push(["overage", -draw.overage]);
  }
  legs.push(["consumed", input.amount]);
  w.post(txnId, account.id, "debit", input.id, now, legs);
  const usage: UsageRecord = {
    id: input.id,
    account_id: account.id,
    service: input.service,
    quantity: fields.quantity,
    cost: input.amount,
    overage: draw.overage,
    overage_refunded: 0n,
    refunded: 0n,
    parts: draw.parts.map((p) => ({ ...p, refunded: 0n })),
    hold_id: null,
    occurred_at: input.occurred_at ?? now,
    recorded_at: now,
    metadata: fields.metadata,
    txn_id: txnId,
  };
  w.usages.insert(usage);
  w.emitDrafts(input.events, now);
  return { usage: copyUsage(usage), replay: false };
}

/**
 * The identifying fields of a usage, read back from the record (usages keep no copy of their request:
 * they are the hot path). An omitted occurred_at on a retry matches whatever the original recorded.
 */
function usageFields(u: UsageRecord, withOccurredAt: boolean): Record<string, unknown> {
  return {
    account_id: u.account_id,
    amount: u.cost,
    service: u.service,
    quantity: u.quantity,
    metadata: u.metadata,
    hold_id: u.hold_id,
    ...(withOccurredAt ? { occurred_at: u.occurred_at } : {}),
  };
}

// ---------- holds ----------

function hold(w: Working, input: HoldInput, now: number): HoldResult {
  const fields = {
    account_id: input.account_id,
    amount: input.amount,
    ttl_ms: input.ttl_ms ?? null,
    expires_at: input.expires_at ?? null,
    metadata: input.metadata ?? {},
  };
  if (input.id) {
    const existing = w.holds.get(input.id);
    if (existing) {
      assertSameRequest("hold", input.id, existing.request, fields);
      return { hold: copyHold(existing), replay: true };
    }
  }
  const account = requireAccount(w, input.account_id, "account_id");
  requireActive(account);
  const expiresAt = input.expires_at ?? now + (input.ttl_ms ?? LIMITS.DEFAULT_HOLD_TTL_MS);
  if (expiresAt <= now) throw TallyError.validation("expires_at", "must be in the future");
  if (expiresAt - now > LIMITS.MAX_HOLD_TTL_MS)
    throw TallyError.validation(
      "expires_at",
      `must be at most ${LIMITS.MAX_HOLD_TTL_MS / 3600_000} hours away`,
    );
  settle(w, account.id, now);
  const plan = planAllocation(w.grantsOf(account.id), input.amount, now);
  // A hold sets aside real credits only; overage is decided when the hold is captured.
  if (plan.shortfall > 0n) throw insufficient(account.id, plan.shortfall, plan.covered);
  // A hold that would pass a budget is refused; its capture is charged (the work is done by then).
  checkBudgets(w, account.id, null, input.amount);
  const h: HoldRecord = {
    id: input.id ?? newId("hld", now),
    account_id: account.id,
    amount: input.amount,
    parts: plan.parts.map((p) => ({ ...p })),
    status: "active",
    expires_at: expiresAt,
    created_at: now,
    closed_at: null,
    captured_amount: 0n,
    usage_id: null,
    metadata: fields.metadata,
    request: requestText(fields),
  };
  const legs = takeParts(w, plan.parts);
  legs.push([`hold:${h.id}`, input.amount]);
  w.holds.insert(h);
  w.post(newId("txn", now), account.id, "hold", h.id, now, legs);
  w.emitDrafts(input.events, now);
  return { hold: copyHold(h), replay: false };
}

/**
 * Returns held parts to their grants. Credits whose grant has expired or was voided in the meantime
 * are written off at once, in the same transaction.
 */
function returnParts(w: Working, parts: readonly Part[], at: number): [string, bigint][] {
  const legs: [string, bigint][] = [];
  for (const p of parts) {
    if (p.amount === 0n) continue;
    const g = w.grants.get(p.grant_id);
    invariant(g, `grant ${p.grant_id} of a part was not loaded`);
    legs.push([`grant:${g.id}`, p.amount]);
    if (g.status === "voided") {
      legs.push([`grant:${g.id}`, -p.amount], ["voided", p.amount]);
    } else if (g.status === "expired" || isExpiredAt(g, at)) {
      legs.push([`grant:${g.id}`, -p.amount], ["expired", p.amount]);
    } else {
      g.remaining += p.amount;
      invariant(g.remaining <= g.amount, `grant ${g.id} above its amount`);
      w.grants.touch(g.id);
    }
  }
  return legs;
}

function holdState(h: HoldRecord, now: number): "active" | "expired" | HoldRecord["status"] {
  if (h.status === "active" && h.expires_at <= now) return "expired";
  return h.status;
}

function capture(w: Working, input: CaptureInput, now: number): CaptureResult {
  const h = w.holds.get(input.hold_id);
  if (!h) throw TallyError.notFound("hold", input.hold_id, "hold_id");
  const usageId = input.usage_id ?? captureUsageId(h.id);
  const fields = {
    account_id: h.account_id,
    amount: input.amount,
    service: input.service,
    quantity: input.quantity ?? null,
    metadata: input.metadata ?? {},
    hold_id: h.id,
  };
  const state = holdState(h, now);
  if (state === "captured") {
    const u = h.usage_id ? w.usages.get(h.usage_id) : undefined;
    if (u && u.id === usageId) {
      assertSameFields("capture of hold", h.id, usageFields(u, false), fields);
      return { hold: copyHold(h), usage: copyUsage(u), replay: true };
    }
    throw new TallyError("hold_not_active", `hold ${h.id} was already captured`, {
      field: "hold_id",
      status: state,
    });
  }
  if (state === "released")
    throw new TallyError("hold_not_active", `hold ${h.id} was released`, { field: "hold_id", status: state });
  if (state === "expired")
    throw new TallyError("hold_expired", `hold ${h.id} expired and its credits were freed`, {
      field: "hold_id",
    });
  if (w.usages.get(usageId))
    throw new TallyError("idempotency_conflict", `usage ${usageId} already exists`, {
      field: "usage_id",
      id: usageId,
    });
  const account = requireAccount(w, h.account_id, "hold_id");
  settle(w, account.id, now);

  const held = sumParts(h.parts);
  const fromHold: Part[] = [];
  const back: Part[] = [];
  let want = input.amount;
  for (const p of h.parts) {
    const take = p.amount < want ? p.amount : want;
    if (take > 0n) fromHold.push({ ...p, amount: take });
    if (p.amount - take > 0n) back.push({ ...p, amount: p.amount - take });
    want -= take;
  }
  // More than held: the extra is a normal debit under the account's overage policy.
  const draw = want > 0n ? planDraw(w, account, want, now) : { parts: [], overage: 0n };

  chargeBudgets(w, account.id, null, input.amount);
  const txnId = newId("txn", now);
  const legs: [string, bigint][] = [[`hold:${h.id}`, -held]];
  legs.push(...returnParts(w, back, now));
  legs.push(...takeParts(w, draw.parts));
  if (draw.overage > 0n) {
    account.overage_balance += draw.overage;
    w.accounts.touch(account.id);
    legs.push(["overage", -draw.overage]);
  }
  legs.push(["consumed", input.amount]);
  w.post(txnId, account.id, "capture", usageId, now, legs);

  const merged = new Map<string, UsagePart>();
  for (const p of [...fromHold, ...draw.parts]) {
    const m = merged.get(p.grant_id);
    if (m) m.amount += p.amount;
    else merged.set(p.grant_id, { ...p, refunded: 0n });
  }
  const usage: UsageRecord = {
    id: usageId,
    account_id: account.id,
    service: input.service,
    quantity: fields.quantity,
    cost: input.amount,
    overage: draw.overage,
    overage_refunded: 0n,
    refunded: 0n,
    parts: [...merged.values()],
    hold_id: h.id,
    occurred_at: now,
    recorded_at: now,
    metadata: fields.metadata,
    txn_id: txnId,
  };
  w.usages.insert(usage);
  h.status = "captured";
  // Adds to what capture_part took before (0 for a hold never partly captured).
  h.captured_amount += input.amount;
  h.parts = [];
  h.closed_at = now;
  h.usage_id = usageId;
  w.holds.touch(h.id);
  w.emitDrafts(input.events, now);
  return { hold: copyHold(h), usage: copyUsage(usage), replay: false };
}

function release(w: Working, holdId: string, now: number): HoldResult {
  const h = w.holds.get(holdId);
  if (!h) throw TallyError.notFound("hold", holdId, "hold_id");
  const state = holdState(h, now);
  if (state === "captured")
    throw new TallyError("hold_not_active", `hold ${h.id} was already captured`, {
      field: "hold_id",
      status: state,
    });
  if (state === "expired") {
    settle(w, h.account_id, now);
    return { hold: copyHold(h), replay: true };
  }
  if (state === "released") return { hold: copyHold(h), replay: true };
  settle(w, h.account_id, now);
  const held = sumParts(h.parts);
  const legs: [string, bigint][] = [[`hold:${h.id}`, -held], ...returnParts(w, h.parts, now)];
  w.post(newId("txn", now), h.account_id, "release", h.id, now, legs);
  h.status = "released";
  h.parts = [];
  h.closed_at = now;
  w.holds.touch(h.id);
  return { hold: copyHold(h), replay: false };
}

// ---------- open holds: extend, capture part (live sessions) ----------

/** An active hold, or the error a command on a hold that is not active gets. */
function requireActiveHold(w: Working, holdId: string, now: number): HoldRecord {
  const h = w.holds.get(holdId);
  if (!h) throw TallyError.notFound("hold", holdId, "hold_id");
  const state = holdState(h, now);
  if (state === "expired")
    throw new TallyError("hold_expired", `hold ${h.id} expired and its credits were freed`, {
      field: "hold_id",
    });
  if (state !== "active")
    throw new TallyError("hold_not_active", `hold ${h.id} was ${state}`, { field: "hold_id", status: state });
  return h;
}

function extendHold(w: Working, input: ExtendHoldInput, now: number): HoldResult {
  const h = requireActiveHold(w, input.hold_id, now);
  const expiresAt = input.expires_at ?? h.expires_at;
  if (input.from_amount !== undefined && h.amount !== input.from_amount) {
    // Already applied (a retry, or a racing caller that did the same): a replay.
    if (h.amount === input.from_amount + input.amount && h.expires_at >= expiresAt)
      return { hold: copyHold(h), replay: true };
    throw new TallyError(
      "idempotency_conflict",
      `hold ${h.id} holds ${formatCredits(h.amount)} in all, not ${formatCredits(input.from_amount)}`,
      { field: "from_amount", id: h.id },
    );
  }
  if (expiresAt < h.expires_at)
    throw TallyError.validation("expires_at", "must not be earlier than the hold's current expiry");
  if (expiresAt - now > LIMITS.MAX_HOLD_TTL_MS)
    throw TallyError.validation(
      "expires_at",
      `must be at most ${LIMITS.MAX_HOLD_TTL_MS / 3600_000} hours away`,
    );
  if (h.amount + input.amount > MAX_AMOUNT)
    throw TallyError.validation("amount", "would make the hold larger than the largest amount");
  const account = requireAccount(w, h.account_id, "hold_id");
  requireActive(account);
  settle(w, account.id, now);
  if (input.amount > 0n) {
    const plan = planAllocation(w.grantsOf(account.id), input.amount, now);
    // As for a new hold: only real credits are set aside.
    if (plan.shortfall > 0n) throw insufficient(account.id, plan.shortfall, plan.covered);
    const legs = takeParts(w, plan.parts);
    legs.push([`hold:${h.id}`, input.amount]);
    w.post(newId("txn", now), account.id, "hold", h.id, now, legs);
    for (const p of plan.parts) {
      const same = h.parts.find((q) => q.grant_id === p.grant_id);
      if (same) same.amount += p.amount;
      else h.parts.push({ ...p });
    }
    h.amount += input.amount;
  }
  h.expires_at = expiresAt;
  w.holds.touch(h.id);
  return { hold: copyHold(h), replay: false };
}

function capturePart(w: Working, input: CapturePartInput, now: number): CaptureResult {
  const fields = {
    account_id: w.holds.get(input.hold_id)?.account_id ?? null,
    amount: input.amount,
    service: input.service,
    quantity: input.quantity ?? null,
    metadata: input.metadata ?? {},
    hold_id: input.hold_id,
  };
  const existing = w.usages.get(input.usage_id);
  if (existing) {
    assertSameFields("usage", input.usage_id, usageFields(existing, false), fields);
    const h = w.holds.get(input.hold_id)!;
    return { hold: copyHold(h), usage: copyUsage(existing), replay: true };
  }
  const h = requireActiveHold(w, input.hold_id, now);
  if (input.from_captured !== undefined && h.captured_amount !== input.from_captured)
    throw new TallyError(
      "idempotency_conflict",
      `hold ${h.id} has ${formatCredits(h.captured_amount)} captured, not ${formatCredits(input.from_captured)}`,
      { field: "from_captured", id: h.id },
    );
  const held = sumParts(h.parts);
  if (input.amount > held)
    throw TallyError.validation(
      "amount",
      `is more than the ${formatCredits(held)} credits the hold has left`,
    );
  const account = requireAccount(w, h.account_id, "hold_id");
  settle(w, account.id, now);
  // Taken from the hold's parts in burn-down order, as a full capture would.
  const taken: UsagePart[] = [];
  let want = input.amount;
  for (const p of h.parts) {
    if (want === 0n) break;
    const take = p.amount < want ? p.amount : want;
    if (take === 0n) continue;
    p.amount -= take;
    want -= take;
    taken.push({ grant_id: p.grant_id, kind: p.kind, amount: take, refunded: 0n });
  }
  h.parts = h.parts.filter((p) => p.amount > 0n);
  const txnId = newId("txn", now);
  w.post(txnId, account.id, "capture", input.usage_id, now, [
    [`hold:${h.id}`, -input.amount],
    ["consumed", input.amount],
  ]);
  const usage: UsageRecord = {
    id: input.usage_id,
    account_id: account.id,
    service: input.service,
    quantity: fields.quantity,
    cost: input.amount,
    overage: 0n,
    overage_refunded: 0n,
    refunded: 0n,
    parts: taken,
    hold_id: h.id,
    occurred_at: now,
    recorded_at: now,
    metadata: fields.metadata,
    txn_id: txnId,
  };
  w.usages.insert(usage);
  h.captured_amount += input.amount;
  h.usage_id = usage.id;
  w.holds.touch(h.id);
  return { hold: copyHold(h), usage: copyUsage(usage), replay: false };
}

// ---------- refunds ----------

function refund(w: Working, input: RefundInput, now: number): RefundResult {
  const fields = { usage_id: input.usage_id, amount: input.amount ?? null, reason: input.reason ?? null };
  if (input.id) {
    const existing = w.refunds.get(input.id);
    if (existing) {
      assertSameRequest("refund", input.id, existing.request, fields);
      const u = w.usages.get(existing.usage_id)!;
      return { refund: { ...existing }, usage: copyUsage(u), replay: true };
    }
  }
  const u = w.usages.get(input.usage_id);
  if (!u) throw TallyError.notFound("usage", input.usage_id, "usage_id");
  const refundable = u.cost - u.refunded;
  const amount = input.amount ?? refundable;
  if (amount === 0n || amount > refundable)
    throw new TallyError(
      "refund_exceeds_usage",
      `usage ${u.id} has ${formatCredits(refundable)} credits left to refund`,
      { field: "amount", refundable },
    );
  const account = requireAccount(w, u.account_id, "usage_id");
  settle(w, account.id, now);

  // Overage first (it would otherwise be billed), then the grants in reverse burn-down order.
  let left = amount;
  const legs: [string, bigint][] = [["consumed", -amount]];
  const overageBack = min(left, u.overage - u.overage_refunded);
  if (overageBack > 0n) {
    u.overage_refunded += overageBack;
    account.overage_balance -= overageBack;
    invariant(account.overage_balance >= 0n, `negative overage on ${account.id}`);
    w.accounts.touch(account.id);
    legs.push(["overage", overageBack]);
    left -= overageBack;
  }
  const back: Part[] = [];
  for (let i = u.parts.length - 1; i >= 0 && left > 0n; i--) {
    const p = u.parts[i]!;
    const take = min(left, p.amount - p.refunded);
    if (take === 0n) continue;
    p.refunded += take;
    back.push({ grant_id: p.grant_id, kind: p.kind, amount: take });
    left -= take;
  }
  invariant(left === 0n, `refund of ${u.id} not fully distributed`);
  legs.push(...returnParts(w, back, now));
  u.refunded += amount;
  w.usages.touch(u.id);
  const txnId = newId("txn", now);
  const r = {
    id: input.id ?? newId("rfd", now),
    usage_id: u.id,
    account_id: account.id,
    amount,
    reason: fields.reason,
    created_at: now,
    txn_id: txnId,
    request: requestText(fields),
  };
  w.refunds.insert(r);
  w.post(txnId, account.id, "refund", r.id, now, legs);
  w.emit(
    "usage.refunded",
    account.id,
    {
      refund_id: r.id,
      usage_id: u.id,
      account_id: account.id,
      amount,
      usage_refunded_total: u.refunded,
      reason: r.reason,
    },
    now,
  );
  w.emitDrafts(input.events, now);
  return { refund: { ...r }, usage: copyUsage(u), replay: false };
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

// ---------- expiry ----------

/**
 * Writes off everything of the account that is due at `now`, exactly once: holds past their expiry
 * return their credits first (effective at the hold's expiry), then grants past their expiry write off
 * what remains (effective at the grant's expiry), whether this runs on time or late.
 */
export function settle(w: Working, accountId: string, now: number): SettleResult {
  // All commands of a batch share one `now` and nothing new becomes due within a batch: once is enough.
  if (w.settled.has(accountId)) return { expired_grants: 0, expired_holds: 0 };
  w.settled.add(accountId);
  let expiredHolds = 0;
  let expiredGrants = 0;
  const dueHolds = w.holdsOf(accountId).filter((h) => h.status === "active" && h.expires_at <= now);
  dueHolds.sort((a, b) => a.expires_at - b.expires_at || (a.id < b.id ? -1 : 1));
  for (const h of dueHolds) {
    const held = sumParts(h.parts);
    const legs: [string, bigint][] = [[`hold:${h.id}`, -held], ...returnParts(w, h.parts, h.expires_at)];
    w.post(newId("txn", now), accountId, "hold_expiry", h.id, h.expires_at, legs);
    h.status = "expired";
    h.parts = [];
    h.closed_at = h.expires_at;
    w.holds.touch(h.id);
    w.emit(
      "hold.expired",
      accountId,
      { hold_id: h.id, account_id: accountId, amount: held, expired_at: h.expires_at },
      now,
    );
    expiredHolds++;
  }
  // In order of expiry, so the journal reads chronologically whatever order the store loaded them in.
  const dueGrants = w.grantsOf(accountId).filter((g) => g.status === "active" && isExpiredAt(g, now));
  dueGrants.sort(compareBurnDown);
  dueGrants.sort((a, b) => a.expires_at! - b.expires_at!);
  for (const g of dueGrants) {
    const left = g.remaining;
    g.status = "expired";
    g.closed_at = g.expires_at;
    g.remaining = 0n;
    w.grants.touch(g.id);
    if (left > 0n) {
      w.post(newId("txn", now), accountId, "expiry", g.id, g.expires_at!, [
        [`grant:${g.id}`, -left],
        ["expired", left],
      ]);
      w.emit(
        "grant.expired",
        accountId,
        { ...grantEventData(g), written_off: left, expired_at: g.expires_at },
        now,
      );
      expiredGrants++;
    }
  }
  return { expired_grants: expiredGrants, expired_holds: expiredHolds };
}
