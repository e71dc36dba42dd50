/**
 * Bad input at the engine's edge: every malformed, out-of-range or unknown reference is a typed TallyError
 * with a code and the field, and nothing changes. On every store.
 */
import { beforeAll, expect, it } from "vitest";
import { MAX_ACCOUNT_GRANTED, MAX_AMOUNT } from "../../src/domain/amount.ts";
import { TallyError } from "../../src/domain/errors.ts";
import type { Engine } from "../../src/ledger/engine.ts";
import { LIMITS } from "../../src/ledger/types.ts";
import { describeEachStore } from "../support/stores.ts";
import { cr, expectRefusedUnchanged, fundedAccount, uid, useEngine, withFreshEngine } from "./harness.ts";

interface Fixture {
  account: string;
  usage: string;
  hold: string;
}

type Case = [
  name: string,
  code: "validation_error" | "not_found",
  field: string,
  run: (e: Engine, f: Fixture) => Promise<unknown>,
];

const long = (n: number) => "a".repeat(n);
const circular: Record<string, unknown> = {};
circular.self = circular;
const bigMetadata = { blob: "x".repeat(LIMITS.MAX_METADATA_BYTES) };
const BAD_IDS: [string, unknown][] = [
  ["over-long", long(LIMITS.MAX_ID_LENGTH + 1)],
  ["empty", ""],
  ["with a space", "a b"],
  ["with a slash", "a/b"],
  ["with a quote", "a'b"],
  ["non-ASCII", "café"],
  ["a number", 42],
  ["null", null],
];
const BAD_AMOUNTS: [string, unknown][] = [
  ["negative", -1n],
  ["too large", MAX_AMOUNT + 1n],
  ["far too large", 2n ** 64n],
  ["a number", 5],
  ["a fraction", 0.5],
  ["a string", "5"],
  ["NaN", Number.NaN],
  ["null", null],
];
const BAD_METADATA: [string, unknown][] = [
  ["an array", [1, 2]],
  ["null", null],
  ["a string", "meta"],
  ["a number", 7],
  ["too large", bigMetadata],
  ["not JSON (bigint)", { n: 1n }],
  ["not JSON (circular)", circular],
];
const BAD_TIMES: [string, unknown][] = [
  ["before 2000", Date.UTC(1999, 11, 31)],
  ["after 2200", Date.UTC(2201, 0, 1)],
  ["fractional", Date.UTC(2030, 0, 1) + 0.5],
  ["a string", "2030-01-01"],
  ["NaN", Number.NaN],
];

const any = <T>(v: unknown) => v as T;

