/**
 * Live sessions (DESIGN.md §1 "Live sessions", RFC 4006-style credit control): start holds the first grant,
 * update extends it and periodically commits usage, end captures the exact price of the whole call and
 * releases the rest; sessions whose client vanished are settled at their last reported usage.
 *
 * Money is in the ledger hold (held = hold parts, committed = hold.captured_amount): every engine command
 * here is idempotent (deterministic usage ids, from_amount on extensions), and every session write is
 * conditional on the version read, so a retry or a second process never charges twice.
 */
import { formatCredits } from "../domain/amount.ts";
import type { Clock } from "../domain/clock.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { rateCardAt, type RateCard } from "../domain/pricing.ts";
import {
  SESSION_LIMITS as L,
  billableSeconds,
  callPricer,
  maxCoveredSeconds,
  nextGrant,
  sessionRate,
  type CallPrice,
  type Direction,
  type HoldInterval,
} from "../domain/sessions.ts";
import type { Engine } from "../ledger/engine.ts";
import type { Metadata } from "../ledger/types.ts";
import type { RateCards } from "../pricing/rate-cards.ts";
import type { SessionRecord, SessionStore } from "./types.ts";

/** A hold outlives its session's validity by this much, so the sweep settles the session first. */
export const HOLD_GRACE_MS = 10 * 60_000;
const CAS_RETRIES = 5;
const LIMIT_KEY = "session_limit:";

export interface SessionEvent {
  type: "session.started" | "session.final_warning" | "session.ended" | "session.abandoned";
  account_id: string;
  data: Metadata;
}

export interface StartInput {
  account_id: string;
  service: string;
  direction?: Direction;
  metadata?: Metadata;
  grant_seconds?: number;
  validity_seconds?: number;
  debit_interval_seconds?: number;
  answered_at?: number;
}

export interface UpdateInput {
  answered_at?: number;
  hold_started_at?: number;
  hold_ended_at?: number;
  /** Billable seconds so far, when the caller counts them itself. */
  billable_seconds?: number;
  grant_seconds?: number;
}

export interface EndInput {
  answered_at?: number;
  ended_at?: number;
  holds?: HoldInterval[];
  billable_seconds?: number;
}

/** What start and update answer (besides the session). */
export interface GrantView {
  session: SessionRecord;
  /** Seconds the caller may still use before the next update is needed (authorized − used). */
  granted_seconds: number;
  /**
   * Longest whole call the session's money covers now (billable seconds). Known at the start and whenever the balance was read (a final grant); null on other
   * updates, which do not read the balance.
   */
  max_seconds: number | null;
  final: boolean;
  held_amount: bigint;
}

export interface EndView {
  session: SessionRecord;
  replay: boolean;
}

export class SessionService {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly pricers = new Map<string, CallPrice>();

  constructor(
    readonly engine: Engine,
    readonly rateCards: RateCards,
    readonly store: SessionStore,
  ) {}

  get clock(): Clock {
    return this.engine.clock;
  }

  /**
   * Session events go to the outbox after the session write that decides them (a conditional update only
   * one writer wins), and from there to webhooks and the live streams (engine.onCommit in this process).
   */
  private async emit(events: SessionEvent[]): Promise<void> {
    await this.engine.publish(events);
  }

  // ---------- limits ----------

  async concurrencyLimit(accountId: string): Promise<number | null> {
    const v = await this.engine.store.getSetting(LIMIT_KEY + accountId);
    return v === null || v === "" ? null : Number(v);
  }

  async setConcurrencyLimit(accountId: string, limit: number | null): Promise<void> {
    await this.engine.getAccount(accountId);
    if (limit !== null && (!Number.isInteger(limit) || limit < 1 || limit > L.MAX_CONCURRENT_LIMIT))
      throw TallyError.validation(
        "max_concurrent",
        `must be an integer from 1 to ${L.MAX_CONCURRENT_LIMIT}, or null`,
      );
    // The settings table has no delete: an empty value means no limit.
    await this.engine.store.putSetting(LIMIT_KEY + accountId, limit === null ? "" : String(limit));
  }

