/** Holds: create, capture (partial, full, more), release, automatic expiry, on every store. */
import { expect, it } from "vitest";
import { looksLikeId } from "../../src/domain/ids.ts";
import { LIMITS, type HoldInput } from "../../src/ledger/types.ts";
import { describeEachStore } from "../support/stores.ts";
import {
  DAY,
  HOUR,
  MINUTE,
  allEntries,
  cr,
  expectRefusedUnchanged,
  expectTallyError,
  fundedAccount,
  newAccount,
  partsOf,
  uid,
  useEngine,
  withFreshEngine,
} from "./harness.ts";

describeEachStore("holds: create", (kind) => {
  const t = useEngine(kind);

  it("sets credits aside in burn-down order: available drops, total stays", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "purchase", amount: cr(10) },
      { kind: "subscription", amount: cr(3) },
    ]);
    const now = t.clock.now();
    const { hold, replay } = await t.engine.hold({
      account_id: account,
      amount: cr(5),
      metadata: { job: "j1" },
    });
    expect(replay).toBe(false);
    expect(looksLikeId("hld", hold.id)).toBe(true);
    expect(hold).toMatchObject({
      account_id: account,
      amount: cr(5),
      status: "active",
      expires_at: now + LIMITS.DEFAULT_HOLD_TTL_MS,
      created_at: now,
      closed_at: null,
      captured_amount: 0n,
      usage_id: null,
      metadata: { job: "j1" },
    });
    expect(partsOf(hold.parts)).toEqual([
      [grants[1]!, "subscription", cr(3)],
      [grants[0]!, "purchase", cr(2)],
    ]);
    expect(await t.engine.getHold(hold.id)).toEqual(hold);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: cr(8),
      held: cr(5),
      total: cr(13),
    });
    expect(b.by_kind).toMatchObject({ subscription: 0n, purchase: cr(8) });
  });

  it("takes its lifetime from ttl_ms or expires_at", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const now = t.clock.now();
    const a = await t.engine.hold({ account_id: account, amount: cr(1), ttl_ms: 90_000 });
    expect(a.hold.expires_at).toBe(now + 90_000);
    const b = await t.engine.hold({ account_id: account, amount: cr(1), expires_at: now + DAY });
    expect(b.hold.expires_at).toBe(now + DAY);
    const c = await t.engine.hold({ account_id: account, amount: cr(1), ttl_ms: LIMITS.MAX_HOLD_TTL_MS });
    expect(c.hold.expires_at).toBe(now + LIMITS.MAX_HOLD_TTL_MS);
  });

  it("more than available is refused with the shortfall and nothing is held — even when overage is allowed", async () => {
    for (const policy of ["block", "allow"] as const) {
      const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(2) }], {
        overage_policy: policy,
      });
      const err = await expectRefusedUnchanged(
        t.engine,
        [account],
        () => t.engine.hold({ account_id: account, amount: cr(3) }),
        "insufficient_credits",
        "amount",
      );
      expect(err.details.shortfall).toBe(cr(1));
    }
  });

  it("is idempotent by id; the same id with a different amount is a conflict", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const id = uid("hld");
    const first = await t.engine.hold({ id, account_id: account, amount: cr(4), ttl_ms: HOUR });
    const again = await t.engine.hold({ id, account_id: account, amount: cr(4), ttl_ms: HOUR });
    expect(again.replay).toBe(true);
    expect(again.hold).toEqual(first.hold);
    expect((await t.engine.balance(account)).held).toBe(cr(4));
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.hold({ id, account_id: account, amount: cr(5), ttl_ms: HOUR }),
      "idempotency_conflict",
      "amount",
    );
  });

  it.each<[string, Record<string, unknown>]>([
    ["amount", { amount: 0n }],
    ["amount", { amount: -1n }],
    ["ttl_ms", { ttl_ms: 0 }],
    ["ttl_ms", { ttl_ms: -5 }],
    ["ttl_ms", { ttl_ms: 1.5 }],
    ["ttl_ms", { ttl_ms: LIMITS.MAX_HOLD_TTL_MS + 1 }],
    ["expires_at", { expires_at: "past" }],
    ["expires_at", { expires_at: "now" }],
    ["expires_at", { expires_at: "too far" }],
  ])("a hold with a bad %s is a validation error naming it, and nothing changes", async (field, change) => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const now = t.clock.now();
    const times: Record<string, number> = { past: now - 1, now, "too far": now + LIMITS.MAX_HOLD_TTL_MS + 1 };
    const input: Record<string, unknown> = { account_id: account, amount: cr(1), ...change };
    if (typeof input.expires_at === "string") input.expires_at = times[input.expires_at];
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.hold(input as unknown as HoldInput),
      "validation_error",
      field,
    );
  });

  it("a hold on an unknown account is not_found naming account_id", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.hold({ account_id: "acct-nobody", amount: cr(1) }),
      "not_found",
      "account_id",
    );
  });
});

