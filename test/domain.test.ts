/** Pure domain rules: amounts, ids, burn-down order and balances. No store involved. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_AMOUNT,
  MICROS_PER_CREDIT,
  checkAmount,
  formatCredits,
  parseCredits,
} from "../src/domain/amount.ts";
import { computeBalance } from "../src/domain/balance.ts";
import { compareBurnDown, isSpendable, planAllocation, sumParts } from "../src/domain/burndown.ts";
import { ManualClock } from "../src/domain/clock.ts";
import { TallyError } from "../src/domain/errors.ts";
import { looksLikeId, newId } from "../src/domain/ids.ts";
import {
  DEFAULT_PRIORITY,
  GRANT_KINDS,
  type GrantKind,
  type GrantRecord,
  type HoldRecord,
} from "../src/ledger/types.ts";
import { expectTallyErrorSync } from "./engine/harness.ts";

describe("parseCredits", () => {
  it.each([
    ["1", 1_000_000n],
    ["1.5", 1_500_000n],
    ["0.000001", 1n],
    ["123.456789", 123_456_789n],
    ["  7  ", 7_000_000n],
    ["007.10", 7_100_000n],
    ["1000000000000", MAX_AMOUNT],
  ] as const)("parses the decimal string %j exactly", (text, micros) => {
    expect(parseCredits(text, "amount")).toBe(micros);
  });

  it("parses numbers and bigints of whole credits", () => {
    expect(parseCredits(2.25, "amount")).toBe(2_250_000n);
    expect(parseCredits(0.000001, "amount")).toBe(1n);
    expect(parseCredits(42, "amount")).toBe(42_000_000n);
    expect(parseCredits(3n, "amount")).toBe(3_000_000n);
  });

  it("refuses zero unless allowed", () => {
    expectTallyErrorSync(() => parseCredits("0", "amount"), "validation_error", "amount");
    expectTallyErrorSync(() => parseCredits(0, "amount"), "validation_error", "amount");
    expectTallyErrorSync(() => parseCredits("0.000000", "amount"), "validation_error", "amount");
    expect(parseCredits("0", "amount", { allowZero: true })).toBe(0n);
    expect(parseCredits(0, "amount", { allowZero: true })).toBe(0n);
  });

  it.each(["-1", "-0.5", "-0", " -3 ", -1, -0.000001, -1n])("refuses the negative amount %s", (input) => {
    const err = expectTallyErrorSync(
      () => parseCredits(input, "price", { allowZero: true }),
      "validation_error",
      "price",
    );
    expect(err.message).toMatch(/negative/);
  });

  it.each(["0.0000001", "1.1234567", "5.0000000", 1e-7, 1.0000001, 0.1 + 0.2])(
    "refuses %j: more than 6 decimals",
    (input) => {
      const err = expectTallyErrorSync(() => parseCredits(input, "amount"), "validation_error", "amount");
      expect(err.message).toMatch(/6 decimals/);
    },
  );

  it("never turns a tiny positive number into zero (no silent clamp)", () => {
    // 1e-21 is a positive amount far below one micro-credit: it must be refused, not read as 0.
    for (const tiny of [1e-21, 1e-300, 5e-324]) {
      expectTallyErrorSync(
        () => parseCredits(tiny, "amount", { allowZero: true }),
        "validation_error",
        "amount",
      );
    }
  });

  it.each([
    "abc",
    "",
    "   ",
    "1e3",
    "0x10",
    "1,5",
    "+1",
    ".5",
    "5.",
    "1..2",
    "NaN",
    "Infinity",
    "1 000",
    "١٢",
    NaN,
    Infinity,
    -Infinity,
    null,
    undefined,
    {},
    [],
    [1],
    true,
  ])("refuses the non-numeric input %j", (input) => {
    expectTallyErrorSync(
      () => parseCredits(input, "amount", { allowZero: true }),
      "validation_error",
      "amount",
    );
  });

  it.each([
    "1000000000000.000001",
    "1000000000001",
    "99999999999999999999999999999",
    Number.MAX_SAFE_INTEGER + 2,
    1e300,
    Number.MAX_VALUE,
    10n ** 30n,
  ])("refuses the too-large amount %s", (input) => {
    expectTallyErrorSync(() => parseCredits(input, "amount"), "validation_error", "amount");
  });

  it("names the field it was given", () => {
    const err = expectTallyErrorSync(
      () => parseCredits("x", "overage_limit"),
      "validation_error",
      "overage_limit",
    );
    expect(err.message).toContain("overage_limit");
  });

  it("round-trips with formatCredits for every amount in range", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_AMOUNT }), (micros) => {
        expect(parseCredits(formatCredits(micros), "amount", { allowZero: true })).toBe(micros);
      }),
      { numRuns: 500 },
    );
  });
});

describe("checkAmount", () => {
  it("accepts amounts in range and returns them unchanged", () => {
    expect(checkAmount(1n, "amount")).toBe(1n);
    expect(checkAmount(MAX_AMOUNT, "amount")).toBe(MAX_AMOUNT);
    expect(checkAmount(0n, "amount", { allowZero: true })).toBe(0n);
  });

  it.each([
    [0n, "greater than zero"],
    [-1n, "negative"],
    [-MAX_AMOUNT, "negative"],
    [MAX_AMOUNT + 1n, "exceed"],
    [2n ** 63n, "exceed"],
  ] as const)("refuses %s micro-credits (%s)", (micros, why) => {
    const err = expectTallyErrorSync(() => checkAmount(micros, "amount"), "validation_error", "amount");
    expect(err.message).toMatch(why);
  });

  it.each([5, 1.5, "5", null, undefined, NaN])("refuses the non-bigint %j", (value) => {
    expectTallyErrorSync(
      () => checkAmount(value as unknown as bigint, "amount"),
      "validation_error",
      "amount",
    );
  });

  it("keeps the limit below what a 64-bit column can hold", () => {
    expect(MAX_AMOUNT).toBe(1_000_000_000_000n * MICROS_PER_CREDIT);
    expect(MAX_AMOUNT < 2n ** 63n - 1n).toBe(true);
  });
});

describe("formatCredits", () => {
  it.each([
    [0n, "0"],
    [1n, "0.000001"],
    [10n, "0.00001"],
    [1_000_000n, "1"],
    [1_500_000n, "1.5"],
    [123_456_789n, "123.456789"],
    [-1_500_000n, "-1.5"],
    [-1n, "-0.000001"],
    [MAX_AMOUNT, "1000000000000"],
  ] as const)("formats %s micro-credits as %s", (micros, text) => {
    expect(formatCredits(micros)).toBe(text);
  });
});

describe("ids", () => {
  // Times far ahead of anything else in this file, increasing, so the generator's "last time" is ours.
  const base = Date.UTC(2150, 0, 1);

  it("are prefixed and well-formed", () => {
    for (const prefix of ["acct", "grt", "use", "hld", "txn", "rfd"] as const) {
      const id = newId(prefix, base);
      expect(looksLikeId(prefix, id)).toBe(true);
      expect(id).toMatch(new RegExp(`^${prefix}_[0-9a-hjkmnp-tv-z]{26}$`));
    }
    expect(looksLikeId("grt", "use_" + "0".repeat(26))).toBe(false);
    expect(looksLikeId("grt", "grt_short")).toBe(false);
  });

  it("sort by creation time", () => {
    const ids: string[] = [];
    for (let i = 1; i <= 200; i++) ids.push(newId("grt", base + i * 1000 + (i % 7)));
    expect([...ids].sort()).toEqual(ids);
  });

  it("are unique and strictly increasing within one millisecond", () => {
    const t = base + 10_000_000;
    const ids = Array.from({ length: 5000 }, () => newId("txn", t));
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });

  it("stay increasing when the clock goes backwards", () => {
    const t = base + 20_000_000;
    const a = newId("txn", t);
    const b = newId("txn", t - 60_000);
    const c = newId("txn", t - 1);
    expect(b > a).toBe(true);
    expect(c > b).toBe(true);
  });

  it("encode their time in the leading characters", () => {
    const t1 = base + 30_000_000;
    const t2 = t1 + 1;
    const a = newId("use", t1);
    const b = newId("use", t2);
    expect(a.slice(4, 14) < b.slice(4, 14)).toBe(true);
  });
});

describe("ManualClock", () => {
  it("moves only when told", () => {
    const c = new ManualClock(1000);
    expect(c.now()).toBe(1000);
    c.advance(500);
    expect(c.now()).toBe(1500);
    c.set(42);
    expect(c.now()).toBe(42);
  });
});

// ---------- burn-down ----------

const AT = Date.UTC(2030, 5, 1);
let n = 0;
function g(over: Partial<GrantRecord> & { kind?: GrantKind } = {}): GrantRecord {
  const kind = over.kind ?? "purchase";
  const amount = over.amount ?? 10n;
  n++;
  return {
    id: `g${String(n).padStart(4, "0")}`,
    account_id: "a",
    kind,
    amount,
    remaining: amount,
    priority: DEFAULT_PRIORITY[kind],
    effective_at: AT - 1000,
    expires_at: null,
    created_at: AT - 1000 + n,
    order_key: `k${String(n).padStart(4, "0")}`,
    status: "active",
    closed_at: null,
    source: null,
    reference: null,
    metadata: {},
    request: "{}",
    ...over,
  };
}
const order = (grants: GrantRecord[]) => [...grants].sort(compareBurnDown).map((x) => x.id);

describe("burn-down order", () => {
  it("default priorities: carryover, subscription, promotional, adjustment, purchase", () => {
    expect(DEFAULT_PRIORITY.carryover).toBeLessThan(DEFAULT_PRIORITY.subscription);
    expect(DEFAULT_PRIORITY.subscription).toBeLessThan(DEFAULT_PRIORITY.promotional);
    expect(DEFAULT_PRIORITY.promotional).toBeLessThan(DEFAULT_PRIORITY.adjustment);
    expect(DEFAULT_PRIORITY.adjustment).toBeLessThan(DEFAULT_PRIORITY.purchase);
    const byKind = Object.fromEntries(GRANT_KINDS.map((k) => [k, g({ kind: k })]));
    // Created in the opposite order to the one they are used in.
    const list = [
      byKind.purchase!,
      byKind.adjustment!,
      byKind.promotional!,
      byKind.subscription!,
      byKind.carryover!,
    ];
    expect(order(list)).toEqual([...list].reverse().map((x) => x.id));
  });

  it("priority beats expiry and creation order", () => {
    const soonLowPriority = g({ priority: 60, expires_at: AT + 1 });
    const laterHighPriority = g({ priority: 5, expires_at: null });
    expect(order([soonLowPriority, laterHighPriority])).toEqual([laterHighPriority.id, soonLowPriority.id]);
  });

  it("within a priority: earliest expiry first, no expiry last", () => {
    const none = g({ priority: 20 });
    const late = g({ priority: 20, expires_at: AT + 2 * 86_400_000 });
    const soon = g({ priority: 20, expires_at: AT + 86_400_000 });
    expect(order([none, late, soon])).toEqual([soon.id, late.id, none.id]);
  });

  it("within a priority and expiry: creation order (time, then order key, whatever the ids)", () => {
    const first = g({ priority: 20, created_at: AT - 500 });
    const second = g({ priority: 20, created_at: AT - 400 });
    // Created in one millisecond: tieA first (smaller order key) although its id sorts last.
    const tieA = g({ priority: 20, created_at: AT - 300, id: "gZ", order_key: "k-1" });
    const tieB = g({ priority: 20, created_at: AT - 300, id: "gB", order_key: "k-2" });
    expect(order([tieB, second, tieA, first])).toEqual([first.id, second.id, "gZ", "gB"]);
  });

  it("takes from grants in order across several parts, and reports the shortfall", () => {
    const a = g({ kind: "subscription", amount: 3n });
    const b = g({ kind: "promotional", amount: 4n });
    const c = g({ kind: "purchase", amount: 5n });
    const input = [c, b, a];
    const plan = planAllocation(input, 8n, AT);
    expect(plan.parts).toEqual([
      { grant_id: a.id, kind: "subscription", amount: 3n },
      { grant_id: b.id, kind: "promotional", amount: 4n },
      { grant_id: c.id, kind: "purchase", amount: 1n },
    ]);
    expect(plan.covered).toBe(8n);
    expect(plan.shortfall).toBe(0n);
    expect(sumParts(plan.parts)).toBe(8n);
    // Pure: nothing was taken from the grants themselves, and their order is untouched.
    expect(input.map((x) => x.remaining)).toEqual([5n, 4n, 3n]);
    expect(input).toEqual([c, b, a]);

    const short = planAllocation(input, 20n, AT);
    expect(short.covered).toBe(12n);
    expect(short.shortfall).toBe(8n);
    expect(sumParts(short.parts)).toBe(12n);
  });

  it("skips grants that are not spendable: future, expired (at the exact instant), empty, closed", () => {
    const future = g({ effective_at: AT + 1 });
    const expiredNow = g({ expires_at: AT });
    const expiredBefore = g({ expires_at: AT - 1 });
    const empty = g({ remaining: 0n });
    const voided = g({ status: "voided" });
    const expiredStatus = g({ status: "expired" });
    const good = g({ expires_at: AT + 1 });
    const all = [future, expiredNow, expiredBefore, empty, voided, expiredStatus, good];
    expect(all.filter((x) => isSpendable(x, AT)).map((x) => x.id)).toEqual([good.id]);
    const plan = planAllocation(all, 100n, AT);
    expect(plan.parts).toEqual([{ grant_id: good.id, kind: "purchase", amount: 10n }]);
    expect(plan.shortfall).toBe(90n);
    // One millisecond earlier the grant expiring at AT is still spendable; at its effective time a future grant is.
    expect(isSpendable(expiredNow, AT - 1)).toBe(true);
    expect(isSpendable(future, AT + 1)).toBe(true);
  });

  it("a zero amount takes nothing", () => {
    expect(planAllocation([g()], 0n, AT)).toEqual({ parts: [], covered: 0n, shortfall: 0n });
  });
});

// ---------- balances ----------

function hold(over: Partial<HoldRecord>): HoldRecord {
  return {
    id: `h${++n}`,
    account_id: "a",
    amount: 0n,
    parts: [],
    status: "active",
    expires_at: AT + 60_000,
    created_at: AT - 1000,
    closed_at: null,
    captured_amount: 0n,
    usage_id: null,
    metadata: {},
    request: "{}",
    ...over,
  };
}

describe("computeBalance", () => {
  it("sums available credits by kind and keeps scheduled ones apart", () => {
    const grants = [
      g({ kind: "subscription", amount: 10n, remaining: 7n }),
      g({ kind: "purchase", amount: 5n }),
      g({ kind: "promotional", amount: 4n, effective_at: AT + 1 }),
    ];
    const b = computeBalance("a", grants, [], 0n, AT);
    expect(b).toEqual({
      account_id: "a",
      at: AT,
      total: 12n,
      available: 12n,
      held: 0n,
      overage: 0n,
      by_kind: { subscription: 7n, purchase: 5n, promotional: 0n, carryover: 0n, adjustment: 0n },
      scheduled: 4n,
    });
  });

  it("excludes expired credits even while their grant is still marked active (before the sweep)", () => {
    const grants = [g({ amount: 10n, expires_at: AT }), g({ amount: 3n, expires_at: AT + 1 })];
    expect(computeBalance("a", grants, [], 0n, AT).available).toBe(3n);
    expect(computeBalance("a", grants, [], 0n, AT - 1).available).toBe(13n);
  });

  it("ignores closed grants and closed holds", () => {
    const grants = [
      g({ status: "voided", remaining: 0n }),
      g({ status: "expired", remaining: 0n }),
      g({ amount: 2n }),
    ];
    const holds = [hold({ status: "released", parts: [{ grant_id: "x", kind: "purchase", amount: 9n }] })];
    const b = computeBalance("a", grants, holds, 0n, AT);
    expect(b.available).toBe(2n);
    expect(b.held).toBe(0n);
  });

  it("counts active holds as held, and a hold past its expiry as released to its grants", () => {
    const grant = g({ amount: 10n, remaining: 6n });
    const h = hold({
      amount: 4n,
      parts: [{ grant_id: grant.id, kind: "purchase", amount: 4n }],
      expires_at: AT + 1,
    });
    const live = computeBalance("a", [grant], [h], 0n, AT);
    expect({ available: live.available, held: live.held, total: live.total }).toEqual({
      available: 6n,
      held: 4n,
      total: 10n,
    });
    const after = computeBalance("a", [grant], [h], 0n, AT + 1);
    expect({ available: after.available, held: after.held, total: after.total }).toEqual({
      available: 10n,
      held: 0n,
      total: 10n,
    });
    expect(after.by_kind.purchase).toBe(10n);
  });

  it("does not free a hold's credits into a grant that has expired meanwhile", () => {
    const grant = g({ amount: 10n, remaining: 6n, expires_at: AT });
    const h = hold({
      amount: 4n,
      parts: [{ grant_id: grant.id, kind: "purchase", amount: 4n }],
      expires_at: AT - 1,
    });
    const b = computeBalance("a", [grant], [h], 0n, AT);
    expect({ available: b.available, held: b.held, total: b.total }).toEqual({
      available: 0n,
      held: 0n,
      total: 0n,
    });
  });

  it("reports the outstanding overage as given", () => {
    expect(computeBalance("a", [], [], 123n, AT).overage).toBe(123n);
  });
});

describe("TallyError", () => {
  it("serialises bigint details as strings and keeps its code and field", () => {
    const e = new TallyError("insufficient_credits", "short", { field: "amount", shortfall: 5n });
    expect(e.field).toBe("amount");
    expect(e.toJSON()).toEqual({
      code: "insufficient_credits",
      message: "short",
      field: "amount",
      shortfall: "5",
    });
  });
});