  // ---------- pricing ----------

  private async cardVersion(version: number): Promise<RateCard> {
    const card = (await this.rateCards.versions()).find((c) => c.version === version);
    if (!card) throw new TallyError("internal_error", `rate card version ${version} is missing`);
    return card;
  }

  /** One pricer (with its cache of durations) per rate version, service, direction and metadata. */
  private async pricerOf(
    s: Pick<SessionRecord, "rate_version" | "service" | "direction" | "metadata">,
  ): Promise<CallPrice> {
    const key = `${s.rate_version}|${s.service}|${s.direction}|${JSON.stringify(s.metadata)}`;
    let p = this.pricers.get(key);
    if (!p) {
      const card = await this.cardVersion(s.rate_version);
      p = callPricer(sessionRate(card, s.service, s.direction), s.metadata);
      if (this.pricers.size >= 1000) this.pricers.clear();
      this.pricers.set(key, p);
    }
    return p;
  }

  // ---------- start ----------

  async start(input: StartInput): Promise<GrantView> {
    const now = this.clock.now();
    const direction = input.direction ?? "inbound";
    const grantSeconds = intIn(
      input.grant_seconds,
      L.DEFAULT_GRANT_SECONDS,
      L.MIN_GRANT_SECONDS,
      L.MAX_GRANT_SECONDS,
      "grant_seconds",
    );
    const validity = intIn(
      input.validity_seconds,
      L.DEFAULT_VALIDITY_SECONDS,
      L.MIN_VALIDITY_SECONDS,
      L.MAX_VALIDITY_SECONDS,
      "validity_seconds",
    );
    const debitInterval = intIn(
      input.debit_interval_seconds,
      L.DEFAULT_DEBIT_INTERVAL_SECONDS,
      L.MIN_DEBIT_INTERVAL_SECONDS,
      L.MAX_DEBIT_INTERVAL_SECONDS,
      "debit_interval_seconds",
    );
    if (input.answered_at !== undefined && input.answered_at > now + 60_000)
      throw TallyError.validation("answered_at", "must not be in the future");
    const account = await this.engine.getAccount(input.account_id);
    if (account.status !== "active")
      throw new TallyError("account_not_active", `account ${account.id} is ${account.status}`, {
        field: "account_id",
        status: account.status,
      });
    const card = rateCardAt(await this.rateCards.versions(), now, "service");
    const metadata = input.metadata ?? {};
    const price = callPricer(sessionRate(card, input.service, direction), metadata);

    // Sessions past their validity no longer count: settle them first.
    for (const due of await this.store.listDueOf(account.id, now)) await this.abandon(due.id);
    const limit = await this.concurrencyLimit(account.id);
    if (limit !== null && (await this.store.countActive(account.id)) >= limit)
      throw limitReached(account.id, limit);

    const id = newId("ses", now);
    const holdId = "hld_" + id.slice(4);
    const holdExpiresAt = now + validity * 1000 + HOLD_GRACE_MS;
    // Admission: the shortest call (one second: the minimum and the per-call fee) must be covered by what
    // is available — every live session's own hold already covers its minimum, so nothing of theirs is taken.
    const plan = async () => {
      const available = (await this.engine.balance(account.id)).available;
      const minimum = price(1);
      if (available < minimum)
        throw new TallyError(
          "insufficient_credits",
          `account ${account.id} cannot cover the shortest call (${formatCredits(minimum)} credits)`,
          { field: "account_id", shortfall: minimum - available, available },
        );
      const max = maxCoveredSeconds(price, available, L.MAX_SESSION_SECONDS);
      // Every second the held amount pays for (increments and the minimum round the grant up).
      const granted = coveredBy(price, Math.min(grantSeconds, max));
      return { max, granted, amount: price(granted) };
    };
    let p = await plan();
    const s: SessionRecord = {
      id,
      account_id: account.id,
      service: input.service,
      direction,
      status: "active",
      hold_id: p.amount > 0n ? holdId : null,
      hold_amount: p.amount,
      hold_expires_at: p.amount > 0n ? holdExpiresAt : 0,
      rate_version: card.version,
      metadata,
      grant_seconds: grantSeconds,
      validity_seconds: validity,
      debit_interval_seconds: debitInterval,
      answered_at: input.answered_at ?? null,
      holds: [],
      used_seconds: 0,
      authorized_seconds: p.granted,
      committed_seconds: 0,
      committed_amount: 0n,
      commit_usage_ids: [],
      final: p.granted < grantSeconds,
      valid_until: now + validity * 1000,
      created_at: now,
      updated_at: now,
      ended_at: null,
      billable_seconds: null,
      charged_seconds: null,
      charged_amount: null,
      version: 1,
    };
    // The row first (the concurrency limit is checked atomically with the insert), then the hold, which
    // carries the events: they exist exactly when the session's credits are held.
    if (!(await this.store.insert(s, limit))) throw limitReached(account.id, limit ?? 0);
    const events = (v: SessionRecord, max: number): SessionEvent[] => [
      {
        type: "session.started",
        account_id: v.account_id,
        data: eventData(v, { granted_seconds: v.authorized_seconds, max_seconds: max }),
      },
      ...(v.final ? [finalWarning(v, v.authorized_seconds)] : []),
    ];
    if (!s.hold_id) {
      await this.emit(events(s, p.max));
      return { session: s, granted_seconds: p.granted, max_seconds: p.max, final: s.final, held_amount: 0n };
    }
    let cur = s;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.engine.hold({
          id: holdId,
          account_id: account.id,
          amount: cur.hold_amount,
          expires_at: holdExpiresAt,
          metadata: { session_id: id },
          events: events(cur, p.max),
        });
        return {
          session: cur,
          granted_seconds: cur.authorized_seconds,
          max_seconds: p.max,
          final: cur.final,
          held_amount: cur.hold_amount,
        };
      } catch (err) {
        // The balance moved between the read and the hold: plan again (a few times), or give up cleanly.
        const moved = err instanceof TallyError && err.code === "insufficient_credits" && attempt < 2;
        let next: SessionRecord;
        if (moved) {
          try {
            p = await plan();
          } catch (refused) {
            await this.store.update({ ...cancelled(cur, now) }, cur.version);
            throw refused;
          }
          next = {
            ...cur,
            hold_amount: p.amount,
            authorized_seconds: p.granted,
            final: p.granted < grantSeconds,
            version: cur.version + 1,
          };
        } else next = cancelled(cur, now);
        if (!(await this.store.update(next, cur.version))) throw err;
        if (!moved) throw err;
        cur = next;
      }
    }
  }

  // ---------- update ----------

  async update(id: string, input: UpdateInput): Promise<GrantView> {
    return this.serial(id, () => this.updateOnce(id, input));
  }

  private async updateOnce(id: string, input: UpdateInput): Promise<GrantView> {
    for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
      const now = this.clock.now();
      const s = await this.requireLive(id, now);
      const next = structuredClone(s);
      applyFacts(next, input, now);
      const price = await this.pricerOf(s);
      const used = Math.max(
        s.used_seconds,
        input.billable_seconds ?? billableSeconds(next.answered_at, now, next.holds),
      );
      if (used > L.MAX_SESSION_SECONDS)
        throw TallyError.validation("billable_seconds", `must be at most ${L.MAX_SESSION_SECONDS}`);
      const grantSeconds = intIn(
        input.grant_seconds,
        s.grant_seconds,
        L.MIN_GRANT_SECONDS,
        L.MAX_GRANT_SECONDS,
        "grant_seconds",
      );
      next.used_seconds = used;
      next.valid_until = now + s.validity_seconds * 1000;

      let max: number | null = null;
      if (s.hold_id) {
        const money = await this.extend(s, price, used, grantSeconds, now);
        next.authorized_seconds = money.authorized;
        next.final = money.final;
        next.hold_amount = money.hold_amount;
        next.hold_expires_at = money.hold_expires_at;
        next.committed_amount = money.committed;
        max = money.max;
        // The periodic debit: commit what is used (as far as authorized) once a debit interval has passed.
        const upTo = Math.min(used, next.authorized_seconds);
        if (upTo - s.committed_seconds >= debitInterval(s)) {
          const c = await this.commit(s, price, upTo, next.committed_amount);
          next.committed_seconds = upTo;
          next.committed_amount = c.captured_total;
          if (c.usage_id && !next.commit_usage_ids.includes(c.usage_id))
            next.commit_usage_ids.push(c.usage_id);
        }
      } else {
        next.authorized_seconds = Math.min(used + grantSeconds, L.MAX_SESSION_SECONDS);
        next.final = next.authorized_seconds < used + grantSeconds;
      }
      const held = next.hold_amount - next.committed_amount;
      next.updated_at = now;
      next.version = s.version + 1;
      if (!(await this.store.update(next, s.version))) continue; // another writer: read again
      const granted = Math.max(0, next.authorized_seconds - used);
      if (next.final && !s.final) await this.emit([finalWarning(next, granted)]);
      return {
        session: next,
        granted_seconds: granted,
        max_seconds: max,
        final: next.final,
        held_amount: held,
      };
    }
    throw new TallyError("idempotency_conflict", `session ${id} is being updated concurrently; retry`, {
      field: "id",
    });
  }

  /**
   * Keeps the hold ahead of the call: when less than half a grant is left, extends it to used + grant (as far
   * as the balance allows; only then is the balance read), and pushes its expiry when it comes near. The
   * common update touches the ledger once every few updates, with the values of the session row as
   * compare-and-set guards (a stale row is refused by the ledger, and the hold is read again).
   */
  private async extend(
    s: SessionRecord,
    price: CallPrice,
    used: number,
    grant: number,
    now: number,
  ): Promise<{
    authorized: number;
    final: boolean;
    hold_amount: bigint;
    hold_expires_at: number;
    committed: bigint;
    max: number | null;
  }> {
    const cap = L.MAX_SESSION_SECONDS;
    const wantExpiry = now + s.validity_seconds * 1000 + HOLD_GRACE_MS;
    let amount = s.hold_amount;
    let committed = s.committed_amount;
    let expires = s.hold_expires_at;
    let budget: bigint | null = null; // set once the balance was read (the final path)
    for (let attempt = 0; attempt < 6; attempt++) {
      // Every second the session's money (held + captured) pays for.
      const paid = Math.max(s.authorized_seconds, coveredBy(price, maxCoveredSeconds(price, amount, cap)));
      const low = paid - used < Math.ceil(grant / 2) && paid < cap;
      const nearExpiry = expires - now < s.validity_seconds * 1000 + HOLD_GRACE_MS / 2;
      if (!low && !nearExpiry)
        return {
          authorized: paid,
          final: s.final,
          hold_amount: amount,
          hold_expires_at: expires,
          committed,
          max: null,
        };
      let target = low ? Math.min(used + grant, cap) : paid;
      let final = low && used + grant > cap;
      let max: number | null = null;
      if (budget !== null) {
        max = maxCoveredSeconds(price, budget, cap);
        const d = nextGrant({
          used_seconds: used,
          authorized_seconds: paid,
          grant_seconds: grant,
          covered_seconds: max,
          cap_seconds: cap,
        });
        target = d.authorized_seconds;
        final = d.final;
      }
      const more = price(target) - amount;
      try {
        const r = await this.engine.extendHold({
          hold_id: s.hold_id!,
          amount: more > 0n ? more : 0n,
          from_amount: amount,
          expires_at: Math.max(wantExpiry, expires),
        });
        return {
          authorized: Math.max(paid, coveredBy(price, target)),
          final,
          hold_amount: r.hold.amount,
          hold_expires_at: r.hold.expires_at,
          committed: r.hold.captured_amount,
          max,
        };
      } catch (err) {
        if (!(err instanceof TallyError)) throw err;
        if (err.code === "insufficient_credits") {
          // Not enough for a full grant: read the balance and grant what it covers (final).
          budget = amount + (await this.engine.balance(s.account_id)).available;
        } else if (
          err.code === "idempotency_conflict" ||
          err.code === "hold_not_active" ||
          err.code === "hold_expired"
        ) {
          const h = await this.engine.getHold(s.hold_id!);
          if (h.status !== "active" || h.expires_at <= now) throw notLive(s, "its hold is no longer active");
          amount = h.amount;
          committed = h.captured_amount;
          expires = h.expires_at;
        } else throw err;
      }
    }
    throw new TallyError("idempotency_conflict", `session ${s.id} is being updated concurrently; retry`, {
      field: "id",
    });
  }

  /**
   * Captures price(upTo) − committed from the hold (usage id derived from the session and upTo); the
   * captured total is the compare-and-set guard, so a stale view never captures twice.
   */
  private async commit(
    s: SessionRecord,
    price: CallPrice,
    upTo: number,
    committed: bigint,
  ): Promise<{ usage_id: string | null; captured_total: bigint }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const amount = price(upTo) - committed;
      if (amount <= 0n) return { usage_id: null, captured_total: committed };
      const usageId = `${s.id}.t${upTo}`;
      try {
        const r = await this.engine.capturePart({
          hold_id: s.hold_id!,
          amount,
          usage_id: usageId,
          service: s.service,
          quantity: String(upTo),
          metadata: { session_id: s.id, direction: s.direction, committed_seconds: upTo },
          from_captured: committed,
        });
        return { usage_id: usageId, captured_total: r.hold.captured_amount };
      } catch (err) {
        if (!(
          err instanceof TallyError &&
          err.code === "idempotency_conflict" &&
          err.details.field === "from_captured"
        ))
          throw err;
        committed = (await this.engine.getHold(s.hold_id!)).captured_amount;
      }
    }
    throw new TallyError("idempotency_conflict", `session ${s.id} is being updated concurrently; retry`, {
      field: "id",
    });
  }

  // ---------- end and abandonment ----------

  async end(id: string, input: EndInput): Promise<EndView> {
    return this.serial(id, async () => {
      for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
        const now = this.clock.now();
        const s = await this.get(id);
        if (s.status !== "active") return { session: s, replay: true };
        const answeredAt = input.answered_at ?? s.answered_at;
        const endedAt = input.ended_at ?? now;
        if (answeredAt !== null && endedAt < answeredAt)
          throw TallyError.validation("ended_at", "must not be before answered_at");
        const holds = input.holds ?? closeHolds(s.holds, endedAt);
        checkHolds(holds, "holds");
        const billable = input.billable_seconds ?? billableSeconds(answeredAt, endedAt, holds);
        if (!Number.isInteger(billable) || billable < 0 || billable > L.MAX_SESSION_SECONDS)
          throw TallyError.validation(
            "billable_seconds",
            `must be an integer from 0 to ${L.MAX_SESSION_SECONDS}`,
          );
        const done = await this.settle(s, billable, "ended", now, {
          answered_at: answeredAt,
          holds,
          ended_at: endedAt,
        });
        if (done) return { session: done, replay: false };
      }
      throw new TallyError("idempotency_conflict", `session ${id} is being ended concurrently; retry`, {
        field: "id",
      });
    });
  }

  /**
   * Charges the whole call: price(billable) on the session's rate, capped at what the session's money covers
   * (committed + held + whatever the balance still gives) — "charged exactly up to the covered second".
   * Returns null when another writer changed the session first.
   */
  private async settle(
    s: SessionRecord,
    billable: number,
    status: "ended" | "abandoned",
    now: number,
    facts: { answered_at: number | null; holds: HoldInterval[]; ended_at: number },
  ): Promise<SessionRecord | null> {
    const price = await this.pricerOf(s);
    let charged = billable;
    let amount = price(billable);
    let committed = 0n;
    const finalUsage = `${s.id}.end`;
    // A hold that was never taken (the process stopped between the session's insert and its hold): the
    // session never had credits and is charged nothing.
    const h = s.hold_id ? await this.engine.store.getHold(s.hold_id) : null;
    if (s.hold_id && !h) {
      amount = 0n;
      charged = 0;
    } else if (h) {
      committed = h.captured_amount;
      const held = h.status === "active" ? h.amount - h.captured_amount : 0n;
      if (h.status === "captured") {
        // Already settled by another writer whose session write is still to come (or was lost): same result.
        const u = await this.engine.getUsage(h.usage_id!);
        amount = committed;
        charged = Number(u.quantity ?? billable);
      } else {
        if (amount > committed + held) {
          // More than held: the balance may still cover it (never overdrawn: blocked accounts cap below).
          const available = (await this.engine.balance(s.account_id)).available;
          charged = maxCoveredSeconds(price, committed + held + available, billable);
          amount = price(charged);
        }
        const remainder = amount - committed;
        if (h.status === "active" && remainder > 0n) {
          try {
            await this.engine.capture({
              hold_id: h.id,
              amount: remainder,
              usage_id: finalUsage,
              service: s.service,
              quantity: String(charged),
              metadata: { session_id: s.id, direction: s.direction, billable_seconds: billable },
            });
          } catch (err) {
            if (!(err instanceof TallyError && err.code === "insufficient_credits")) throw err;
            // The balance moved: charge what the hold itself covers.
            charged = maxCoveredSeconds(price, committed + held, billable);
            amount = price(charged);
            if (amount > committed)
              await this.engine.capture({
                hold_id: h.id,
                amount: amount - committed,
                usage_id: finalUsage,
                service: s.service,
                quantity: String(charged),
                metadata: { session_id: s.id, direction: s.direction, billable_seconds: billable },
              });
            else await this.engine.release(h.id);
          }
        } else if (h.status === "active") {
          await this.engine.release(h.id);
        } else if (remainder > 0n) {
          // The hold expired (the service was down past the grace): debit what the balance covers.
          const available = (await this.engine.balance(s.account_id)).available;
          charged = maxCoveredSeconds(price, committed + available, charged);
          amount = price(charged);
          if (amount > committed)
            await this.engine.debit({
              id: finalUsage,
              account_id: s.account_id,
              amount: amount - committed,
              service: s.service,
              quantity: String(charged),
              metadata: { session_id: s.id, direction: s.direction, billable_seconds: billable },
            });
        }
        if (amount < committed) {
          // Committed more than the whole call costs (the end reported less than the updates): refund the excess.
          await this.refundExcess(s, committed - amount);
        }
      }
    } else {
      amount = 0n;
    }
    const next: SessionRecord = {
      ...structuredClone(s),
      status,
      answered_at: facts.answered_at,
      holds: facts.holds,
      ended_at: facts.ended_at,
      used_seconds: Math.max(s.used_seconds, status === "ended" ? billable : s.used_seconds),
      billable_seconds: billable,
      charged_seconds: charged,
      charged_amount: amount,
      committed_amount: committed,
      updated_at: now,
      version: s.version + 1,
    };
    if (!(await this.store.update(next, s.version))) return null;
    const type = status === "ended" ? "session.ended" : "session.abandoned";
    await this.emit([{ type, account_id: s.account_id, data: eventData(next, {}) }]);
    return next;
  }

  private async refundExcess(s: SessionRecord, excess: bigint): Promise<void> {
    let left = excess;
    for (const usageId of [...s.commit_usage_ids].reverse()) {
      if (left === 0n) break;
      const u = await this.engine.getUsage(usageId);
      const refundable = u.cost - u.refunded;
      const take = refundable < left ? refundable : left;
      if (take === 0n) continue;
      await this.engine.refund({
        id: `${usageId}.refund`,
        usage_id: usageId,
        amount: take,
        reason: "session ended shorter than committed",
      });
      left -= take;
    }
  }

  /** Settles a session past its validity at its last reported usage. No-op if it is no longer due. */
  async abandon(id: string): Promise<SessionRecord> {
    return this.serial(id, async () => {
      for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
        const now = this.clock.now();
        const s = await this.get(id);
        if (s.status !== "active" || s.valid_until > now) return s;
        const endedAt = s.valid_until;
        const done = await this.settle(s, s.used_seconds, "abandoned", now, {
          answered_at: s.answered_at,
          holds: closeHolds(s.holds, endedAt),
          ended_at: endedAt,
        });
        if (done) return done;
      }
      return this.get(id);
    });
  }

  /** The sweep: settles every abandoned session (in rounds); returns how many. */
  async sweep(limit = 500): Promise<number> {
    let n = 0;
    const failed: { id: string; err: unknown }[] = [];
    for (let round = 0; round < 100; round++) {
      const due = await this.store.listDue(this.clock.now(), limit);
      for (const s of due) {
        try {
          const r = await this.abandon(s.id);
          if (r.status === "abandoned") n++;
        } catch (err) {
          // One session that cannot be settled now (the store briefly down) must not hold up the others.
          failed.push({ id: s.id, err });
        }
      }
      if (failed.length >= limit) break;
      if (due.length < limit) break;
    }
    if (failed.length > 0)
      throw new AggregateError(
        failed.map((f) => f.err),
        `${n} sessions settled; ${failed.length} could not be (first: ${failed[0]!.id}), retried at the next sweep`,
      );
    return n;
  }

  // ---------- reads ----------

  async get(id: string): Promise<SessionRecord> {
    const s = await this.store.get(id);
    if (!s) throw TallyError.notFound("session", id, "id");
    return s;
  }

  /** A session as it stands now: one past its validity is settled first. */
  async read(id: string): Promise<SessionRecord> {
    const s = await this.get(id);
    if (s.status === "active" && s.valid_until <= this.clock.now()) return this.abandon(id);
    return s;
  }

  private async requireLive(id: string, now: number): Promise<SessionRecord> {
    const s = await this.get(id);
    if (s.status === "active" && s.valid_until <= now) {
      const done = await this.settleLocked(s);
      throw notLive(done, "its validity ran out before this update; it was settled as abandoned");
    }
    if (s.status !== "active") throw notLive(s, `it is ${s.status}`);
    return s;
  }

  /** Abandons inside a serialized section (the lock is already held). */
  private async settleLocked(s: SessionRecord): Promise<SessionRecord> {
    const done = await this.settle(s, s.used_seconds, "abandoned", this.clock.now(), {
      answered_at: s.answered_at,
      holds: closeHolds(s.holds, s.valid_until),
      ended_at: s.valid_until,
    });
    return done ?? this.get(s.id);
  }

  /** One operation per session at a time in this process (other processes are kept out by the version). */
  private serial<T>(id: string, f: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(f, f);
    const tail = run.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }
}