const cases: Case[] = [
  // ---- ids ----
  ...BAD_IDS.flatMap(([what, id]): Case[] => [
    [`account id ${what}`, "validation_error", "id", (e) => e.createAccount({ id: any(id) })],
    [
      `grant id ${what}`,
      "validation_error",
      "id",
      (e, f) => e.grant({ id: any(id), account_id: f.account, kind: "purchase", amount: cr(1) }),
    ],
    [
      `grant account_id ${what}`,
      "validation_error",
      "account_id",
      (e) => e.grant({ account_id: any(id), kind: "purchase", amount: cr(1) }),
    ],
    [
      `debit id ${what}`,
      "validation_error",
      "id",
      (e, f) => e.debit({ id: any(id), account_id: f.account, amount: cr(1), service: "x" }),
    ],
    [
      `debit account_id ${what}`,
      "validation_error",
      "account_id",
      (e) => e.debit({ id: uid("u"), account_id: any(id), amount: cr(1), service: "x" }),
    ],
    [
      `hold id ${what}`,
      "validation_error",
      "id",
      (e, f) => e.hold({ id: any(id), account_id: f.account, amount: cr(1) }),
    ],
    [
      `capture hold_id ${what}`,
      "validation_error",
      "hold_id",
      (e) => e.capture({ hold_id: any(id), amount: cr(1), service: "x" }),
    ],
    [
      `capture usage_id ${what}`,
      "validation_error",
      "usage_id",
      (e, f) => e.capture({ hold_id: f.hold, usage_id: any(id), amount: cr(1), service: "x" }),
    ],
    [`release hold_id ${what}`, "validation_error", "hold_id", (e) => e.release(any(id))],
    [`void grant_id ${what}`, "validation_error", "grant_id", (e) => e.voidGrant(any(id))],
    [
      `refund id ${what}`,
      "validation_error",
      "id",
      (e, f) => e.refund({ id: any(id), usage_id: f.usage, amount: 1n }),
    ],
    [`refund usage_id ${what}`, "validation_error", "usage_id", (e) => e.refund({ usage_id: any(id) })],
    [`settle account_id ${what}`, "validation_error", "account_id", (e) => e.settle(any(id))],
  ]),
  // ---- unknown references ----
  [
    "grant to an unknown account",
    "not_found",
    "account_id",
    (e) => e.grant({ account_id: "acct-unknown", kind: "purchase", amount: cr(1) }),
  ],
  [
    "debit of an unknown account",
    "not_found",
    "account_id",
    (e) => e.debit({ id: uid("u"), account_id: "acct-unknown", amount: cr(1), service: "x" }),
  ],
  [
    "hold on an unknown account",
    "not_found",
    "account_id",
    (e) => e.hold({ account_id: "acct-unknown", amount: cr(1) }),
  ],
  ["settle of an unknown account", "not_found", "account_id", (e) => e.settle("acct-unknown")],
  ["void of an unknown grant", "not_found", "grant_id", (e) => e.voidGrant("grt-unknown")],
  [
    "capture of an unknown hold",
    "not_found",
    "hold_id",
    (e) => e.capture({ hold_id: "hld-unknown", amount: cr(1), service: "x" }),
  ],
  ["release of an unknown hold", "not_found", "hold_id", (e) => e.release("hld-unknown")],
  ["refund of an unknown usage", "not_found", "usage_id", (e) => e.refund({ usage_id: "use-unknown" })],
  ["balance of an unknown account", "not_found", "account_id", (e) => e.balance("acct-unknown")],
  ["reading an unknown grant", "not_found", "grant_id", (e) => e.getGrant("grt-unknown")],
  ["reading an unknown hold", "not_found", "hold_id", (e) => e.getHold("hld-unknown")],
  ["reading an unknown usage", "not_found", "usage_id", (e) => e.getUsage("use-unknown")],
  // ---- amounts ----
  ...BAD_AMOUNTS.flatMap(([what, amount]): Case[] => [
    [
      `grant amount ${what}`,
      "validation_error",
      "amount",
      (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: any(amount) }),
    ],
    [
      `debit amount ${what}`,
      "validation_error",
      "amount",
      (e, f) => e.debit({ id: uid("u"), account_id: f.account, amount: any(amount), service: "x" }),
    ],
    [
      `hold amount ${what}`,
      "validation_error",
      "amount",
      (e, f) => e.hold({ account_id: f.account, amount: any(amount) }),
    ],
    [
      `capture amount ${what}`,
      "validation_error",
      "amount",
      (e, f) => e.capture({ hold_id: f.hold, amount: any(amount), service: "x" }),
    ],
    [
      `refund amount ${what}`,
      "validation_error",
      "amount",
      (e, f) => e.refund({ usage_id: f.usage, amount: any(amount) }),
    ],
  ]),
  // null is a valid overage limit (no limit); everything else that is not an amount is not.
  ...BAD_AMOUNTS.filter(([, amount]) => amount !== null).map(([what, amount]): Case => [
    `overage_limit ${what}`,
    "validation_error",
    "overage_limit",
    (e) => e.createAccount({ overage_policy: "allow", overage_limit: any(amount) }),
  ]),
  [
    "grant amount zero",
    "validation_error",
    "amount",
    (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: 0n }),
  ],
  ["hold amount zero", "validation_error", "amount", (e, f) => e.hold({ account_id: f.account, amount: 0n })],
  ["refund amount zero", "validation_error", "amount", (e, f) => e.refund({ usage_id: f.usage, amount: 0n })],
  // ---- metadata ----
  ...BAD_METADATA.flatMap(([what, metadata]): Case[] => [
    [
      `account metadata ${what}`,
      "validation_error",
      "metadata",
      (e) => e.createAccount({ metadata: any(metadata) }),
    ],
    [
      `grant metadata ${what}`,
      "validation_error",
      "metadata",
      (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: cr(1), metadata: any(metadata) }),
    ],
    [
      `debit metadata ${what}`,
      "validation_error",
      "metadata",
      (e, f) =>
        e.debit({
          id: uid("u"),
          account_id: f.account,
          amount: cr(1),
          service: "x",
          metadata: any(metadata),
        }),
    ],
    [
      `hold metadata ${what}`,
      "validation_error",
      "metadata",
      (e, f) => e.hold({ account_id: f.account, amount: cr(1), metadata: any(metadata) }),
    ],
    [
      `capture metadata ${what}`,
      "validation_error",
      "metadata",
      (e, f) => e.capture({ hold_id: f.hold, amount: cr(1), service: "x", metadata: any(metadata) }),
    ],
  ]),
  // ---- text fields ----
  [
    "debit service empty",
    "validation_error",
    "service",
    (e, f) => e.debit({ id: uid("u"), account_id: f.account, amount: cr(1), service: "" }),
  ],
  [
    "debit service too long",
    "validation_error",
    "service",
    (e, f) =>
      e.debit({
        id: uid("u"),
        account_id: f.account,
        amount: cr(1),
        service: long(LIMITS.MAX_SERVICE_LENGTH + 1),
      }),
  ],
  [
    "debit service missing",
    "validation_error",
    "service",
    (e, f) => e.debit({ id: uid("u"), account_id: f.account, amount: cr(1), service: any(undefined) }),
  ],
  [
    "debit quantity empty",
    "validation_error",
    "quantity",
    (e, f) => e.debit({ id: uid("u"), account_id: f.account, amount: cr(1), service: "x", quantity: "" }),
  ],
  [
    "debit quantity too long",
    "validation_error",
    "quantity",
    (e, f) =>
      e.debit({ id: uid("u"), account_id: f.account, amount: cr(1), service: "x", quantity: long(513) }),
  ],
  [
    "capture service too long",
    "validation_error",
    "service",
    (e, f) => e.capture({ hold_id: f.hold, amount: cr(1), service: long(LIMITS.MAX_SERVICE_LENGTH + 1) }),
  ],
  ["void reason too long", "validation_error", "reason", (e) => e.voidGrant("grt-x", long(1025))],
  [
    "refund reason too long",
    "validation_error",
    "reason",
    (e, f) => e.refund({ usage_id: f.usage, amount: 1n, reason: long(1025) }),
  ],
  [
    "grant source too long",
    "validation_error",
    "source",
    (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: cr(1), source: long(257) }),
  ],
  // ---- times ----
  ...BAD_TIMES.flatMap(([what, time]): Case[] => [
    [
      `debit occurred_at ${what}`,
      "validation_error",
      "occurred_at",
      (e, f) =>
        e.debit({ id: uid("u"), account_id: f.account, amount: cr(1), service: "x", occurred_at: any(time) }),
    ],
    [
      `grant effective_at ${what}`,
      "validation_error",
      "effective_at",
      (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: cr(1), effective_at: any(time) }),
    ],
    [
      `grant expires_at ${what}`,
      "validation_error",
      "expires_at",
      (e, f) => e.grant({ account_id: f.account, kind: "purchase", amount: cr(1), expires_at: any(time) }),
    ],
    [
      `hold expires_at ${what}`,
      "validation_error",
      "expires_at",
      (e, f) => e.hold({ account_id: f.account, amount: cr(1), expires_at: any(time) }),
    ],
  ]),
  [
    "hold ttl_ms a string",
    "validation_error",
    "ttl_ms",
    (e, f) => e.hold({ account_id: f.account, amount: cr(1), ttl_ms: any("60000") }),
  ],
];

