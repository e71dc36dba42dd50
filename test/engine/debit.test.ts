/** Debits: burn-down, all-or-nothing, idempotency and overage policies, on every store. */
import { expect, it } from "vitest";
import { LIMITS, type DebitInput } from "../../src/ledger/types.ts";
import { describeEachStore } from "../support/stores.ts";
import {
  DAY,
  HOUR,
  allEntries,
  cr,
  expectRefusedUnchanged,
  expectTallyError,
  fundedAccount,
  newAccount,
  partsOf,
  sum,
  uid,
  useEngine,
} from "./harness.ts";

describeEachStore("debit: burn-down", (kind) => {
  const t = useEngine(kind);

  it("uses carryover, then subscription, then promotional, then adjustment, then purchased credits", async () => {
    // Granted in the reverse of the order they must be used in.
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "purchase", amount: cr(5) },
      { kind: "adjustment", amount: cr(5) },
      { kind: "promotional", amount: cr(5) },
      { kind: "subscription", amount: cr(5) },
      { kind: "carryover", amount: cr(5) },
    ]);
    const [purchase, adjustment, promotional, subscription, carryover] = grants as [
      string,
      string,
      string,
      string,
      string,
    ];
    const steps: [bigint, [string, string, bigint][]][] = [
      [cr(3), [[carryover, "carryover", cr(3)]]],
      [
        cr(4),
        [
          [carryover, "carryover", cr(2)],
          [subscription, "subscription", cr(2)],
        ],
      ],
      [
        cr(9),
        [
          [subscription, "subscription", cr(3)],
          [promotional, "promotional", cr(5)],
          [adjustment, "adjustment", cr(1)],
        ],
      ],
      [
        cr(8),
        [
          [adjustment, "adjustment", cr(4)],
          [purchase, "purchase", cr(4)],
        ],
      ],
    ];
    for (const [amount, parts] of steps) {
      const { usage } = await t.engine.debit({ id: uid("use"), account_id: account, amount, service: "llm" });
      expect(partsOf(usage.parts)).toEqual(parts);
    }
    const b = await t.engine.balance(account);
    expect(b.available).toBe(cr(1));
    expect(b.by_kind).toEqual({
      carryover: 0n,
      subscription: 0n,
      promotional: 0n,
      adjustment: 0n,
      purchase: cr(1),
    });
  });

  it("pack credits are used only when the monthly supply runs out", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "purchase", amount: cr(100) },
      { kind: "subscription", amount: cr(10), expires_at: t.clock.now() + 30 * DAY },
    ]);
    const [pack, monthly] = grants as [string, string];
    const a = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(10), service: "stt" });
    expect(partsOf(a.usage.parts)).toEqual([[monthly, "subscription", cr(10)]]);
    expect((await t.engine.getGrant(pack)).remaining).toBe(cr(100));
    const b = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "stt" });
    expect(partsOf(b.usage.parts)).toEqual([[pack, "purchase", cr(1)]]);
  });

  it("an explicit priority overrides the kind's default", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(5) },
      { kind: "purchase", amount: cr(5), priority: 1 },
    ]);
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(6),
      service: "x",
    });
    expect(partsOf(usage.parts)).toEqual([
      [grants[1]!, "purchase", cr(5)],
      [grants[0]!, "subscription", cr(1)],
    ]);
  });

  it("within a priority: earliest expiry first, no expiry last, then creation order", async () => {
    const now = t.clock.now();
    const account = await newAccount(t.engine);
    const grants: string[] = [];
    for (const expires_at of [null, now + 9 * DAY, null, now + 2 * DAY, now + 9 * DAY]) {
      t.clock.advance(1000); // distinct creation times
      grants.push(
        (await t.engine.grant({ account_id: account, kind: "promotional", amount: cr(1), expires_at })).grant
          .id,
      );
    }
    const [noneA, late1, noneB, soon, late2] = grants as [string, string, string, string, string];
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(5),
      service: "x",
    });
    expect(usage.parts.map((p) => p.grant_id)).toEqual([soon, late1, late2, noneA, noneB]);
  });

  it("one usage drawing from several grants keeps every part (grant, kind, amount), stored and in the journal", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(1.25) },
      { kind: "promotional", amount: 333_333n },
      { kind: "purchase", amount: cr(10) },
    ]);
    const { usage, replay } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(2),
      service: "tts",
      quantity: "1200",
      metadata: { voice: "alto" },
    });
    expect(replay).toBe(false);
    const expected: [string, string, bigint][] = [
      [grants[0]!, "subscription", cr(1.25)],
      [grants[1]!, "promotional", 333_333n],
      [grants[2]!, "purchase", cr(2) - cr(1.25) - 333_333n],
    ];
    expect(partsOf(usage.parts)).toEqual(expected);
    expect(usage.parts.every((p) => p.refunded === 0n)).toBe(true);
    expect(sum(usage.parts.map((p) => p.amount))).toBe(usage.cost);
    expect(usage).toMatchObject({
      account_id: account,
      service: "tts",
      quantity: "1200",
      cost: cr(2),
      overage: 0n,
      refunded: 0n,
      hold_id: null,
      metadata: { voice: "alto" },
      recorded_at: t.clock.now(),
      occurred_at: t.clock.now(),
    });
    expect(await t.engine.getUsage(usage.id)).toEqual(usage);

    const txn = (await allEntries(t.engine, account)).filter((e) => e.txn_id === usage.txn_id);
    expect(txn.map((e) => [e.ledger, e.amount])).toEqual([
      ...expected.map(([g, , a]) => [`grant:${g}`, -a]),
      ["consumed", cr(2)],
    ]);
    expect(txn.every((e) => e.kind === "debit" && e.ref === usage.id)).toBe(true);
    expect((await t.engine.getGrant(grants[0]!)).remaining).toBe(0n);
    expect((await t.engine.getGrant(grants[2]!)).remaining).toBe(cr(10) - expected[2]![2]);
  });

  it("credits set aside by a hold are not used by a debit", async () => {
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(5) },
      { kind: "purchase", amount: cr(5) },
    ]);
    await t.engine.hold({ account_id: account, amount: cr(4) });
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(3),
      service: "x",
    });
    expect(partsOf(usage.parts)).toEqual([
      [grants[0]!, "subscription", cr(1)],
      [grants[1]!, "purchase", cr(2)],
    ]);
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(3) + 1n, service: "x" }),
      "insufficient_credits",
    );
  });

  it("records the client's occurred_at and a zero-cost usage", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(1) }]);
    const when = t.clock.now() - HOUR;
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: 0n,
      service: "x",
      occurred_at: when,
    });
    expect(usage).toMatchObject({
      cost: 0n,
      parts: [],
      overage: 0n,
      occurred_at: when,
      recorded_at: t.clock.now(),
    });
    expect((await t.engine.balance(account)).available).toBe(cr(1));
  });
});

