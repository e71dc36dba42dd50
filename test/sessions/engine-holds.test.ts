/** The two ledger commands live sessions need: extend a hold, capture part of a hold (on every store). */
import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import {
  MINUTE,
  allEntries,
  cr,
  expectRefusedUnchanged,
  expectTallyError,
  fundedAccount,
  partsOf,
  uid,
  useEngine,
} from "../engine/harness.ts";

describeEachStore("holds: extend", (kind) => {
  const t = useEngine(kind);

  it("adds credits by burn-down, merges parts by grant, and moves the expiry", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "purchase", amount: cr(10) },
      { kind: "subscription", amount: cr(3) },
    ]);
    const now = t.clock.now();
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(2), ttl_ms: MINUTE });
    const r = await t.engine.extendHold({
      hold_id: hold.id,
      amount: cr(4),
      from_amount: cr(2),
      expires_at: now + 5 * MINUTE,
    });
    expect(r.replay).toBe(false);
    expect(r.hold).toMatchObject({ amount: cr(6), status: "active", expires_at: now + 5 * MINUTE });
    expect(partsOf(r.hold.parts)).toEqual([
      [grants[1]!, "subscription", cr(3)],
      [grants[0]!, "purchase", cr(3)],
    ]);
    expect(await t.engine.getHold(hold.id)).toEqual(r.hold);
    const b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(7), held: cr(6) });

    // The same call again is a replay and changes nothing; the expiry moved, so the hold outlives the old one.
    const again = await t.engine.extendHold({ hold_id: hold.id, amount: cr(4), from_amount: cr(2) });
    expect(again.replay).toBe(true);
    expect(again.hold.amount).toBe(cr(6));
    t.clock.advance(2 * MINUTE);
    expect((await t.engine.balance(account)).held).toBe(cr(6));
  });

  it("moves only the expiry when amount is 0, and never backwards", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const now = t.clock.now();
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(1), ttl_ms: 2 * MINUTE });
    const r = await t.engine.extendHold({ hold_id: hold.id, amount: 0n, expires_at: now + 3 * MINUTE });
    expect(r.hold).toMatchObject({ amount: cr(1), expires_at: now + 3 * MINUTE });
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.extendHold({ hold_id: hold.id, amount: 0n, expires_at: now + MINUTE }),
      "validation_error",
      "expires_at",
    );
  });

  it("is all or nothing: more than available is refused with the shortfall", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.extendHold({ hold_id: hold.id, amount: cr(2), from_amount: cr(4) }),
      "insufficient_credits",
      "amount",
    );
    expect(err.details.shortfall).toBe(cr(1));
  });

  it("refuses a stale from_amount (a racing caller extended differently)", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(9) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(1) });
    await t.engine.extendHold({ hold_id: hold.id, amount: cr(1), from_amount: cr(1) });
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.extendHold({ hold_id: hold.id, amount: cr(3), from_amount: cr(1) }),
      "idempotency_conflict",
      "from_amount",
    );
  });

  it("refuses holds that are not active: released, captured, expired, unknown", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(9) }]);
    const a = (await t.engine.hold({ account_id: account, amount: cr(1) })).hold;
    await t.engine.release(a.id);
    await expectTallyError(
      t.engine.extendHold({ hold_id: a.id, amount: cr(1) }),
      "hold_not_active",
      "hold_id",
    );
    const b = (await t.engine.hold({ account_id: account, amount: cr(1) })).hold;
    await t.engine.capture({ hold_id: b.id, amount: cr(1), service: "x" });
    await expectTallyError(
      t.engine.extendHold({ hold_id: b.id, amount: cr(1) }),
      "hold_not_active",
      "hold_id",
    );
    const c = (await t.engine.hold({ account_id: account, amount: cr(1), ttl_ms: MINUTE })).hold;
    t.clock.advance(MINUTE);
    await expectTallyError(t.engine.extendHold({ hold_id: c.id, amount: cr(1) }), "hold_expired", "hold_id");
    await expectTallyError(
      t.engine.extendHold({ hold_id: uid("hld"), amount: cr(1) }),
      "not_found",
      "hold_id",
    );
    await expectTallyError(t.engine.extendHold({ hold_id: c.id, amount: -1n }), "validation_error", "amount");
    expect((await t.engine.balance(account)).available).toBe(cr(8));
  });
});

