/** Accounts, grants and voids, on every store. */
import { expect, it } from "vitest";
import { looksLikeId } from "../../src/domain/ids.ts";
import {
  DEFAULT_PRIORITY,
  GRANT_KINDS,
  LIMITS,
  type GrantInput,
  type GrantKind,
} from "../../src/ledger/types.ts";
import { describeEachStore } from "../support/stores.ts";
import {
  DAY,
  HOUR,
  allEntries,
  cr,
  expectRefusedUnchanged,
  expectTallyError,
  newAccount,
  uid,
  useEngine,
} from "./harness.ts";

describeEachStore("accounts", (kind) => {
  const t = useEngine(kind);

  it("a new account blocks overage by default and starts empty", async () => {
    const { account, replay } = await t.engine.createAccount();
    expect(replay).toBe(false);
    expect(looksLikeId("acct", account.id)).toBe(true);
    expect(account).toMatchObject({
      overage_policy: "block",
      overage_limit: null,
      overage_balance: 0n,
      status: "active",
      metadata: {},
      created_at: t.clock.now(),
    });
    expect(await t.engine.getAccount(account.id)).toEqual(account);
    const b = await t.engine.balance(account.id);
    expect({
      total: b.total,
      available: b.available,
      held: b.held,
      overage: b.overage,
      scheduled: b.scheduled,
    }).toEqual({
      total: 0n,
      available: 0n,
      held: 0n,
      overage: 0n,
      scheduled: 0n,
    });
  });

  it("an account may allow overage, with or without a limit", async () => {
    const limited = await t.engine.createAccount({
      overage_policy: "allow",
      overage_limit: cr(50),
      metadata: { tier: "pro" },
    });
    expect(limited.account).toMatchObject({
      overage_policy: "allow",
      overage_limit: cr(50),
      metadata: { tier: "pro" },
    });
    expect(await t.engine.getAccount(limited.account.id)).toEqual(limited.account);
    const open = await t.engine.createAccount({ overage_policy: "allow" });
    expect(open.account.overage_limit).toBeNull();
    const zero = await t.engine.createAccount({ overage_policy: "allow", overage_limit: 0n });
    expect(zero.account.overage_limit).toBe(0n);
  });

  it("is idempotent by id: the same request returns the same account, marked as a replay", async () => {
    const id = uid("acct");
    const first = await t.engine.createAccount({
      id,
      overage_policy: "allow",
      overage_limit: cr(5),
      metadata: { a: 1 },
    });
    t.clock.advance(HOUR);
    const again = await t.engine.createAccount({
      id,
      overage_policy: "allow",
      overage_limit: cr(5),
      metadata: { a: 1 },
    });
    expect(again.replay).toBe(true);
    expect(again.account).toEqual(first.account);
    expect(again.account.created_at).toBe(first.account.created_at);
  });

  it.each([
    ["overage_policy", { overage_policy: "allow" as const }],
    ["overage_limit", { overage_policy: "block" as const, overage_limit: cr(1) }],
    ["metadata", { metadata: { plan: "other" } }],
  ])(
    "the same id with a different %s is a conflict naming it, and changes nothing",
    async (field, change) => {
      const id = uid("acct");
      const original = { id, overage_policy: "block" as const, metadata: { plan: "basic" } };
      await t.engine.createAccount(original);
      const err = await expectRefusedUnchanged(
        t.engine,
        [id],
        () => t.engine.createAccount({ ...original, ...change }),
        "idempotency_conflict",
        field,
      );
      expect(err.message).toContain(id);
      expect((await t.engine.getAccount(id)).metadata).toEqual({ plan: "basic" });
    },
  );

  it("an overage limit without the allow policy is refused", async () => {
    const id = uid("acct");
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.createAccount({ id, overage_limit: cr(10) }),
      "validation_error",
      "overage_limit",
    );
    await expectTallyError(t.engine.getAccount(id), "not_found", "account_id");
  });

  it("an unknown overage policy is refused", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.createAccount({ overage_policy: "sometimes" as "allow" }),
      "validation_error",
      "overage_policy",
    );
  });

  it("reading an unknown account is not_found naming account_id", async () => {
    await expectTallyError(t.engine.getAccount("acct-missing"), "not_found", "account_id");
    await expectTallyError(t.engine.balance("acct-missing"), "not_found", "account_id");
    await expectTallyError(t.engine.balance("acct-missing", t.clock.now() - DAY), "not_found", "account_id");
    await expectTallyError(t.engine.settle("acct-missing"), "not_found", "account_id");
  });
});