/**
 * The debit interval in force: doubled after every 100 commits, so a very long call keeps a bounded list
 * of committed usages (under 700 for 24 h at the smallest interval) and still shows its running usage.
 */
function debitInterval(s: SessionRecord): number {
  return s.debit_interval_seconds * 2 ** Math.floor(s.commit_usage_ids.length / 100);
}

/** A session whose hold could not be taken: closed at once, charged nothing, no event. */
function cancelled(s: SessionRecord, now: number): SessionRecord {
  return {
    ...s,
    status: "ended",
    hold_id: null,
    hold_amount: 0n,
    ended_at: now,
    billable_seconds: 0,
    charged_seconds: 0,
    charged_amount: 0n,
    updated_at: now,
    version: s.version + 1,
  };
}

/** The most seconds that cost no more than `seconds` do (increments and the minimum round up). */
function coveredBy(price: CallPrice, seconds: number): number {
  const cost = price(seconds);
  if (cost === 0n) return seconds; // free: grant what was asked, no more
  return Math.max(seconds, maxCoveredSeconds(price, cost, L.MAX_SESSION_SECONDS));
}

function intIn(value: number | undefined, dflt: number, min: number, max: number, field: string): number {
  if (value === undefined) return dflt;
  if (!Number.isInteger(value) || value < min || value > max)
    throw TallyError.validation(field, `must be an integer from ${min} to ${max}`);
  return value;
}