describeEachStore("holds: capture and release", (kind) => {
  const t = useEngine(kind);

  it("a partial capture consumes that much and returns the rest", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(3) },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(6) });
    t.clock.advance(MINUTE);
    const {
      hold: after,
      usage,
      replay,
    } = await t.engine.capture({
      hold_id: hold.id,
      amount: cr(2),
      service: "batch",
      quantity: "20",
      metadata: { job: "j" },
    });
    expect(replay).toBe(false);
    expect(after).toMatchObject({
      status: "captured",
      captured_amount: cr(2),
      parts: [],
      usage_id: usage.id,
      closed_at: t.clock.now(),
    });
    expect(usage).toMatchObject({
      cost: cr(2),
      overage: 0n,
      hold_id: hold.id,
      service: "batch",
      quantity: "20",
      account_id: account,
    });
    expect(partsOf(usage.parts)).toEqual([[grants[0]!, "subscription", cr(2)]]);
    expect(await t.engine.getUsage(usage.id)).toEqual(usage);
    expect(await t.engine.getHold(hold.id)).toEqual(after);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(11), held: 0n });
    expect((await t.engine.getGrant(grants[0]!)).remaining).toBe(cr(1));
    expect((await t.engine.getGrant(grants[1]!)).remaining).toBe(cr(10));
  });

  it("a full capture consumes exactly the hold", async () => {
    const { account, grants } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(4), service: "batch" });
    expect(partsOf(usage.parts)).toEqual([[grants[0]!, "purchase", cr(4)]]);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(6), held: 0n });
  });

  it("a capture of zero releases everything and records a zero-cost usage", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: 0n, service: "batch" });
    expect(usage.cost).toBe(0n);
    expect((await t.engine.balance(account)).available).toBe(cr(10));
  });

  it("capturing more than held takes the extra as a normal debit in burn-down order", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(2) },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(1) });
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(5), service: "batch" });
    expect(usage.cost).toBe(cr(5));
    expect(partsOf(usage.parts)).toEqual([
      [grants[0]!, "subscription", cr(2)],
      [grants[1]!, "purchase", cr(3)],
    ]);
    expect((await t.engine.balance(account)).available).toBe(cr(7));
  });

  it("under block, an extra that is not covered is refused with its shortfall and the hold stays as it was", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(3) });
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(6), service: "batch" }),
      "insufficient_credits",
      "amount",
    );
    expect(err.details.shortfall).toBe(cr(1));
    expect(await t.engine.getHold(hold.id)).toEqual(hold);
    // The hold can still be captured within what is covered.
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(5), service: "batch" });
    expect(usage.cost).toBe(cr(5));
  });

  it("under allow, an uncovered extra becomes overage", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }], {
      overage_policy: "allow",
    });
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(3) });
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(8), service: "batch" });
    expect(usage.overage).toBe(cr(3));
    expect(usage.cost).toBe(cr(8));
    const b = await t.engine.balance(account);
    expect({ available: b.available, overage: b.overage }).toEqual({ available: 0n, overage: cr(3) });
  });

  it("a repeated capture is a replay; a second capture under another usage id is hold_not_active", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    const usageId = uid("use");
    const first = await t.engine.capture({
      hold_id: hold.id,
      amount: cr(3),
      service: "batch",
      usage_id: usageId,
    });
    expect(first.usage.id).toBe(usageId);
    t.clock.advance(HOUR);
    const again = await t.engine.capture({
      hold_id: hold.id,
      amount: cr(3),
      service: "batch",
      usage_id: usageId,
    });
    expect(again.replay).toBe(true);
    expect(again.usage).toEqual(first.usage);
    expect((await t.engine.balance(account)).available).toBe(cr(7));
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(3), service: "batch", usage_id: uid("use") }),
      "hold_not_active",
      "hold_id",
    );
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(4), service: "batch", usage_id: usageId }),
      "idempotency_conflict",
      "amount",
    );
    // A captured hold cannot be released either.
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.release(hold.id),
      "hold_not_active",
      "hold_id",
    );
  });

  it("a capture whose usage id is already taken by a debit is a conflict naming usage_id", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const taken = uid("use");
    await t.engine.debit({ id: taken, account_id: account, amount: cr(1), service: "x" });
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(1), service: "x", usage_id: taken }),
      "idempotency_conflict",
      "usage_id",
    );
    expect((await t.engine.getHold(hold.id)).status).toBe("active");
  });

  it("release returns every held credit to its grant, and is idempotent", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(3) },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5) });
    const released = await t.engine.release(hold.id);
    expect(released.replay).toBe(false);
    expect(released.hold).toMatchObject({
      status: "released",
      parts: [],
      closed_at: t.clock.now(),
      captured_amount: 0n,
    });
    expect((await t.engine.getGrant(grants[0]!)).remaining).toBe(cr(3));
    expect((await t.engine.getGrant(grants[1]!)).remaining).toBe(cr(10));
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(13), held: 0n });
    const entries = await allEntries(t.engine, account);

    t.clock.advance(MINUTE);
    const again = await t.engine.release(hold.id);
    expect(again.replay).toBe(true);
    expect(again.hold.status).toBe("released");
    expect(await allEntries(t.engine, account)).toEqual(entries);
  });

  it("capturing a released hold is hold_not_active, and nothing changes", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5) });
    await t.engine.release(hold.id);
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(1), service: "x" }),
      "hold_not_active",
      "hold_id",
    );
    expect(err.message).toMatch(/released/);
  });

  it("concurrent captures and releases of one hold: exactly one wins, credits move once", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    const results = await Promise.allSettled([
      ...Array.from({ length: 5 }, (_, i) =>
        t.engine.capture({ hold_id: hold.id, amount: cr(3), service: "x", usage_id: `${hold.id}-u${i}` }),
      ),
      ...Array.from({ length: 5 }, () => t.engine.release(hold.id)),
    ]);
    const after = await t.engine.getHold(hold.id);
    const captures = results.slice(0, 5).filter((r) => r.status === "fulfilled");
    const releases = results
      .slice(5)
      .filter((r) => r.status === "fulfilled" && !(r.value as { replay: boolean }).replay);
    if (after.status === "captured") {
      expect(captures).toHaveLength(1);
      expect(releases).toHaveLength(0);
      expect((await t.engine.balance(account)).available).toBe(cr(7));
    } else {
      expect(after.status).toBe("released");
      expect(captures).toHaveLength(0);
      expect(releases).toHaveLength(1);
      expect((await t.engine.balance(account)).available).toBe(cr(10));
    }
    for (const r of results)
      if (r.status === "rejected") expect((r.reason as { code?: string }).code).toBe("hold_not_active");
    expect((await t.engine.listUsages({ account_id: account })).data).toHaveLength(captures.length);
  });

  it("capture or release of an unknown hold is not_found naming hold_id", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.capture({ hold_id: "hld-missing", amount: cr(1), service: "x" }),
      "not_found",
      "hold_id",
    );
    await expectRefusedUnchanged(t.engine, [], () => t.engine.release("hld-missing"), "not_found", "hold_id");
    await expectTallyError(t.engine.getHold("hld-missing"), "not_found", "hold_id");
  });
});