describeEachStore("grants", (kind) => {
  const t = useEngine(kind);

  it("every kind gets its default priority; the defaults put the seeds' order first to last", async () => {
    const acct = await newAccount(t.engine);
    for (const k of GRANT_KINDS) {
      const { grant, replay } = await t.engine.grant({ account_id: acct, kind: k, amount: cr(1) });
      expect(replay).toBe(false);
      expect(grant.kind).toBe(k);
      expect(grant.priority).toBe(DEFAULT_PRIORITY[k]);
    }
    const seedsOrder: GrantKind[] = ["carryover", "subscription", "promotional", "adjustment", "purchase"];
    const priorities = seedsOrder.map((k) => DEFAULT_PRIORITY[k]);
    expect([...priorities].sort((a, b) => a - b)).toEqual(priorities);
    expect(new Set(priorities).size).toBe(priorities.length);
    const b = await t.engine.balance(acct);
    expect(b.available).toBe(cr(5));
    expect(b.by_kind).toEqual({
      subscription: cr(1),
      purchase: cr(1),
      promotional: cr(1),
      carryover: cr(1),
      adjustment: cr(1),
    });
  });

  it("records every field of the grant and credits the balance at once", async () => {
    const acct = await newAccount(t.engine);
    const now = t.clock.now();
    const { grant } = await t.engine.grant({
      account_id: acct,
      kind: "purchase",
      amount: cr(12.345678),
      priority: 7,
      expires_at: now + 10 * DAY,
      metadata: { pack: "starter" },
      reference: "order-1",
      source: "purchase:p1",
    });
    expect(looksLikeId("grt", grant.id)).toBe(true);
    expect(grant).toMatchObject({
      account_id: acct,
      kind: "purchase",
      amount: cr(12.345678),
      remaining: cr(12.345678),
      priority: 7,
      effective_at: now,
      expires_at: now + 10 * DAY,
      created_at: now,
      status: "active",
      closed_at: null,
      metadata: { pack: "starter" },
      reference: "order-1",
      source: "purchase:p1",
    });
    expect(await t.engine.getGrant(grant.id)).toEqual(grant);
    expect((await t.engine.balance(acct)).available).toBe(cr(12.345678));
    // Journal: issued → grant, one balanced transaction.
    const entries = await allEntries(t.engine, acct);
    expect(entries.map((e) => [e.ledger, e.amount, e.kind, e.ref])).toEqual([
      ["issued", -cr(12.345678), "grant", grant.id],
      [`grant:${grant.id}`, cr(12.345678), "grant", grant.id],
    ]);
  });

  it.each([0, 1, 55, LIMITS.MAX_PRIORITY])("accepts the explicit priority %i", async (priority) => {
    const acct = await newAccount(t.engine);
    const { grant } = await t.engine.grant({ account_id: acct, kind: "purchase", amount: cr(1), priority });
    expect(grant.priority).toBe(priority);
    expect((await t.engine.getGrant(grant.id)).priority).toBe(priority);
  });

  it("a grant effective in the future is scheduled, not available, until its time", async () => {
    const acct = await newAccount(t.engine);
    const start = t.clock.now() + DAY;
    const { grant } = await t.engine.grant({
      account_id: acct,
      kind: "subscription",
      amount: cr(30),
      effective_at: start,
    });
    expect(grant.effective_at).toBe(start);
    let b = await t.engine.balance(acct);
    expect({ available: b.available, scheduled: b.scheduled, total: b.total }).toEqual({
      available: 0n,
      scheduled: cr(30),
      total: 0n,
    });
    const err = await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: acct, amount: cr(1), service: "stt" }),
      "insufficient_credits",
      "amount",
    );
    expect(err.details.shortfall).toBe(cr(1));

    t.clock.set(start - 1);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    t.clock.set(start);
    b = await t.engine.balance(acct);
    expect({ available: b.available, scheduled: b.scheduled }).toEqual({ available: cr(30), scheduled: 0n });
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: acct,
      amount: cr(1),
      service: "stt",
    });
    expect(usage.parts.map((p) => p.grant_id)).toEqual([grant.id]);
  });

  it("a grant with an expiry is available until expires_at and not at that instant", async () => {
    const acct = await newAccount(t.engine);
    const end = t.clock.now() + 3 * DAY;
    const { grant } = await t.engine.grant({
      account_id: acct,
      kind: "promotional",
      amount: cr(4),
      expires_at: end,
    });
    expect(grant.expires_at).toBe(end);
    t.clock.set(end - 1);
    expect((await t.engine.balance(acct)).available).toBe(cr(4));
    t.clock.set(end);
    expect((await t.engine.balance(acct)).available).toBe(0n);
  });

  it("is idempotent by id: a retry returns the original grant and credits once", async () => {
    const acct = await newAccount(t.engine);
    const id = uid("grt");
    const input = {
      id,
      account_id: acct,
      kind: "purchase" as const,
      amount: cr(10),
      metadata: { order: "o-1" },
    };
    const first = await t.engine.grant(input);
    expect(first.grant.id).toBe(id);
    t.clock.advance(HOUR);
    const again = await t.engine.grant(input);
    expect(again.replay).toBe(true);
    expect(again.grant).toEqual(first.grant);
    expect((await t.engine.balance(acct)).available).toBe(cr(10));
    expect(await t.engine.listGrants(acct)).toHaveLength(1);
  });

  it.each<[string, (o: { other: string; later: number }) => Partial<GrantInput>]>([
    ["amount", () => ({ amount: cr(11) })],
    ["kind", () => ({ kind: "promotional" })],
    ["priority", () => ({ priority: 3 })],
    ["expires_at", ({ later }) => ({ expires_at: later })],
    ["effective_at", ({ later }) => ({ effective_at: later })],
    ["metadata", () => ({ metadata: { order: "o-2" } })],
    ["reference", () => ({ reference: "r-2" })],
    ["source", () => ({ source: "s-2" })],
    ["account_id", ({ other }) => ({ account_id: other })],
  ])(
    "the same id with a different %s is a conflict naming it, and changes nothing",
    async (field, change) => {
      const acct = await newAccount(t.engine);
      const other = await newAccount(t.engine);
      const id = uid("grt");
      const input = {
        id,
        account_id: acct,
        kind: "purchase" as const,
        amount: cr(10),
        metadata: { order: "o-1" },
      };
      await t.engine.grant(input);
      const changed = { ...input, ...change({ other, later: t.clock.now() + DAY }) };
      const err = await expectRefusedUnchanged(
        t.engine,
        [acct, other],
        () => t.engine.grant(changed),
        "idempotency_conflict",
        field,
      );
      expect(err.message).toContain(id);
    },
  );

  it("an expiry not after the effective time is refused naming expires_at, and nothing changes", async () => {
    const acct = await newAccount(t.engine);
    const start = t.clock.now() + DAY;
    for (const expires_at of [start, start - 1, start - DAY]) {
      await expectRefusedUnchanged(
        t.engine,
        [acct],
        () =>
          t.engine.grant({
            account_id: acct,
            kind: "subscription",
            amount: cr(1),
            effective_at: start,
            expires_at,
          }),
        "validation_error",
        "expires_at",
      );
    }
    // Without effective_at the grant is effective now: an expiry now or earlier is refused too.
    for (const expires_at of [t.clock.now(), t.clock.now() - 1]) {
      await expectRefusedUnchanged(
        t.engine,
        [acct],
        () => t.engine.grant({ account_id: acct, kind: "subscription", amount: cr(1), expires_at }),
        "validation_error",
        "expires_at",
      );
    }
  });

  it("a grant that would already have expired is refused, even with a past effective time", async () => {
    const acct = await newAccount(t.engine);
    const now = t.clock.now();
    await expectRefusedUnchanged(
      t.engine,
      [acct],
      () =>
        t.engine.grant({
          account_id: acct,
          kind: "subscription",
          amount: cr(1),
          effective_at: now - 2 * DAY,
          expires_at: now - DAY,
        }),
      "validation_error",
      "expires_at",
    );
    // A past effective time with a future expiry is fine: available now.
    const { grant } = await t.engine.grant({
      account_id: acct,
      kind: "subscription",
      amount: cr(1),
      effective_at: now - DAY,
      expires_at: now + DAY,
    });
    expect(grant.effective_at).toBe(now - DAY);
    expect((await t.engine.balance(acct)).available).toBe(cr(1));
  });

  it("a grant to an unknown account is not_found naming account_id, and nothing changes", async () => {
    const id = uid("grt");
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.grant({ id, account_id: "acct-nobody", kind: "purchase", amount: cr(1) }),
      "not_found",
      "account_id",
    );
    await expectTallyError(t.engine.getGrant(id), "not_found", "grant_id");
  });

  it.each([
    ["amount", { amount: 0n }],
    ["amount", { amount: -cr(1) }],
    ["amount", { amount: 5 as unknown as bigint }],
    ["kind", { kind: "gift" as GrantKind }],
    ["priority", { priority: -1 }],
    ["priority", { priority: LIMITS.MAX_PRIORITY + 1 }],
    ["priority", { priority: 1.5 }],
    ["effective_at", { effective_at: 1.5 }],
    ["expires_at", { expires_at: Number.NaN }],
    ["reference", { reference: "r".repeat(257) }],
  ])("a grant with a bad %s is a validation error naming it, and nothing changes", async (field, change) => {
    const acct = await newAccount(t.engine);
    await expectRefusedUnchanged(
      t.engine,
      [acct],
      () => t.engine.grant({ account_id: acct, kind: "purchase", amount: cr(1), ...change }),
      "validation_error",
      field,
    );
  });
});