function limitReached(accountId: string, limit: number): TallyError {
  return new TallyError(
    "session_limit_reached",
    `account ${accountId} already has ${limit} live sessions (its limit)`,
    { field: "account_id", limit },
  );
}

function notLive(s: SessionRecord, why: string): TallyError {
  return new TallyError("session_not_active", `session ${s.id} is not live: ${why}`, {
    field: "id",
    status: s.status,
  });
}

/** Records what the update reports: the answer time (once), hold start and end. Validates before changing. */
function applyFacts(s: SessionRecord, i: UpdateInput, now: number): void {
  const late = now + 60_000; // clocks differ a little; more than a minute ahead is an error
  if (i.answered_at !== undefined) {
    if (i.answered_at > late) throw TallyError.validation("answered_at", "must not be in the future");
    if (s.answered_at !== null && s.answered_at !== i.answered_at)
      throw TallyError.validation("answered_at", "differs from the answer time already reported");
    if (i.answered_at < s.created_at - 3600_000)
      throw TallyError.validation("answered_at", "must not be more than an hour before the session started");
    s.answered_at = i.answered_at;
  }
  const open = s.holds.length > 0 && s.holds[s.holds.length - 1]!.end === null;
  if (i.hold_started_at !== undefined) {
    if (open) throw TallyError.validation("hold_started_at", "the call is already on hold");
    if (i.hold_started_at > late) throw TallyError.validation("hold_started_at", "must not be in the future");
    if (s.holds.length >= L.MAX_HOLD_INTERVALS)
      throw TallyError.validation("hold_started_at", `at most ${L.MAX_HOLD_INTERVALS} holds per session`);
    s.holds.push({ start: i.hold_started_at, end: null });
  }
  if (i.hold_ended_at !== undefined) {
    const last = s.holds[s.holds.length - 1];
    if (!last || last.end !== null) throw TallyError.validation("hold_ended_at", "the call is not on hold");
    if (i.hold_ended_at < last.start)
      throw TallyError.validation("hold_ended_at", "must not be before the hold started");
    last.end = i.hold_ended_at;
  }
  if (i.billable_seconds !== undefined) {
    if (!Number.isInteger(i.billable_seconds) || i.billable_seconds < 0)
      throw TallyError.validation("billable_seconds", "must be a non-negative integer");
    if (i.billable_seconds < s.used_seconds)
      throw TallyError.validation(
        "billable_seconds",
        `must not go back (${s.used_seconds} already reported)`,
      );
  }
}