describeEachStore("bad input", (kind) => {
  // The clock stands still and every case is refused, so one fixture serves them all (and proves it).
  const t = useEngine(kind, { stepMs: 0 });
  let f: Fixture;
  beforeAll(async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
    const usage = uid("use");
    await t.engine.debit({ id: usage, account_id: account, amount: cr(5), service: "x" });
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5), ttl_ms: 3_600_000 });
    f = { account, usage, hold: hold.id };
  });

  it.each(cases)("%s → %s on %s, and nothing changes", async (_name, code, field, run) => {
    await expectRefusedUnchanged(t.engine, [f.account], () => run(t.engine, f), code, field);
  });

  it("the fixture all those cases shared is as it was made", async () => {
    const b = await t.engine.balance(f.account);
    expect({ available: b.available, held: b.held }).toEqual({ available: cr(90), held: cr(5) });
    expect((await t.engine.getHold(f.hold)).status).toBe("active");
    expect((await t.engine.getUsage(f.usage)).cost).toBe(cr(5));
    expect((await t.engine.listUsages({ account_id: f.account })).data).toHaveLength(1);
  });

  it("the longest allowed id and metadata are accepted", async () => {
    const id = "a".repeat(LIMITS.MAX_ID_LENGTH - 8) + uid("").slice(-8);
    const meta = { blob: "x".repeat(LIMITS.MAX_METADATA_BYTES - 20) };
    expect(JSON.stringify(meta).length).toBeLessThanOrEqual(LIMITS.MAX_METADATA_BYTES);
    const { account } = await t.engine.createAccount({ id, metadata: meta });
    expect(account.id).toBe(id);
    expect((await t.engine.getAccount(id)).metadata).toEqual(meta);
    await t.engine.grant({ account_id: id, kind: "purchase", amount: MAX_AMOUNT });
    const { usage } = await t.engine.debit({
      id: uid("u"),
      account_id: id,
      amount: MAX_AMOUNT,
      service: "x",
    });
    expect(usage.cost).toBe(MAX_AMOUNT);
  });

  it("ids are case-sensitive: another case is another id", async () => {
    await expectRefusedUnchanged(
      t.engine,
      [f.account],
      () => t.engine.getUsage(f.usage.toUpperCase()),
      "not_found",
      "usage_id",
    );
  });
});