describeEachStore("debit: all or nothing", (kind) => {
  const t = useEngine(kind);

  it("not enough credits under block: insufficient_credits with the shortfall, nothing recorded", async () => {
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(3) },
      { kind: "purchase", amount: cr(2) },
    ]);
    const id = uid("use");
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debit({ id, account_id: account, amount: cr(7.5), service: "stt" }),
      "insufficient_credits",
      "amount",
    );
    expect(err.details.shortfall).toBe(cr(2.5));
    expect(err.details.available).toBe(cr(5));
    await expectTallyError(t.engine.getUsage(id), "not_found", "usage_id");
    // The id is not burnt: once credits arrive, the same event goes through.
    await t.engine.grant({ account_id: account, kind: "purchase", amount: cr(10) });
    const later = await t.engine.debit({ id, account_id: account, amount: cr(7.5), service: "stt" });
    expect(later.replay).toBe(false);
    expect(later.usage.cost).toBe(cr(7.5));
  });

  it("an empty account is short of the whole amount", async () => {
    const account = await newAccount(t.engine);
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debit({ id: uid("use"), account_id: account, amount: 1n, service: "stt" }),
      "insufficient_credits",
    );
    expect(err.details.shortfall).toBe(1n);
  });

  it("exactly the available balance can be spent, to zero", async () => {
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(3) },
      { kind: "purchase", amount: 7n },
    ]);
    await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(3) + 7n, service: "stt" });
    const b = await t.engine.balance(account);
    expect({ available: b.available, total: b.total, overage: b.overage }).toEqual({
      available: 0n,
      total: 0n,
      overage: 0n,
    });
  });

  it("a debit on an unknown account is not_found naming account_id, and nothing changes", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.debit({ id: uid("use"), account_id: "acct-nobody", amount: cr(1), service: "x" }),
      "not_found",
      "account_id",
    );
  });

  it("concurrent debits never overdraw: of 40 debits against credits for 10, exactly 10 succeed", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, () =>
        t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(10);
    for (const r of results)
      if (r.status === "rejected") expect((r.reason as { code?: string }).code).toBe("insufficient_credits");
    expect((await t.engine.balance(account)).available).toBe(0n);
    expect((await t.engine.listUsages({ account_id: account })).data).toHaveLength(10);
  });

  it("a batch returns a result per event; a refusal does not affect the others", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }]);
    const ids = [uid("use"), uid("use"), uid("use")];
    const results = await t.engine.debitBatch([
      { id: ids[0]!, account_id: account, amount: cr(2), service: "x" },
      { id: ids[1]!, account_id: account, amount: cr(10), service: "x" },
      { id: ids[2]!, account_id: account, amount: cr(3), service: "x" },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    const failed = results[1]!;
    if (failed.ok) throw new Error("unreachable");
    expect(failed.error.code).toBe("insufficient_credits");
    await expectTallyError(t.engine.getUsage(ids[1]!), "not_found");
    expect((await t.engine.balance(account)).available).toBe(0n);
  });

  it("a batch larger than the limit is refused", async () => {
    const account = await newAccount(t.engine);
    const events: DebitInput[] = Array.from({ length: LIMITS.MAX_BATCH_EVENTS + 1 }, (_, i) => ({
      id: `${account}-${i}`,
      account_id: account,
      amount: 1n,
      service: "x",
    }));
    await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debitBatch(events),
      "validation_error",
      "events",
    );
  });
});