function closeHolds(holds: HoldInterval[], at: number): HoldInterval[] {
  return holds.map((h) => ({ start: h.start, end: h.end ?? Math.max(at, h.start) }));
}

function checkHolds(holds: HoldInterval[], field: string): void {
  if (holds.length > L.MAX_HOLD_INTERVALS)
    throw TallyError.validation(field, `must hold at most ${L.MAX_HOLD_INTERVALS} intervals`);
  holds.forEach((h, i) => {
    if (h.end !== null && h.end < h.start)
      throw TallyError.validation(`${field}[${i}].ended_at`, "must not be before started_at");
  });
}

function eventData(s: SessionRecord, extra: Metadata): Metadata {
  return {
    session_id: s.id,
    service: s.service,
    direction: s.direction,
    status: s.status,
    used_seconds: s.used_seconds,
    ...(s.charged_amount !== null
      ? {
          billable_seconds: s.billable_seconds,
          charged_seconds: s.charged_seconds,
          charged_amount: formatCredits(s.charged_amount),
        }
      : {}),
    ...extra,
  };
}

function finalWarning(s: SessionRecord, secondsLeft: number): SessionEvent {
  return {
    type: "session.final_warning",
    account_id: s.account_id,
    data: { session_id: s.id, service: s.service, used_seconds: s.used_seconds, seconds_left: secondsLeft },
  };
}