describeEachStore("bad input: amounts that overflow a sum", (kind) => {
  it("overage that would grow past what the ledger can store is refused with a typed error, and nothing changes", async () => {
    await withFreshEngine(kind, async ({ engine }) => {
      const account = (await engine.createAccount({ id: uid("acct"), overage_policy: "allow" })).account.id;
      let recorded = 0n;
      for (let i = 0; i < 12; i++) {
        const before = await engine.balance(account);
        try {
          await engine.debit({ id: uid("u"), account_id: account, amount: MAX_AMOUNT, service: "x" });
          recorded += MAX_AMOUNT;
        } catch (e) {
          expect(e, `debit ${i + 1}: ${String(e)}`).toBeInstanceOf(TallyError);
          expect(await engine.balance(account)).toEqual(before);
        }
      }
      expect((await engine.balance(account)).overage).toBe(recorded);
      const report = await engine.audit();
      expect(report.discrepancies).toEqual([]);
    });
  });

  it("grants adding up past 64 bits are either refused with a typed error or fully supported (audit, past balances)", async () => {
    await withFreshEngine(kind, async ({ engine, clock }) => {
      const account = (await engine.createAccount({ id: uid("acct") })).account.id;
      let granted = 0n;
      for (let i = 0; i < 12; i++) {
        try {
          await engine.grant({ account_id: account, kind: "purchase", amount: MAX_AMOUNT });
          granted += MAX_AMOUNT;
        } catch (e) {
          expect(e, `grant ${i + 1}: ${String(e)}`).toBeInstanceOf(TallyError);
        }
        clock.advance(1000);
      }
      expect((await engine.balance(account)).available).toBe(granted);
      expect((await engine.balance(account, clock.now() - 500)).available).toBe(granted);
      const report = await engine.audit();
      expect(report.discrepancies).toEqual([]);
      expect(report.ok).toBe(true);
    });
  });

  it("an account's lifetime grants are capped so its journal sums fit 64 bits: past the cap, validation_error on amount", async () => {
    await withFreshEngine(kind, async ({ engine }) => {
      const account = (await engine.createAccount({ id: uid("acct") })).account.id;
      // Up to the cap exactly is fine.
      for (let i = 0n; i < MAX_ACCOUNT_GRANTED / MAX_AMOUNT; i++)
        await engine.grant({ account_id: account, kind: "purchase", amount: MAX_AMOUNT });
      const rest = MAX_ACCOUNT_GRANTED % MAX_AMOUNT;
      if (rest > 0n) await engine.grant({ account_id: account, kind: "purchase", amount: rest });
      expect((await engine.balance(account)).available).toBe(MAX_ACCOUNT_GRANTED);
      // Spending does not make room: the cap is on everything ever granted.
      await engine.debit({ id: uid("u"), account_id: account, amount: MAX_AMOUNT, service: "x" });
      await expectRefusedUnchanged(
        engine,
        [account],
        () => engine.grant({ account_id: account, kind: "purchase", amount: 1n }),
        "validation_error",
        "amount",
      );
      expect((await engine.audit()).ok).toBe(true);
    });
  });

  it("overage without a limit is still bounded by the largest amount: beyond it, insufficient_credits", async () => {
    await withFreshEngine(kind, async ({ engine }) => {
      const account = (await engine.createAccount({ id: uid("acct"), overage_policy: "allow" })).account.id;
      const first = await engine.debit({
        id: uid("u"),
        account_id: account,
        amount: MAX_AMOUNT - cr(1),
        service: "x",
      });
      expect(first.usage.overage).toBe(MAX_AMOUNT - cr(1));
      const err = await expectRefusedUnchanged(
        engine,
        [account],
        () => engine.debit({ id: uid("u"), account_id: account, amount: cr(2), service: "x" }),
        "insufficient_credits",
        "amount",
      );
      expect(err.details.shortfall).toBe(cr(1));
      await engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "x" });
      expect((await engine.balance(account)).overage).toBe(MAX_AMOUNT);
      // A refund of overage makes room again.
      await engine.refund({ usage_id: first.usage.id, amount: cr(3) });
      await engine.debit({ id: uid("u"), account_id: account, amount: cr(3), service: "x" });
      expect((await engine.audit()).ok).toBe(true);
    });
  });
});