describeEachStore("debit: idempotency", (kind) => {
  const t = useEngine(kind);

  it("a replay returns the original result, marked as a replay, and debits once", async () => {
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(2) },
      { kind: "purchase", amount: cr(10) },
    ]);
    const input: DebitInput = {
      id: uid("evt"),
      account_id: account,
      amount: cr(3),
      service: "stt",
      quantity: "60",
      metadata: { call: "c1", nested: { a: [1, 2] } },
    };
    const first = await t.engine.debit(input);
    expect(first.replay).toBe(false);
    const entries = await allEntries(t.engine, account);

    t.clock.advance(2 * DAY);
    await t.engine.grant({ account_id: account, kind: "carryover", amount: cr(50) }); // would change the allocation
    const again = await t.engine.debit({ ...input, metadata: { nested: { a: [1, 2] }, call: "c1" } }); // key order is irrelevant
    expect(again.replay).toBe(true);
    expect(again.usage).toEqual(first.usage);
    const after = await allEntries(t.engine, account);
    expect(after.filter((e) => e.kind === "debit")).toEqual(entries.filter((e) => e.kind === "debit"));
    expect((await t.engine.balance(account)).available).toBe(cr(12) - cr(3) + cr(50));
    expect((await t.engine.listUsages({ account_id: account })).data).toHaveLength(1);
  });

  it("replays within one batch apply once", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
    const input: DebitInput = { id: uid("evt"), account_id: account, amount: cr(1), service: "stt" };
    const results = await Promise.all(Array.from({ length: 20 }, () => t.engine.debit(input)));
    expect(results.filter((r) => !r.replay)).toHaveLength(1);
    for (const r of results) expect(r.usage).toEqual(results[0]!.usage);
    expect((await t.engine.balance(account)).available).toBe(cr(99));
  });

  it.each<[string, (o: { other: string }) => Partial<DebitInput>]>([
    ["amount", () => ({ amount: cr(4) })],
    ["account_id", ({ other }) => ({ account_id: other })],
    ["service", () => ({ service: "tts" })],
    ["quantity", () => ({ quantity: "61" })],
    ["metadata", () => ({ metadata: { call: "c2" } })],
    ["metadata", () => ({ metadata: {} })],
    ["occurred_at", () => ({ occurred_at: Date.UTC(2029, 0, 1) })],
  ])(
    "the same id with a different %s is an idempotency_conflict naming it, and nothing changes",
    async (field, change) => {
      const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
      const { account: other } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
      const input: DebitInput = {
        id: uid("evt"),
        account_id: account,
        amount: cr(3),
        service: "stt",
        quantity: "60",
        metadata: { call: "c1" },
      };
      const first = await t.engine.debit(input);
      const err = await expectRefusedUnchanged(
        t.engine,
        [account, other],
        () => t.engine.debit({ ...input, ...change({ other }) }),
        "idempotency_conflict",
        field,
      );
      expect(err.message).toContain(input.id);
      expect(await t.engine.getUsage(input.id)).toEqual(first.usage);
    },
  );
});

