/**
 * A small reference model of the credit ledger, written from the rules in DESIGN.md §1 (Amounts, Grants,
 * The journal, Debit, Holds) and docs/concepts.md — deliberately NOT from src/ledger/apply.ts.
 *
 * It is plain, eager and slow: time is processed event by event (a hold frees its credits at its expiry, a
 * grant writes off what it has left at its expiry), and every command works on plain maps. The property
 * test (test/property.test.ts) runs the same command sequence through the engine and this model and
 * compares outcomes, balances, allocations and journal totals.
 */

export type Kind = "subscription" | "purchase" | "promotional" | "carryover" | "adjustment";
export const KINDS: readonly Kind[] = ["subscription", "purchase", "promotional", "carryover", "adjustment"];

/**
 * Default priorities (lower is used first): an old plan's carried-over supply, then the monthly supply,
 * then promotional credits, then operator adjustments, then purchased packs (DESIGN.md "Burn-down order").
 */
export const MODEL_DEFAULT_PRIORITY: Record<Kind, number> = {
  carryover: 10,
  subscription: 20,
  promotional: 30,
  adjustment: 40,
  purchase: 50,
};

export const HOLD_DEFAULT_TTL_MS = 15 * 60_000;
export const HOLD_MAX_TTL_MS = 7 * 24 * 3600_000;

export type Policy = "block" | "allow";

export interface MAccount {
  id: string;
  policy: Policy;
  limit: bigint | null;
  /** Outstanding overage. */
  overage: bigint;
  /** Journal-level totals, for comparison with the engine's postings once it has settled. */
  issued: bigint;
  consumed: bigint;
  expired: bigint;
  voided: bigint;
}

export interface MGrant {
  id: string;
  account: string;
  kind: Kind;
  amount: bigint;
  priority: number;
  effective_at: number;
  expires_at: number | null;
  /** Creation order within the model (the third burn-down key). */
  seq: number;
  remaining: bigint;
  status: "active" | "expired" | "voided";
  request: Fields;
}

export interface MPart {
  grant_id: string;
  kind: Kind;
  amount: bigint;
}

export interface MUsagePart extends MPart {
  refunded: bigint;
}

export interface MHold {
  id: string;
  account: string;
  amount: bigint;
  parts: MPart[];
  status: "active" | "captured" | "released" | "expired";
  expires_at: number;
  request: Fields;
  /** Set when captured: the usage and whether its id was given explicitly (for replays). */
  usage_id: string | null;
  explicit_usage_id: string | null;
}

export interface MUsage {
  id: string;
  account: string;
  cost: bigint;
  overage: bigint;
  overage_refunded: bigint;
  refunded: bigint;
  parts: MUsagePart[];
  hold_id: string | null;
  request: Fields;
}

export interface MRefund {
  id: string;
  usage_id: string;
  amount: bigint;
  request: Fields;
}

/** Canonical text of each identifying field of a request. */
export type Fields = Record<string, string>;

export interface MBalance {
  total: bigint;
  available: bigint;
  held: bigint;
  overage: bigint;
  by_kind: Record<Kind, bigint>;
  scheduled: bigint;
}

export type MError = {
  ok: false;
  code: string;
  field?: string;
  shortfall?: bigint;
};
export type MOk<T> = { ok: true; replay: boolean; value: T };
export type MOutcome<T> = MOk<T> | MError;

function fail(code: string, extra: { field?: string; shortfall?: bigint } = {}): MError {
  return { ok: false, code, ...extra };
}
function ok<T>(value: T, replay = false): MOk<T> {
  return { ok: true, replay, value };
}

function text(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) ?? "null";
}

/** Builds the identifying fields of a request; undefined and null are the same ("not given"). */
export function fieldsOf(obj: Record<string, unknown>): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(obj)) out[k] = v === undefined ? "null" : text(v);
  return out;
}

/** The first field (in name order) whose value differs, or null when the requests are the same. */
export function firstDifference(a: Fields, b: Fields): string | null {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const k of keys) if ((a[k] ?? "null") !== (b[k] ?? "null")) return k;
  return null;
}

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export interface ModelState {
  now: number;
  seq: number;
  accounts: Map<string, MAccount>;
  grants: Map<string, MGrant>;
  holds: Map<string, MHold>;
  usages: Map<string, MUsage>;
  refunds: Map<string, MRefund>;
}

export interface GrantCmd {
  id: string;
  account_id: string;
  kind: Kind;
  amount: bigint;
  priority?: number;
  effective_at?: number;
  expires_at?: number | null;
  metadata?: Record<string, string>;
}