describeEachStore("void a grant", (kind) => {
  const t = useEngine(kind);

  it("writes off what remains, keeps what was used, and is idempotent", async () => {
    const acct = await newAccount(t.engine);
    const { grant } = await t.engine.grant({ account_id: acct, kind: "promotional", amount: cr(10) });
    const keep = await t.engine.grant({ account_id: acct, kind: "purchase", amount: cr(5) });
    const used = await t.engine.debit({ id: uid("use"), account_id: acct, amount: cr(4), service: "tts" });
    expect(used.usage.parts.map((p) => p.grant_id)).toEqual([grant.id]);

    const voided = await t.engine.voidGrant(grant.id, "promo abuse");
    expect(voided.replay).toBe(false);
    expect(voided.grant).toMatchObject({
      status: "voided",
      remaining: 0n,
      amount: cr(10),
      closed_at: t.clock.now(),
    });
    expect(await t.engine.getGrant(grant.id)).toMatchObject({ status: "voided", remaining: 0n });
    expect((await t.engine.balance(acct)).available).toBe(cr(5));
    expect((await t.engine.getUsage(used.usage.id)).cost).toBe(cr(4));

    const entries = await allEntries(t.engine, acct);
    const voids = entries.filter((e) => e.kind === "void");
    expect(voids.map((e) => [e.ledger, e.amount])).toEqual([
      [`grant:${grant.id}`, -cr(6)],
      ["voided", cr(6)],
    ]);

    t.clock.advance(HOUR);
    const again = await t.engine.voidGrant(grant.id);
    expect(again.replay).toBe(true);
    expect(again.grant.closed_at).toBe(voided.grant.closed_at);
    expect(await allEntries(t.engine, acct)).toEqual(entries);
    // Voided credits are never spent again.
    await expectTallyError(
      t.engine.debit({ id: uid("use"), account_id: acct, amount: cr(5) + 1n, service: "tts" }),
      "insufficient_credits",
    );
    expect((await t.engine.getGrant(keep.grant.id)).remaining).toBe(cr(5));
  });

  it("credits held from a voided grant do not come back when the hold is released", async () => {
    const acct = await newAccount(t.engine);
    const { grant } = await t.engine.grant({ account_id: acct, kind: "promotional", amount: cr(10) });
    const { hold } = await t.engine.hold({ account_id: acct, amount: cr(4) });
    await t.engine.voidGrant(grant.id);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    await t.engine.release(hold.id);
    const b = await t.engine.balance(acct);
    expect({ available: b.available, held: b.held }).toEqual({ available: 0n, held: 0n });
    expect((await t.engine.getGrant(grant.id)).remaining).toBe(0n);
    const voidedTotal = (await allEntries(t.engine, acct))
      .filter((e) => e.ledger === "voided")
      .reduce((s, e) => s + e.amount, 0n);
    expect(voidedTotal).toBe(cr(10));
  });

  it("voiding an expired grant is refused with grant_not_active", async () => {
    const acct = await newAccount(t.engine);
    const { grant } = await t.engine.grant({
      account_id: acct,
      kind: "promotional",
      amount: cr(3),
      expires_at: t.clock.now() + DAY,
    });
    t.clock.advance(DAY);
    await expectRefusedUnchanged(
      t.engine,
      [acct],
      () => t.engine.voidGrant(grant.id),
      "grant_not_active",
      "grant_id",
    );
  });

  it("voiding an unknown grant is not_found naming grant_id", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [],
      () => t.engine.voidGrant("grt-missing"),
      "not_found",
      "grant_id",
    );
    await expectRefusedUnchanged(t.engine, [], () => t.engine.voidGrant(""), "validation_error", "grant_id");
  });
});