describeEachStore("debit: overage", (kind) => {
  const t = useEngine(kind);

  it("allow without a limit: the uncovered part is recorded as overage", async () => {
    const { account, grants } = await fundedAccount(t.engine, [{ kind: "subscription", amount: cr(3) }], {
      overage_policy: "allow",
    });
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(5),
      service: "stt",
    });
    expect(usage.cost).toBe(cr(5));
    expect(usage.overage).toBe(cr(2));
    expect(partsOf(usage.parts)).toEqual([[grants[0]!, "subscription", cr(3)]]);
    const b = await t.engine.balance(account);
    expect({ available: b.available, overage: b.overage }).toEqual({ available: 0n, overage: cr(2) });
    expect((await t.engine.getAccount(account)).overage_balance).toBe(cr(2));
    const txn = (await allEntries(t.engine, account)).filter((e) => e.txn_id === usage.txn_id);
    expect(txn.map((e) => [e.ledger, e.amount])).toEqual([
      [`grant:${grants[0]}`, -cr(3)],
      ["overage", -cr(2)],
      ["consumed", cr(5)],
    ]);
    // More overage accumulates.
    await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1000), service: "stt" });
    expect((await t.engine.balance(account)).overage).toBe(cr(1002));
  });

  it("allow with a limit: overage up to the limit is recorded, beyond it is refused with the shortfall", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(1) }], {
      overage_policy: "allow",
      overage_limit: cr(10),
    });
    const a = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(7), service: "x" });
    expect(a.usage.overage).toBe(cr(6));
    // 4 credits of room are left; 5 more is 1 too many.
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debit({ id: uid("use"), account_id: account, amount: cr(5), service: "x" }),
      "insufficient_credits",
      "amount",
    );
    expect(err.details.shortfall).toBe(cr(1));
    // Exactly up to the limit is fine.
    const b = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(4), service: "x" });
    expect(b.usage.overage).toBe(cr(4));
    expect((await t.engine.balance(account)).overage).toBe(cr(10));
    const c = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debit({ id: uid("use"), account_id: account, amount: 1n, service: "x" }),
      "insufficient_credits",
    );
    expect(c.details.shortfall).toBe(1n);
  });

  it("allow with a zero limit behaves like block", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(1) }], {
      overage_policy: "allow",
      overage_limit: 0n,
    });
    const err = await expectRefusedUnchanged(
      t.engine,
      [account],
      () => t.engine.debit({ id: uid("use"), account_id: account, amount: cr(3), service: "x" }),
      "insufficient_credits",
    );
    expect(err.details.shortfall).toBe(cr(2));
  });

  it("block records no overage, ever", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(1) }]);
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1) + 1n, service: "x" }),
      "insufficient_credits",
    );
    expect((await t.engine.getAccount(account)).overage_balance).toBe(0n);
  });
});