describeEachStore("holds: capture part", (kind) => {
  const t = useEngine(kind);

  it("takes part of the hold in burn-down order and keeps it open with the rest", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "purchase", amount: cr(10) },
      { kind: "subscription", amount: cr(3) },
    ]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5) });
    const usageId = uid("use");
    const r = await t.engine.capturePart({
      hold_id: hold.id,
      amount: cr(4),
      usage_id: usageId,
      service: "voice_call",
      quantity: "120",
      metadata: { session: "s1" },
    });
    expect(r.replay).toBe(false);
    expect(r.usage).toMatchObject({
      id: usageId,
      cost: cr(4),
      hold_id: hold.id,
      quantity: "120",
      overage: 0n,
    });
    expect(partsOf(r.usage.parts)).toEqual([
      [grants[1]!, "subscription", cr(3)],
      [grants[0]!, "purchase", cr(1)],
    ]);
    expect(r.hold).toMatchObject({ status: "active", amount: cr(5), captured_amount: cr(4) });
    expect(partsOf(r.hold.parts)).toEqual([[grants[0]!, "purchase", cr(1)]]);
    let b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: cr(8),
      held: cr(1),
      total: cr(9),
    });
    // Replay: same id and content.
    const again = await t.engine.capturePart({
      hold_id: hold.id,
      amount: cr(4),
      usage_id: usageId,
      service: "voice_call",
      quantity: "120",
      metadata: { session: "s1" },
    });
    expect(again.replay).toBe(true);
    expect(again.usage).toEqual(r.usage);
    // Same id, other amount: a conflict.
    await expectTallyError(
      t.engine.capturePart({ hold_id: hold.id, amount: cr(1), usage_id: usageId, service: "voice_call" }),
      "idempotency_conflict",
    );

    // The final capture adds to what was taken; the rest goes back.
    const fin = await t.engine.capture({ hold_id: hold.id, amount: cr(0.5), service: "voice_call" });
    expect(fin.hold).toMatchObject({ status: "captured", captured_amount: cr(4.5), parts: [] });
    b = await t.engine.balance(account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(8.5), held: 0n });
    const kinds = (await allEntries(t.engine, account)).map((e) => e.kind);
    expect(kinds.filter((k) => k === "capture").length).toBeGreaterThanOrEqual(2);
  });

  it("from_captured guards against a stale view of what was captured", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5) });
    const part = (usage_id: string, from: bigint) =>
      t.engine.capturePart({ hold_id: hold.id, amount: cr(1), usage_id, service: "v", from_captured: from });
    await part(uid("use"), 0n);
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => part(uid("use"), 0n),
      "idempotency_conflict",
      "from_captured",
    );
    expect((await part(uid("use"), cr(1))).hold.captured_amount).toBe(cr(2));
  });

  it("refuses more than the hold has left, and holds that are not active", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(2), ttl_ms: MINUTE });
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () =>
        t.engine.capturePart({
          hold_id: hold.id,
          amount: cr(3),
          usage_id: uid("use"),
          service: "voice_call",
        }),
      "validation_error",
      "amount",
    );
    await expectTallyError(
      t.engine.capturePart({ hold_id: hold.id, amount: 0n, usage_id: uid("use"), service: "voice_call" }),
      "validation_error",
      "amount",
    );
    t.clock.advance(MINUTE);
    await expectTallyError(
      t.engine.capturePart({ hold_id: hold.id, amount: cr(1), usage_id: uid("use"), service: "voice_call" }),
      "hold_expired",
      "hold_id",
    );
    expect((await t.engine.balance(account)).available).toBe(cr(10));
  });

  it("an expired hold after a partial capture frees only what it still held", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(3), ttl_ms: MINUTE });
    await t.engine.capturePart({
      hold_id: hold.id,
      amount: cr(2),
      usage_id: uid("use"),
      service: "voice_call",
    });
    t.clock.advance(MINUTE);
    await t.engine.sweep();
    const h = await t.engine.getHold(hold.id);
    expect(h).toMatchObject({ status: "expired", captured_amount: cr(2), parts: [] });
    expect((await t.engine.balance(account)).available).toBe(cr(8));
  });

  it("concurrent extends and partial captures never overdraw and audit clean", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(1) });
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      ops.push(t.engine.extendHold({ hold_id: hold.id, amount: cr(0.5) }).catch(() => null));
      ops.push(
        t.engine
          .debit({ id: uid("use"), account_id: account, amount: cr(0.25), service: "x" })
          .catch(() => null),
      );
    }
    await Promise.all(ops);
    const h = await t.engine.getHold(hold.id);
    const b = await t.engine.balance(account);
    expect(b.available).toBeGreaterThanOrEqual(0n);
    expect(b.held).toBe(h.amount);
    await t.engine.capturePart({
      hold_id: hold.id,
      amount: h.amount,
      usage_id: uid("use"),
      service: "voice_call",
    });
    expect((await t.engine.getHold(hold.id)).parts).toEqual([]);
  });
});