describeEachStore("holds: expiry", (kind) => {
  const t = useEngine(kind);

  it("an expired hold frees its credits by itself, before any sweep", async () => {
    const { account, grants } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(6), ttl_ms: 10 * MINUTE });
    t.clock.advance(10 * MINUTE - 1);
    let b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(4), held: cr(6) });
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(5), service: "x" }),
      "insufficient_credits",
    );

    t.clock.advance(1); // exactly at expires_at
    b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: cr(10),
      held: 0n,
      total: cr(10),
    });
    // A debit may use the freed credits at once.
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(9),
      service: "x",
    });
    expect(partsOf(usage.parts)).toEqual([[grants[0]!, "purchase", cr(9)]]);
    // The debit settled the hold: it is expired, effective at its expiry.
    expect(await t.engine.getHold(hold.id)).toMatchObject({
      status: "expired",
      parts: [],
      closed_at: hold.expires_at,
    });
    const expiry = (await allEntries(t.engine, account)).filter((e) => e.kind === "hold_expiry");
    expect(expiry.map((e) => [e.ledger, e.amount, e.at])).toEqual([
      [`hold:${hold.id}`, -cr(6), hold.expires_at],
      [`grant:${grants[0]}`, cr(6), hold.expires_at],
    ]);
  });

  it("capturing an expired hold is hold_expired, before and after it is settled", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(6), ttl_ms: MINUTE });
    t.clock.advance(MINUTE);
    // Unsettled: the refusal writes nothing.
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(1), service: "x" }),
      "hold_expired",
      "hold_id",
    );
    await t.engine.settle(account);
    expect((await t.engine.getHold(hold.id)).status).toBe("expired");
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.capture({ hold_id: hold.id, amount: cr(1), service: "x" }),
      "hold_expired",
      "hold_id",
    );
    expect((await t.engine.balance(account)).available).toBe(cr(10));
  });

  it("releasing an expired hold is harmless: credits come back exactly once", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(6), ttl_ms: MINUTE });
    t.clock.advance(2 * MINUTE);
    const r = await t.engine.release(hold.id);
    expect(r.hold.status).not.toBe("active");
    expect((await t.engine.getHold(hold.id)).status).toBe("expired");
    await t.engine.release(hold.id);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(10), held: 0n });
    expect((await allEntries(t.engine, account)).filter((e) => e.kind === "hold_expiry")).toHaveLength(2);
  });

  it("the sweep expires due holds exactly once", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      clock.set(clock.now() + DAY);
      const { account } = await fundedAccount(engine, [{ kind: "purchase", amount: cr(10) }]);
      const a = await engine.hold({ account_id: account, amount: cr(2), ttl_ms: MINUTE });
      const b = await engine.hold({ account_id: account, amount: cr(3), ttl_ms: HOUR });
      clock.advance(2 * MINUTE);
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 1, accounts: 1 });
      expect((await engine.getHold(a.hold.id)).status).toBe("expired");
      expect((await engine.getHold(b.hold.id)).status).toBe("active");
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 0, accounts: 0 });
      const bal = await engine.balance(account);
      expect({ available: bal.available, held: bal.held }).toEqual({ available: cr(7), held: cr(3) });
      expect((await engine.audit()).ok).toBe(true);
    });
  });
});

