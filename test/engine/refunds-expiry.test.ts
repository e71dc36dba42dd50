/** Refunds, grant expiry (sweep, late, lazy) and balances at past instants, on every store. */
import { expect, it } from "vitest";
import type { Balance } from "../../src/ledger/types.ts";
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
  partsOf,
  uid,
  useEngine,
  withFreshEngine,
} from "./harness.ts";

describeEachStore("refunds", (kind) => {
  const t = useEngine(kind);

  /** An account whose usage of 5 drew 2 from a subscription grant and 3 from a purchase. */
  async function usedAccount(opts: { overage?: boolean } = {}) {
    const { account, grants } = await fundedAccount(
      t.engine,
      [
        { kind: "subscription", amount: cr(2) },
        { kind: "purchase", amount: cr(opts.overage ? 3 : 10) },
      ],
      opts.overage ? { overage_policy: "allow" } : {},
    );
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: opts.overage ? cr(8) : cr(5),
      service: "stt",
    });
    return { account, monthly: grants[0]!, pack: grants[1]!, usage };
  }

  it("a full refund returns every part to the grant it came from", async () => {
    const { account, monthly, pack, usage } = await usedAccount();
    const {
      refund,
      usage: after,
      replay,
    } = await t.engine.refund({ usage_id: usage.id, reason: "dropped call" });
    expect(replay).toBe(false);
    expect(refund).toMatchObject({
      usage_id: usage.id,
      account_id: account,
      amount: cr(5),
      reason: "dropped call",
    });
    expect(after.refunded).toBe(cr(5));
    expect(after.parts.map((p) => [p.grant_id, p.amount, p.refunded])).toEqual([
      [monthly, cr(2), cr(2)],
      [pack, cr(3), cr(3)],
    ]);
    expect(await t.engine.getUsage(usage.id)).toEqual(after);
    expect((await t.engine.getGrant(monthly)).remaining).toBe(cr(2));
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(10));
    const b = await t.engine.balance(account);
    expect(b.available).toBe(cr(12));
    expect(b.by_kind).toMatchObject({ subscription: cr(2), purchase: cr(10) });
    const txn = (await allEntries(t.engine, account)).filter((e) => e.txn_id === refund.txn_id);
    expect(txn.every((e) => e.kind === "refund" && e.ref === refund.id)).toBe(true);
    expect(txn.reduce((s, e) => s + e.amount, 0n)).toBe(0n);
    expect(txn.find((e) => e.ledger === "consumed")?.amount).toBe(-cr(5));
  });

  it("partial refunds go back in reverse burn-down order, and several add up to the cost", async () => {
    const { account, monthly, pack, usage } = await usedAccount();
    await t.engine.refund({ usage_id: usage.id, amount: cr(1) });
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(8));
    expect((await t.engine.getGrant(monthly)).remaining).toBe(0n);
    await t.engine.refund({ usage_id: usage.id, amount: cr(2.5) });
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(10));
    expect((await t.engine.getGrant(monthly)).remaining).toBe(cr(0.5));
    const last = await t.engine.refund({ usage_id: usage.id, amount: cr(1.5) });
    expect(last.usage.refunded).toBe(cr(5));
    expect(last.usage.parts.map((p) => p.refunded)).toEqual([cr(2), cr(3)]);
    expect((await t.engine.balance(account)).available).toBe(cr(12));
    // Nothing is left to refund.
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: usage.id, amount: 1n }),
      "refund_exceeds_usage",
      "amount",
    );
    expect(err.details.refundable).toBe(0n);
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: usage.id }),
      "refund_exceeds_usage",
    );
  });

  it("refunding more than is left is refused with what is refundable, and nothing changes", async () => {
    const { account, usage } = await usedAccount();
    await t.engine.refund({ usage_id: usage.id, amount: cr(4) });
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: usage.id, amount: cr(1) + 1n }),
      "refund_exceeds_usage",
      "amount",
    );
    expect(err.details.refundable).toBe(cr(1));
    // The default (everything left) still works.
    const { refund } = await t.engine.refund({ usage_id: usage.id });
    expect(refund.amount).toBe(cr(1));
  });

  it("overage is refunded first, then the grants", async () => {
    const { account, monthly, pack, usage } = await usedAccount({ overage: true });
    expect(usage.overage).toBe(cr(3));
    expect((await t.engine.balance(account)).overage).toBe(cr(3));
    const a = await t.engine.refund({ usage_id: usage.id, amount: cr(2) });
    expect(a.usage.overage_refunded).toBe(cr(2));
    expect((await t.engine.balance(account)).overage).toBe(cr(1));
    expect((await t.engine.getGrant(pack)).remaining).toBe(0n);
    const b = await t.engine.refund({ usage_id: usage.id, amount: cr(2) });
    expect(b.usage.overage_refunded).toBe(cr(3));
    expect((await t.engine.getAccount(account)).overage_balance).toBe(0n);
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(1));
    expect((await t.engine.getGrant(monthly)).remaining).toBe(0n);
    await t.engine.refund({ usage_id: usage.id });
    const bal = await t.engine.balance(account);
    expect({ available: bal.available, overage: bal.overage }).toEqual({ available: cr(5), overage: 0n });
  });

  it("credits whose grant expired meanwhile are expired again at once", async () => {
    const now = t.clock.now();
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(4), expires_at: now + DAY },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(6),
      service: "stt",
    });
    expect(partsOf(usage.parts)).toEqual([
      [grants[0]!, "subscription", cr(4)],
      [grants[1]!, "purchase", cr(2)],
    ]);
    t.clock.set(now + 2 * DAY);
    const { refund } = await t.engine.refund({ usage_id: usage.id });
    // The purchase part is back; the subscription part is written off as expired in the same transaction.
    expect((await t.engine.getGrant(grants[1]!)).remaining).toBe(cr(10));
    expect(await t.engine.getGrant(grants[0]!)).toMatchObject({ status: "expired", remaining: 0n });
    const b = await t.engine.balance(account);
    expect({ available: b.available, subscription: b.by_kind.subscription }).toEqual({
      available: cr(10),
      subscription: 0n,
    });
    const txn = (await allEntries(t.engine, account)).filter((e) => e.txn_id === refund.txn_id);
    expect(txn.filter((e) => e.ledger === "expired").map((e) => e.amount)).toEqual([cr(4)]);
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(10) + 1n, service: "x" }),
      "insufficient_credits",
    );
  });

  it("a refund of a captured usage returns credits to the grants of both the hold and the extra", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(2) },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(1) });
    const { usage } = await t.engine.capture({ hold_id: hold.id, amount: cr(4), service: "batch" });
    await t.engine.refund({ usage_id: usage.id });
    expect((await t.engine.getGrant(grants[0]!)).remaining).toBe(cr(2));
    expect((await t.engine.getGrant(grants[1]!)).remaining).toBe(cr(10));
  });

  it("is idempotent by id; the same id with another amount is a conflict", async () => {
    const { account, usage } = await usedAccount();
    const id = uid("rfd");
    const first = await t.engine.refund({ id, usage_id: usage.id, amount: cr(1) });
    const again = await t.engine.refund({ id, usage_id: usage.id, amount: cr(1) });
    expect(again.replay).toBe(true);
    expect(again.refund).toEqual(first.refund);
    expect((await t.engine.getUsage(usage.id)).refunded).toBe(cr(1));
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ id, usage_id: usage.id, amount: cr(2) }),
      "idempotency_conflict",
      "amount",
    );
  });

  it("concurrent refunds of one usage never return more than it cost", async () => {
    const { account, monthly, pack, usage } = await usedAccount();
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () => t.engine.refund({ usage_id: usage.id, amount: cr(1) })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    for (const r of results)
      if (r.status === "rejected") expect((r.reason as { code?: string }).code).toBe("refund_exceeds_usage");
    expect((await t.engine.getUsage(usage.id)).refunded).toBe(cr(5));
    expect((await t.engine.getGrant(monthly)).remaining).toBe(cr(2));
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(10));
    expect((await t.engine.balance(account)).available).toBe(cr(12));
  });

  it("a refund id reused for another usage is a conflict naming usage_id", async () => {
    const a = await usedAccount();
    const b = await usedAccount();
    const id = uid("rfd");
    await t.engine.refund({ id, usage_id: a.usage.id, amount: cr(1) });
    await expectRefusedUnchanged(
      t.engine,
      [a.account, b.account],
      () => t.engine.refund({ id, usage_id: b.usage.id, amount: cr(1) }),
      "idempotency_conflict",
      "usage_id",
    );
  });

  it("refunding an unknown usage is not_found naming usage_id; a zero or negative amount is invalid", async () => {
    const { account, usage } = await usedAccount();
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: "use-missing" }),
      "not_found",
      "usage_id",
    );
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: usage.id, amount: 0n }),
      "validation_error",
      "amount",
    );
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.refund({ usage_id: usage.id, amount: -cr(1) }),
      "validation_error",
      "amount",
    );
  });
});