export interface DebitCmd {
  id: string;
  account_id: string;
  amount: bigint;
  service: string;
  metadata?: Record<string, string>;
}

export interface HoldCmd {
  id?: string;
  account_id: string;
  amount: bigint;
  ttl_ms?: number;
  expires_at?: number;
  metadata?: Record<string, string>;
}

export interface CaptureCmd {
  hold_id: string;
  amount: bigint;
  usage_id?: string;
  service: string;
  metadata?: Record<string, string>;
}

export interface RefundCmd {
  id?: string;
  usage_id: string;
  amount?: bigint;
  reason?: string;
}

export class Model {
  constructor(readonly s: ModelState) {}

  static empty(now: number): Model {
    return new Model({
      now,
      seq: 0,
      accounts: new Map(),
      grants: new Map(),
      holds: new Map(),
      usages: new Map(),
      refunds: new Map(),
    });
  }

  clone(): Model {
    return new Model(structuredClone(this.s));
  }

  get now(): number {
    return this.s.now;
  }

  // ---------- time ----------

  /**
   * Moves time forward to `t`, processing every expiry on the way in time order. A grant expiring at T
   * writes off what it has left; a hold expiring at T frees its credits back to their grants as of T
   * (written off at once when the grant has expired by T or was voided).
   */
  advanceTo(t: number): void {
    if (t < this.s.now) throw new Error(`model time cannot go back (${t} < ${this.s.now})`);
    type Ev = { at: number; order: number; run: () => void };
    const events: Ev[] = [];
    for (const g of this.s.grants.values())
      if (g.status === "active" && g.expires_at !== null && g.expires_at <= t)
        events.push({ at: g.expires_at, order: 0, run: () => this.expireGrant(g) });
    for (const h of this.s.holds.values())
      if (h.status === "active" && h.expires_at <= t)
        events.push({ at: h.expires_at, order: 1, run: () => this.expireHold(h) });
    events.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const e of events) e.run();
    this.s.now = t;
  }

  private expireGrant(g: MGrant): void {
    const a = this.s.accounts.get(g.account)!;
    a.expired += g.remaining;
    g.remaining = 0n;
    g.status = "expired";
  }

  private expireHold(h: MHold): void {
    for (const p of h.parts) this.giveBack(p.grant_id, p.amount, h.expires_at);
    h.parts = [];
    h.status = "expired";
  }

  /** Credits coming back to a grant at `at`: spendable again, or written off if the grant is gone. */
  private giveBack(grantId: string, amount: bigint, at: number): void {
    if (amount === 0n) return;
    const g = this.s.grants.get(grantId)!;
    const a = this.s.accounts.get(g.account)!;
    if (g.status === "voided") a.voided += amount;
    else if (g.status === "expired" || (g.expires_at !== null && g.expires_at <= at)) a.expired += amount;
    else {
      g.remaining += amount;
      if (g.remaining > g.amount) throw new Error(`model: grant ${g.id} above its amount`);
    }
  }

  // ---------- burn-down ----------

  /** Spendable grants of an account now, in burn-down order. */
  spendable(accountId: string): MGrant[] {
    const now = this.s.now;
    return [...this.s.grants.values()]
      .filter(
        (g) =>
          g.account === accountId &&
          g.status === "active" &&
          g.remaining > 0n &&
          g.effective_at <= now &&
          (g.expires_at === null || g.expires_at > now),
      )
      .sort((a, b) => {
        if (a.priority !== b.priority) return a.priority - b.priority;
        const ea = a.expires_at ?? Infinity;
        const eb = b.expires_at ?? Infinity;
        if (ea !== eb) return ea - eb;
        return a.seq - b.seq;
      });
  }

  private plan(accountId: string, amount: bigint): { parts: MPart[]; short: bigint } {
    const parts: MPart[] = [];
    let left = amount;
    for (const g of this.spendable(accountId)) {
      if (left === 0n) break;
      const take = min(left, g.remaining);
      parts.push({ grant_id: g.id, kind: g.kind, amount: take });
      left -= take;
    }
    return { parts, short: left };
  }

  /** Burn-down plus the overage policy. Returns the draw, or the refusal (nothing changed). */
  private draw(a: MAccount, amount: bigint): { parts: MPart[]; overage: bigint } | MError {
    const { parts, short } = this.plan(a.id, amount);
    if (short === 0n) return { parts, overage: 0n };
    if (a.policy === "allow") {
      if (a.limit === null) return { parts, overage: short };
      const room = a.limit - a.overage;
      if (short <= room) return { parts, overage: short };
      return fail("insufficient_credits", { field: "amount", shortfall: short - (room > 0n ? room : 0n) });
    }
    return fail("insufficient_credits", { field: "amount", shortfall: short });
  }

  private take(parts: readonly MPart[]): void {
    for (const p of parts) {
      const g = this.s.grants.get(p.grant_id)!;
      if (g.remaining < p.amount) throw new Error(`model: grant ${g.id} overdrawn`);
      g.remaining -= p.amount;
    }
  }

  // ---------- commands ----------

  addAccount(id: string, policy: Policy, limit: bigint | null): void {
    this.s.accounts.set(id, {
      id,
      policy,
      limit,
      overage: 0n,
      issued: 0n,
      consumed: 0n,
      expired: 0n,
      voided: 0n,
    });
  }

  grant(c: GrantCmd): MOutcome<MGrant> {
    if (c.amount <= 0n) return fail("validation_error", { field: "amount" });
    if (c.expires_at != null && c.effective_at !== undefined && c.expires_at <= c.effective_at)
      return fail("validation_error", { field: "expires_at" });
    const request = fieldsOf({
      account_id: c.account_id,
      kind: c.kind,
      amount: c.amount,
      priority: c.priority ?? MODEL_DEFAULT_PRIORITY[c.kind],
      effective_at: c.effective_at,
      expires_at: c.expires_at,
      metadata: c.metadata ?? {},
    });
    const existing = this.s.grants.get(c.id);
    if (existing) return this.replayOrConflict(existing.request, request, existing);
    const a = this.s.accounts.get(c.account_id);
    if (!a) return fail("not_found", { field: "account_id" });
    const effective = c.effective_at ?? this.s.now;
    if (c.expires_at != null && (c.expires_at <= effective || c.expires_at <= this.s.now))
      return fail("validation_error", { field: "expires_at" });
    const g: MGrant = {
      id: c.id,
      account: a.id,
      kind: c.kind,
      amount: c.amount,
      priority: c.priority ?? MODEL_DEFAULT_PRIORITY[c.kind],
      effective_at: effective,
      expires_at: c.expires_at ?? null,
      seq: ++this.s.seq,
      remaining: c.amount,
      status: "active",
      request,
    };
    this.s.grants.set(g.id, g);
    a.issued += c.amount;
    return ok(g);
  }

  voidGrant(id: string): MOutcome<MGrant> {
    const g = this.s.grants.get(id);
    if (!g) return fail("not_found", { field: "grant_id" });
    if (g.status === "voided") return ok(g, true);
    if (g.status === "expired") return fail("grant_not_active", { field: "grant_id" });
    const a = this.s.accounts.get(g.account)!;
    a.voided += g.remaining;
    g.remaining = 0n;
    g.status = "voided";
    return ok(g);
  }

  debit(c: DebitCmd): MOutcome<MUsage> {
    if (c.amount < 0n) return fail("validation_error", { field: "amount" });
    const request = fieldsOf({
      account_id: c.account_id,
      amount: c.amount,
      service: c.service,
      metadata: c.metadata ?? {},
    });
    const existing = this.s.usages.get(c.id);
    if (existing) return this.replayOrConflict(existing.request, request, existing);
    const a = this.s.accounts.get(c.account_id);
    if (!a) return fail("not_found", { field: "account_id" });
    const d = this.draw(a, c.amount);
    if ("ok" in d) return d;
    this.take(d.parts);
    a.overage += d.overage;
    a.consumed += c.amount;
    const u: MUsage = {
      id: c.id,
      account: a.id,
      cost: c.amount,
      overage: d.overage,
      overage_refunded: 0n,
      refunded: 0n,
      parts: d.parts.map((p) => ({ ...p, refunded: 0n })),
      hold_id: null,
      request,
    };
    this.s.usages.set(u.id, u);
    return ok(u);
  }

  /** `assignedId`: the hold's id (the client's, or the one the engine generated). */
  hold(c: HoldCmd, assignedId: string): MOutcome<MHold> {
    if (c.amount <= 0n) return fail("validation_error", { field: "amount" });
    if (c.ttl_ms !== undefined && (c.ttl_ms <= 0 || c.ttl_ms > HOLD_MAX_TTL_MS))
      return fail("validation_error", { field: "ttl_ms" });
    const request = fieldsOf({
      account_id: c.account_id,
      amount: c.amount,
      ttl_ms: c.ttl_ms,
      expires_at: c.expires_at,
      metadata: c.metadata ?? {},
    });
    if (c.id !== undefined) {
      const existing = this.s.holds.get(c.id);
      if (existing) return this.replayOrConflict(existing.request, request, existing);
    }
    const a = this.s.accounts.get(c.account_id);
    if (!a) return fail("not_found", { field: "account_id" });
    const now = this.s.now;
    const expiresAt = c.expires_at ?? now + (c.ttl_ms ?? HOLD_DEFAULT_TTL_MS);
    if (expiresAt <= now || expiresAt - now > HOLD_MAX_TTL_MS)
      return fail("validation_error", { field: "expires_at" });
    // A hold sets aside real credits only: it never goes into overage.
    const { parts, short } = this.plan(a.id, c.amount);
    if (short > 0n) return fail("insufficient_credits", { field: "amount", shortfall: short });
    this.take(parts);
    const h: MHold = {
      id: assignedId,
      account: a.id,
      amount: c.amount,
      parts,
      status: "active",
      expires_at: expiresAt,
      request,
      usage_id: null,
      explicit_usage_id: null,
    };
    this.s.holds.set(h.id, h);
    return ok(h);
  }

  /** `defaultUsageId`: the usage id the engine derives from the hold when none is given. */
  capture(c: CaptureCmd, defaultUsageId: string): MOutcome<{ hold: MHold; usage: MUsage }> {
    if (c.amount < 0n) return fail("validation_error", { field: "amount" });
    const h = this.s.holds.get(c.hold_id);
    if (!h) return fail("not_found", { field: "hold_id" });
    const request = fieldsOf({ amount: c.amount, service: c.service, metadata: c.metadata ?? {} });
    if (h.status === "captured") {
      const sameUsage = (c.usage_id ?? null) === h.explicit_usage_id;
      if (!sameUsage) return fail("hold_not_active", { field: "hold_id" });
      const u = this.s.usages.get(h.usage_id!)!;
      const diff = firstDifference(u.request, { ...request, account_id: u.request.account_id! });
      if (diff) return fail("idempotency_conflict", { field: diff });
      return ok({ hold: h, usage: u }, true);
    }
    if (h.status === "released") return fail("hold_not_active", { field: "hold_id" });
    if (h.status === "expired") return fail("hold_expired", { field: "hold_id" });
    const usageId = c.usage_id ?? defaultUsageId;
    if (this.s.usages.has(usageId)) return fail("idempotency_conflict", { field: "usage_id" });
    const a = this.s.accounts.get(h.account)!;

    // Consume from the hold's parts in order; the extra beyond the hold is a normal debit.
    const fromHold: MPart[] = [];
    const back: MPart[] = [];
    let want = c.amount;
    for (const p of h.parts) {
      const t = min(want, p.amount);
      if (t > 0n) fromHold.push({ ...p, amount: t });
      if (p.amount > t) back.push({ ...p, amount: p.amount - t });
      want -= t;
    }
    let extra: { parts: MPart[]; overage: bigint } = { parts: [], overage: 0n };
    if (want > 0n) {
      const d = this.draw(a, want);
      if ("ok" in d) return d;
      extra = d;
    }
    for (const p of back) this.giveBack(p.grant_id, p.amount, this.s.now);
    this.take(extra.parts);
    a.overage += extra.overage;
    a.consumed += c.amount;
    // One part per grant, in the order the credits were taken.
    const parts: MUsagePart[] = [];
    for (const p of [...fromHold, ...extra.parts]) {
      const same = parts.find((q) => q.grant_id === p.grant_id);
      if (same) same.amount += p.amount;
      else parts.push({ ...p, refunded: 0n });
    }
    const u: MUsage = {
      id: usageId,
      account: a.id,
      cost: c.amount,
      overage: extra.overage,
      overage_refunded: 0n,
      refunded: 0n,
      parts,
      hold_id: h.id,
      request: { ...request, account_id: text(a.id) },
    };
    this.s.usages.set(u.id, u);
    h.status = "captured";
    h.parts = [];
    h.usage_id = u.id;
    h.explicit_usage_id = c.usage_id ?? null;
    return ok({ hold: h, usage: u });
  }

  release(holdId: string): MOutcome<MHold> {
    const h = this.s.holds.get(holdId);
    if (!h) return fail("not_found", { field: "hold_id" });
    if (h.status === "captured") return fail("hold_not_active", { field: "hold_id" });
    // Releasing twice, or releasing a hold that has already freed its credits by expiring, is harmless.
    if (h.status !== "active") return ok(h, true);
    for (const p of h.parts) this.giveBack(p.grant_id, p.amount, this.s.now);
    h.parts = [];
    h.status = "released";
    return ok(h);
  }

  /** `assignedId`: the refund's id (the client's, or the one the engine generated). */
  refund(c: RefundCmd, assignedId: string): MOutcome<{ refund: MRefund; usage: MUsage }> {
    if (c.amount !== undefined && c.amount <= 0n) return fail("validation_error", { field: "amount" });
    const request = fieldsOf({ usage_id: c.usage_id, amount: c.amount, reason: c.reason });
    if (c.id !== undefined) {
      const existing = this.s.refunds.get(c.id);
      if (existing) {
        const diff = firstDifference(existing.request, request);
        if (diff) return fail("idempotency_conflict", { field: diff });
        return ok({ refund: existing, usage: this.s.usages.get(existing.usage_id)! }, true);
      }
    }
    const u = this.s.usages.get(c.usage_id);
    if (!u) return fail("not_found", { field: "usage_id" });
    const refundable = u.cost - u.refunded;
    const amount = c.amount ?? refundable;
    if (amount === 0n || amount > refundable) return fail("refund_exceeds_usage", { field: "amount" });
    const a = this.s.accounts.get(u.account)!;
    // Overage first (it would otherwise be billed), then the grant parts, last taken first back.
    let left = amount;
    const ov = min(left, u.overage - u.overage_refunded);
    u.overage_refunded += ov;
    a.overage -= ov;
    left -= ov;
    for (let i = u.parts.length - 1; i >= 0 && left > 0n; i--) {
      const p = u.parts[i]!;
      const t = min(left, p.amount - p.refunded);
      if (t === 0n) continue;
      p.refunded += t;
      left -= t;
      this.giveBack(p.grant_id, t, this.s.now);
    }
    if (left !== 0n) throw new Error(`model: refund of ${u.id} not fully distributed`);
    u.refunded += amount;
    a.consumed -= amount;
    const r: MRefund = { id: assignedId, usage_id: u.id, amount, request };
    this.s.refunds.set(r.id, r);
    return ok({ refund: r, usage: u });
  }

  settle(accountId: string): MOutcome<null> {
    if (!this.s.accounts.has(accountId)) return fail("not_found", { field: "account_id" });
    return ok(null);
  }

  private replayOrConflict<T>(before: Fields, now: Fields, existing: T): MOutcome<T> {
    const diff = firstDifference(before, now);
    if (diff) return fail("idempotency_conflict", { field: diff });
    return ok(existing, true);
  }

  // ---------- reads ----------

  balance(accountId: string): MBalance {
    const now = this.s.now;
    const a = this.s.accounts.get(accountId)!;
    const by_kind = Object.fromEntries(KINDS.map((k) => [k, 0n])) as Record<Kind, bigint>;
    let available = 0n;
    let scheduled = 0n;
    let held = 0n;
    for (const g of this.s.grants.values()) {
      if (g.account !== accountId || g.status !== "active") continue;
      if (g.expires_at !== null && g.expires_at <= now) continue;
      if (g.effective_at > now) scheduled += g.remaining;
      else {
        available += g.remaining;
        by_kind[g.kind] += g.remaining;
      }
    }
    for (const h of this.s.holds.values())
      if (h.account === accountId && h.status === "active") for (const p of h.parts) held += p.amount;
    return { total: available + held, available, held, overage: a.overage, by_kind, scheduled };
  }

  /** The balance at a later instant, as it will be if nothing else happens. */
  balanceAt(accountId: string, t: number): MBalance {
    const m = this.clone();
    m.advanceTo(t);
    return m.balance(accountId);
  }

  /**
   * What the journal of an account must sum to by ledger account once every due expiry is written off:
   * issued (negative), consumed, overage (negative: outstanding), expired, voided, grants, held.
   */
  journalTotals(accountId: string): Record<string, bigint> {
    const a = this.s.accounts.get(accountId)!;
    let grants = 0n;
    let held = 0n;
    for (const g of this.s.grants.values()) if (g.account === accountId) grants += g.remaining;
    for (const h of this.s.holds.values())
      if (h.account === accountId && h.status === "active") for (const p of h.parts) held += p.amount;
    return {
      issued: -a.issued,
      consumed: a.consumed,
      overage: -a.overage,
      expired: a.expired,
      voided: a.voided,
      grants,
      held,
    };
  }

  /** The model's own conservation check: every credit issued (plus overage) is somewhere. */
  checkConservation(): void {
    for (const a of this.s.accounts.values()) {
      const t = this.journalTotals(a.id);
      let sum = 0n;
      for (const v of Object.values(t)) sum += v;
      if (sum !== 0n) throw new Error(`model: account ${a.id} does not conserve credits (${sum})`);
    }
  }
}