describeEachStore("holds: a grant expiring while held", (kind) => {
  const t = useEngine(kind);

  async function setup() {
    const now = t.clock.now();
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(10), expires_at: now + HOUR },
      { kind: "purchase", amount: cr(5) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(6), ttl_ms: 3 * HOUR });
    expect(partsOf(hold.parts)).toEqual([[grants[0]!, "subscription", cr(6)]]);
    t.clock.set(now + 2 * HOUR); // the subscription grant has expired; the hold has not
    return { account, monthly: grants[0]!, pack: grants[1]!, hold, expiresAt: now + HOUR };
  }

  it("the grant's free remainder expires at its time; the hold keeps what it set aside", async () => {
    const { account, monthly } = await setup();
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(5), held: cr(6) });
    expect(b.by_kind.subscription).toBe(0n);
    await t.engine.settle(account);
    expect(await t.engine.getGrant(monthly)).toMatchObject({ status: "expired", remaining: 0n });
  });

  it("released credits of the expired grant are expired at once, never returned to use", async () => {
    const { account, monthly, hold } = await setup();
    await t.engine.release(hold.id);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: cr(5),
      held: 0n,
      total: cr(5),
    });
    expect((await t.engine.getGrant(monthly)).remaining).toBe(0n);
    const expired = (await allEntries(t.engine, account)).filter((e) => e.ledger === "expired");
    expect(expired.reduce((s, e) => s + e.amount, 0n)).toBe(cr(10));
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(5) + 1n, service: "x" }),
      "insufficient_credits",
    );
  });

  it("a capture takes from what was held; the rest of the hold is expired at once", async () => {
    const { account, monthly, pack, hold } = await setup();
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(2), service: "batch" });
    expect(partsOf(usage.parts)).toEqual([[monthly, "subscription", cr(2)]]);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(5), held: 0n });
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(5));
    const expired = (await allEntries(t.engine, account)).filter((e) => e.ledger === "expired");
    expect(expired.reduce((s, e) => s + e.amount, 0n)).toBe(cr(8));
  });

  it("when the hold expires after the grant, its credits are expired, not freed", async () => {
    const { account, monthly, hold, expiresAt } = await setup();
    t.clock.set(hold.expires_at + MINUTE);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: cr(5),
      held: 0n,
      total: cr(5),
    });
    await t.engine.settle(account);
    expect((await t.engine.getHold(hold.id)).status).toBe("expired");
    expect((await t.engine.balance(account)).available).toBe(cr(5));
    // The free remainder is written off at the grant's expiry; the held part only when the hold gives it back.
    const entries = await allEntries(t.engine, account);
    const expired = entries.filter((e) => e.ledger === "expired").sort((x, y) => x.at - y.at);
    expect(expired.map((e) => [e.amount, e.at])).toEqual([
      [cr(4), expiresAt],
      [cr(6), hold.expires_at],
    ]);
    // At no instant did the grant's journal balance go below zero.
    let running = 0n;
    const legs = entries
      .filter((e) => e.ledger === `grant:${monthly}`)
      .sort((x, y) => x.at - y.at || x.seq - y.seq);
    for (const e of legs) {
      running += e.amount;
      expect(running >= 0n, `grant balance at ${e.at}`).toBe(true);
    }
  });
});

describeEachStore("holds: accounts", (kind) => {
  const t = useEngine(kind);

  it("a hold on an empty new account is refused", async () => {
    const account = await newAccount(t.engine);
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.hold({ account_id: account, amount: 1n }),
      "insufficient_credits",
    );
    expect(err.details.shortfall).toBe(1n);
  });
});