describeEachStore("expiry", (kind) => {
  const t = useEngine(kind);

  it("expired credits are never spendable, even before the sweep", async () => {
    const now = t.clock.now();
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "promotional", amount: cr(5), expires_at: now + HOUR },
      { kind: "purchase", amount: cr(1) },
    ]);
    t.clock.set(now + HOUR - 1);
    expect((await t.engine.balance(account)).available).toBe(cr(6));
    t.clock.set(now + HOUR);
    // Read through the engine, the grant is expired by the clock; the write-off itself has not happened yet.
    expect((await t.engine.getGrant(grants[0]!)).status).toBe("expired");
    expect((await t.store.getGrant(grants[0]!))!.status).toBe("active");
    expect((await t.engine.balance(account)).available).toBe(cr(1));
    const err = await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(2), service: "x" }),
      "insufficient_credits",
    );
    expect(err.details.shortfall).toBe(cr(1));
    await expectTallyError(t.engine.hold({ account_id: account, amount: cr(2) }), "insufficient_credits");
  });

  it("the sweep writes each expired remainder once, effective at expires_at, even when run late and twice", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      const now = clock.now();
      const { account, grants } = await fundedAccount(engine, [
        { kind: "subscription", amount: cr(10), expires_at: now + DAY },
        { kind: "promotional", amount: cr(3), expires_at: now + 2 * DAY },
        { kind: "purchase", amount: cr(1) },
      ]);
      const other = await fundedAccount(engine, [
        { kind: "promotional", amount: cr(7), expires_at: now + DAY },
      ]);
      await engine.debit({ id: uid("use"), account_id: account, amount: cr(4), service: "x" });
      // Nothing is due yet.
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 0, accounts: 0 });

      clock.set(now + 30 * DAY); // very late
      expect(await engine.sweep()).toEqual({ expired_grants: 3, expired_holds: 0, accounts: 2 });
      const entries = (await allEntries(engine, account)).filter((e) => e.kind === "expiry");
      expect(entries.map((e) => [e.ledger, e.amount, e.at])).toEqual([
        [`grant:${grants[0]}`, -cr(6), now + DAY],
        ["expired", cr(6), now + DAY],
        [`grant:${grants[1]}`, -cr(3), now + 2 * DAY],
        ["expired", cr(3), now + 2 * DAY],
      ]);
      expect(await engine.getGrant(grants[0]!)).toMatchObject({
        status: "expired",
        remaining: 0n,
        closed_at: now + DAY,
      });
      expect(await engine.getGrant(grants[2]!)).toMatchObject({ status: "active", remaining: cr(1) });
      expect((await engine.balance(other.account)).available).toBe(0n);

      // Again, and later still: nothing more.
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 0, accounts: 0 });
      clock.advance(DAY);
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 0, accounts: 0 });
      expect(await engine.settle(account)).toEqual({ expired_grants: 0, expired_holds: 0 });
      expect((await allEntries(engine, account)).filter((e) => e.kind === "expiry")).toHaveLength(4);
      const report = await engine.audit();
      expect(report.ok).toBe(true);
      expect(report.totals.expired).toBe("16");
    });
  });

  it("a fully used grant expires without an entry; the sweep has nothing to do for it", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      const now = clock.now();
      const { account, grants } = await fundedAccount(engine, [
        { kind: "subscription", amount: cr(2), expires_at: now + DAY },
      ]);
      await engine.debit({ id: uid("use"), account_id: account, amount: cr(2), service: "x" });
      clock.set(now + 2 * DAY);
      await engine.sweep();
      expect((await allEntries(engine, account)).filter((e) => e.kind === "expiry")).toEqual([]);
      expect((await engine.getGrant(grants[0]!)).remaining).toBe(0n);
    });
  });

  it("expiry happens lazily through any command on the account, and the sweep then finds nothing", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      const now = clock.now();
      const { account, grants } = await fundedAccount(engine, [
        { kind: "subscription", amount: cr(10), expires_at: now + DAY },
        { kind: "purchase", amount: cr(5) },
      ]);
      clock.set(now + 3 * DAY);
      // Any write on the account writes off what is due first.
      await engine.grant({ account_id: account, kind: "promotional", amount: cr(1) });
      expect(await engine.getGrant(grants[0]!)).toMatchObject({ status: "expired", remaining: 0n });
      expect(await engine.sweep()).toEqual({ expired_grants: 0, expired_holds: 0, accounts: 0 });
      await engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" });
      const expiries = (await allEntries(engine, account)).filter((e) => e.kind === "expiry");
      expect(expiries.map((e) => [e.ledger, e.amount, e.at])).toEqual([
        [`grant:${grants[0]}`, -cr(10), now + DAY],
        ["expired", cr(10), now + DAY],
      ]);
    });
  });

  it("a debit after expiry settles first, and a concurrent sweep does not write the expiry twice", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      const now = clock.now();
      const { account } = await fundedAccount(engine, [
        { kind: "subscription", amount: cr(10), expires_at: now + DAY },
        { kind: "purchase", amount: cr(5) },
      ]);
      clock.set(now + 2 * DAY);
      await Promise.all([
        engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" }),
        engine.sweep(),
        engine.settle(account),
        engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" }),
      ]);
      const expired = (await allEntries(engine, account)).filter((e) => e.ledger === "expired");
      expect(expired.map((e) => e.amount)).toEqual([cr(10)]);
      expect((await engine.balance(account)).available).toBe(cr(3));
      expect((await engine.audit()).ok).toBe(true);
    });
  });
});

describeEachStore("balance at past instants", (kind) => {
  const t = useEngine(kind);

  it("recomputed from the journal, it matches what the balance was at each instant", async () => {
    const start = t.clock.now();
    const seen: Balance[] = [];
    const look = async () => seen.push(await t.engine.balance(account));

    const { account } = await fundedAccount(t.engine, []);
    await look(); // empty
    t.clock.advance(MINUTE);
    await t.engine.grant({
      account_id: account,
      kind: "subscription",
      amount: cr(10),
      expires_at: start + 2 * DAY,
    });
    await t.engine.grant({ account_id: account, kind: "purchase", amount: cr(20) });
    await t.engine.grant({
      account_id: account,
      kind: "promotional",
      amount: cr(5),
      effective_at: start + DAY,
    });
    await look(); // granted, one scheduled
    t.clock.advance(MINUTE);
    const used = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(12),
      service: "stt",
    });
    await look(); // used across two grants
    t.clock.advance(MINUTE);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(3), ttl_ms: HOUR });
    await look(); // held
    t.clock.advance(30 * MINUTE);
    await look(); // still held
    t.clock.advance(HOUR);
    await look(); // hold expired, not settled
    t.clock.set(start + DAY + HOUR);
    await look(); // promotional now effective
    t.clock.set(start + 2 * DAY + HOUR);
    await look(); // subscription expired, not swept
    t.clock.advance(MINUTE);
    await t.engine.refund({ usage_id: used.usage.id, amount: cr(11) }); // partly into the expired grant
    await look();
    t.clock.advance(MINUTE);
    const h2 = await t.engine.hold({ account_id: account, amount: cr(4), ttl_ms: DAY });
    await t.engine.capture({ hold_id: h2.hold.id, amount: cr(1), service: "batch" });
    await look();
    t.clock.advance(DAY);
    await t.engine.sweep();
    expect((await t.engine.getHold(hold.id)).status).toBe("expired");

    for (const b of seen) {
      expect(await t.engine.balance(account, b.at), `balance at +${(b.at - start) / MINUTE} min`).toEqual(b);
    }
    // Before the account had anything.
    const before = await t.engine.balance(account, start - DAY);
    expect({ total: before.total, available: before.available, scheduled: before.scheduled }).toEqual({
      total: 0n,
      available: 0n,
      scheduled: 0n,
    });
  });

  it("matches while a hold outlives the grant it holds from, and after that grant is swept", async () => {
    const start = t.clock.now();
    const seen: Balance[] = [];
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(10), expires_at: start + HOUR },
      { kind: "purchase", amount: cr(5) },
    ]);
    const look = async () => seen.push(await t.engine.balance(account));
    await look();
    t.clock.advance(MINUTE);
    await t.engine.hold({ account_id: account, amount: cr(12), ttl_ms: 2 * HOUR });
    await look(); // 10 from the subscription and 2 from the pack are held
    t.clock.set(start + HOUR + MINUTE);
    await look(); // subscription expired while held
    t.clock.set(start + 3 * HOUR);
    await look(); // hold expired after its grant: its subscription part is gone, its pack part is free
    t.clock.advance(MINUTE);
    await t.engine.sweep();
    await look();
    for (const b of seen) {
      expect(await t.engine.balance(account, b.at), `balance at +${(b.at - start) / MINUTE} min`).toEqual(b);
    }
    expect(seen.map((b) => [b.available, b.held])).toEqual([
      [cr(15), 0n],
      [cr(3), cr(12)],
      [cr(3), cr(12)],
      [cr(5), 0n],
      [cr(5), 0n],
    ]);
  });

  it("matches when a hold expires before the grant it holds from and both are settled late", async () => {
    const start = t.clock.now();
    const seen: Balance[] = [];
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(10), expires_at: start + 3 * HOUR },
    ]);
    const look = async () => seen.push(await t.engine.balance(account));
    t.clock.advance(MINUTE);
    await t.engine.hold({ account_id: account, amount: cr(6), ttl_ms: HOUR });
    await look(); // held
    t.clock.set(start + 2 * HOUR);
    await look(); // hold expired: everything free again until the grant expires
    t.clock.set(start + 4 * HOUR);
    await look(); // grant expired too
    t.clock.advance(MINUTE);
    await t.engine.sweep();
    for (const b of seen) {
      expect(await t.engine.balance(account, b.at), `balance at +${(b.at - start) / MINUTE} min`).toEqual(b);
    }
    expect(seen.map((b) => [b.available, b.held])).toEqual([
      [cr(4), cr(6)],
      [cr(10), 0n],
      [0n, 0n],
    ]);
  });

  it("matches with overage: what was outstanding at each instant", async () => {
    const start = t.clock.now();
    const seen: Balance[] = [];
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(2) }], {
      overage_policy: "allow",
    });
    const look = async () => seen.push(await t.engine.balance(account));
    t.clock.advance(MINUTE);
    const u = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(5), service: "x" });
    await look();
    t.clock.advance(MINUTE);
    await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" });
    await look();
    t.clock.advance(MINUTE);
    await t.engine.refund({ usage_id: u.usage.id, amount: cr(2) });
    await look();
    t.clock.advance(MINUTE);
    for (const b of seen) {
      expect(await t.engine.balance(account, b.at), `balance at +${(b.at - start) / MINUTE} min`).toEqual(b);
    }
    expect(seen.map((b) => b.overage)).toEqual([cr(3), cr(4), cr(2)]);
  });
});
