/** History (usages, journal entries, cursor pagination), the journal's shape, and audit, on every store. */
import { expect, it } from "vitest";
import { LIMITS, type JournalEntry, type UsageRecord } from "../../src/ledger/types.ts";
import type { Page } from "../../src/store/types.ts";
import { describeEachStore } from "../support/stores.ts";
import {
  DAY,
  HOUR,
  MINUTE,
  allEntries,
  cr,
  expectTallyError,
  fundedAccount,
  rawExec,
  uid,
  useEngine,
  withFreshEngine,
  type EngineCtx,
} from "./harness.ts";

type Lister<T> = (cursor: string | undefined) => Promise<Page<T>>;

/** Follows next_cursor to the end; asserts every page is full except the last. */
async function collect<T>(list: Lister<T>, pageSize: number): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await list(cursor);
    pages++;
    if (page.next_cursor !== null) expect(page.data).toHaveLength(pageSize);
    else expect(page.data.length).toBeLessThanOrEqual(pageSize);
    items.push(...page.data);
    if (page.next_cursor === null) return { items, pages };
    cursor = page.next_cursor;
    expect(pages).toBeLessThan(1000);
  }
}

describeEachStore("history: usages", (kind) => {
  const t = useEngine(kind);

  /** 25 usages, one minute apart, over three services and two kinds of grant plus overage. */
  async function history() {
    const { account } = await fundedAccount(
      t.engine,
      [
        { kind: "subscription", amount: cr(10) },
        { kind: "purchase", amount: cr(10) },
      ],
      { overage_policy: "allow" },
    );
    const services = ["stt", "tts", "llm"];
    const usages: UsageRecord[] = [];
    for (let i = 0; i < 25; i++) {
      t.clock.advance(MINUTE);
      const { usage } = await t.engine.debit({
        id: uid("use"),
        account_id: account,
        amount: cr(1),
        service: services[i % 3]!,
      });
      usages.push(usage);
    }
    return { account, usages };
  }

  it.each([1, 7, 25, 100])("pages of %i: newest first, no duplicates, no gaps", async (size) => {
    const { account, usages } = await history();
    const { items, pages } = await collect(
      (cursor) => t.engine.listUsages({ account_id: account, limit: size, ...(cursor ? { cursor } : {}) }),
      size,
    );
    expect(items.map((u) => u.id)).toEqual(usages.map((u) => u.id).reverse());
    expect(pages).toBe(Math.max(1, Math.ceil(25 / size)));
    expect(items).toEqual([...usages].reverse());
  });

  it("a page that ends exactly at the last usage says so (no empty trailing page)", async () => {
    const { account } = await history();
    const first = await t.engine.listUsages({ account_id: account, limit: 20 });
    const second = await t.engine.listUsages({ account_id: account, limit: 5, cursor: first.next_cursor! });
    expect(second.data).toHaveLength(5);
    expect(second.next_cursor).toBeNull();
  });

  it("usages recorded while paging do not shift the pages already being read", async () => {
    const { account, usages } = await history();
    const first = await t.engine.listUsages({ account_id: account, limit: 10 });
    await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "stt" });
    const rest = await collect(
      (cursor) =>
        t.engine.listUsages({ account_id: account, limit: 10, cursor: cursor ?? first.next_cursor! }),
      10,
    );
    expect([...first.data, ...rest.items].map((u) => u.id)).toEqual(usages.map((u) => u.id).reverse());
  });

  it("filters by service, by time and by credit source, across pages", async () => {
    const { account, usages } = await history();
    const all = (q: {
      service?: string;
      from?: number;
      to?: number;
      credit_source?: UsageRecord["parts"][number]["kind"] | "overage";
    }) =>
      collect(
        (cursor) =>
          t.engine.listUsages({ account_id: account, limit: 3, ...q, ...(cursor ? { cursor } : {}) }),
        3,
      );

    const tts = await all({ service: "tts" });
    expect(tts.items.map((u) => u.id)).toEqual(
      usages
        .filter((u) => u.service === "tts")
        .map((u) => u.id)
        .reverse(),
    );

    const from = usages[5]!.recorded_at;
    const to = usages[15]!.recorded_at;
    const window = await all({ from, to });
    expect(window.items.map((u) => u.id)).toEqual(
      usages
        .slice(5, 15)
        .map((u) => u.id)
        .reverse(),
    );

    const both = await all({ service: "stt", from, to });
    expect(both.items.map((u) => u.id)).toEqual(
      usages
        .slice(5, 15)
        .filter((u) => u.service === "stt")
        .map((u) => u.id)
        .reverse(),
    );

    // 10 from the subscription, 10 from the pack, 5 in overage.
    const sub = await all({ credit_source: "subscription" });
    expect(sub.items.map((u) => u.id)).toEqual(
      usages
        .slice(0, 10)
        .map((u) => u.id)
        .reverse(),
    );
    const pack = await all({ credit_source: "purchase" });
    expect(pack.items.map((u) => u.id)).toEqual(
      usages
        .slice(10, 20)
        .map((u) => u.id)
        .reverse(),
    );
    const over = await all({ credit_source: "overage" });
    expect(over.items.map((u) => u.id)).toEqual(
      usages
        .slice(20)
        .map((u) => u.id)
        .reverse(),
    );
    expect(over.items.every((u) => u.overage === cr(1))).toBe(true);
    expect((await all({ credit_source: "promotional" })).items).toEqual([]);
  });

  it("a usage drawing from two kinds matches both credit sources", async () => {
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(1) },
      { kind: "purchase", amount: cr(1) },
    ]);
    const { usage } = await t.engine.debit({
      id: uid("use"),
      account_id: account,
      amount: cr(2),
      service: "x",
    });
    for (const credit_source of ["subscription", "purchase"] as const)
      expect(
        (await t.engine.listUsages({ account_id: account, credit_source })).data.map((u) => u.id),
      ).toEqual([usage.id]);
  });

  it("only lists the account's own usages", async () => {
    const a = await history();
    const b = await history();
    const listed = await t.engine.listUsages({ account_id: b.account, limit: LIMITS.MAX_PAGE_SIZE });
    expect(listed.data.map((u) => u.id)).toEqual(b.usages.map((u) => u.id).reverse());
    expect(listed.data.some((u) => u.account_id === a.account)).toBe(false);
  });

  it.each([0, -1, 1.5, LIMITS.MAX_PAGE_SIZE + 1, Number.NaN])(
    "a page size of %s is refused naming limit",
    async (limit) => {
      const { account } = await fundedAccount(t.engine, []);
      // (Wrapped so that a synchronous throw is judged here on its code; the next test covers the throw itself.)
      await expectTallyError(
        Promise.resolve().then(() => t.engine.listUsages({ account_id: account, limit })),
        "validation_error",
        "limit",
      );
      await expectTallyError(
        Promise.resolve().then(() => t.engine.listEntries({ account_id: account, limit })),
        "validation_error",
        "limit",
      );
    },
  );

  it("a bad page size makes the returned promise reject, like every other engine call (no synchronous throw)", async () => {
    const { account } = await fundedAccount(t.engine, []);
    let usages: Promise<unknown> | undefined;
    let entries: Promise<unknown> | undefined;
    expect(() => {
      usages = t.engine.listUsages({ account_id: account, limit: 0 });
    }).not.toThrow();
    expect(() => {
      entries = t.engine.listEntries({ account_id: account, limit: 0 });
    }).not.toThrow();
    await expectTallyError(usages!, "validation_error", "limit");
    await expectTallyError(entries!, "validation_error", "limit");
  });

  it("the default page size is the documented one and the maximum is accepted", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(200) }]);
    await t.engine.debitBatch(
      Array.from({ length: LIMITS.DEFAULT_PAGE_SIZE + 5 }, (_, i) => ({
        id: `${account}-${i}`,
        account_id: account,
        amount: 1n,
        service: "x",
      })),
    );
    const page = await t.engine.listUsages({ account_id: account });
    expect(page.data).toHaveLength(LIMITS.DEFAULT_PAGE_SIZE);
    expect(page.next_cursor).not.toBeNull();
    const max = await t.engine.listUsages({ account_id: account, limit: LIMITS.MAX_PAGE_SIZE });
    expect(max.data).toHaveLength(LIMITS.DEFAULT_PAGE_SIZE + 5);
    expect(max.next_cursor).toBeNull();
  });

  it("a cursor that decodes to something other than a position is a typed error, never a crash", async () => {
    const { account } = await history();
    for (const text of ["abc", "zz_9", "-5"]) {
      const cursor = Buffer.from(text).toString("base64url");
      await expectTallyError(
        t.engine.listUsages({ account_id: account, cursor }),
        "validation_error",
        "cursor",
      );
      await expectTallyError(
        t.engine.listEntries({ account_id: account, cursor }),
        "validation_error",
        "cursor",
      );
    }
  });

  it("a malformed cursor is refused naming cursor, not silently read as the first page", async () => {
    const { account } = await history();
    for (const cursor of ["!!!", "%%%", "x".repeat(500)]) {
      await expectTallyError(
        t.engine.listUsages({ account_id: account, cursor }),
        "validation_error",
        "cursor",
      );
      await expectTallyError(
        t.engine.listEntries({ account_id: account, cursor }),
        "validation_error",
        "cursor",
      );
    }
  });
});

describeEachStore("history: accounts", (kind) => {
  it("pages through every account once, in id order", async () => {
    await withFreshEngine(kind, async ({ engine }) => {
      const ids: string[] = [];
      for (let i = 0; i < 23; i++)
        ids.push(
          (await engine.createAccount({ id: `acct-${String((i * 7919) % 23).padStart(2, "0")}-${i}` }))
            .account.id,
        );
      const { items } = await collect(
        (cursor) => engine.listAccounts({ limit: 5, ...(cursor ? { cursor } : {}) }),
        5,
      );
      expect(items.map((a) => a.id)).toEqual([...ids].sort());
      await expectTallyError(engine.listAccounts({ cursor: "!!!" }), "validation_error", "cursor");
      await expectTallyError(engine.listAccounts({ limit: 0 }), "validation_error", "limit");
    });
  });
});

describeEachStore("history: journal entries", (kind) => {
  const t = useEngine(kind);

  it("pages through every posting of the account once, newest first", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(100) }]);
    for (let i = 0; i < 12; i++) {
      t.clock.advance(MINUTE);
      await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(1), service: "x" });
    }
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(5) });
    await t.engine.release(hold.id);
    const everything = await t.engine.listEntries({ account_id: account, limit: LIMITS.MAX_PAGE_SIZE });
    expect(everything.next_cursor).toBeNull();
    expect(everything.data).toHaveLength(2 + 12 * 2 + 2 + 2);
    for (const size of [1, 4, 7]) {
      const { items } = await collect<JournalEntry>(
        (cursor) => t.engine.listEntries({ account_id: account, limit: size, ...(cursor ? { cursor } : {}) }),
        size,
      );
      expect(items).toEqual(everything.data);
    }
    const seqs = everything.data.map((e) => e.seq);
    expect([...seqs].sort((a, b) => b - a)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it("every transaction's postings sum to zero; consumed, issued and grant ledgers reconcile", async () => {
    const { account, grants } = await fundedAccount(
      t.engine,
      [
        { kind: "subscription", amount: cr(5), expires_at: t.clock.now() + DAY },
        { kind: "purchase", amount: cr(5) },
      ],
      { overage_policy: "allow" },
    );
    const u1 = await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(3), service: "x" });
    const { hold } = await t.engine.hold({ account_id: account, amount: cr(4) });
    await t.engine.capture({ hold_id: hold.id, amount: cr(6), service: "x" });
    await t.engine.refund({ usage_id: u1.usage.id, amount: cr(1) });
    await t.engine.debit({ id: uid("use"), account_id: account, amount: cr(3), service: "x" }); // into overage
    t.clock.advance(2 * DAY);
    await t.engine.settle(account);

    const entries = await allEntries(t.engine, account);
    const byTxn = new Map<string, bigint>();
    for (const e of entries) byTxn.set(e.txn_id, (byTxn.get(e.txn_id) ?? 0n) + e.amount);
    expect([...byTxn.values()].every((s) => s === 0n)).toBe(true);
    expect(entries.every((e) => e.account_id === account)).toBe(true);
    const ledger = (name: string) =>
      entries.filter((e) => e.ledger === name).reduce((s, e) => s + e.amount, 0n);
    expect(ledger("issued")).toBe(-cr(10));
    expect(ledger("consumed")).toBe(cr(3) + cr(6) - cr(1) + cr(3));
    expect(ledger("overage")).toBe(-(await t.engine.getAccount(account)).overage_balance);
    for (const g of grants) expect(ledger(`grant:${g}`)).toBe((await t.engine.getGrant(g)).remaining);
    expect(ledger(`hold:${hold.id}`)).toBe(0n);
    const total = [...new Set(entries.map((e) => e.ledger))].reduce((s, l) => s + ledger(l), 0n);
    expect(total).toBe(0n);
  });
});

describeEachStore("audit", (kind) => {
  /** A database with some of everything in it. */
  async function busy(c: EngineCtx) {
    const { engine, clock } = c;
    const now = clock.now();
    const a = await fundedAccount(
      engine,
      [
        { kind: "subscription", amount: cr(10), expires_at: now + DAY },
        { kind: "promotional", amount: cr(2) },
        { kind: "purchase", amount: cr(20) },
        { kind: "adjustment", amount: cr(2), priority: 100 },
      ],
      { overage_policy: "allow" },
    );
    const b = await fundedAccount(engine, [{ kind: "purchase", amount: cr(7) }]);
    const u = await engine.debit({ id: uid("use"), account_id: a.account, amount: cr(11), service: "stt" });
    await engine.refund({ usage_id: u.usage.id, amount: cr(4) });
    const h = await engine.hold({ account_id: a.account, amount: cr(3), ttl_ms: HOUR });
    await engine.capture({ hold_id: h.hold.id, amount: cr(5), service: "batch" });
    await engine.hold({ account_id: a.account, amount: cr(2), ttl_ms: MINUTE }); // expires
    await engine.hold({ account_id: b.account, amount: cr(1), ttl_ms: 3 * DAY }); // stays active
    await engine.voidGrant(a.grants[3]!); // untouched so far: 2 credits voided
    await engine.debit({ id: uid("use"), account_id: b.account, amount: cr(2), service: "tts" });
    clock.advance(2 * DAY);
    await engine.sweep();
    await engine.debit({ id: uid("use"), account_id: a.account, amount: cr(30), service: "llm" }); // overage
    return { a, b };
  }

  it("is ok after normal use: conservation holds and totals sum to zero", async () => {
    await withFreshEngine(kind, async (c) => {
      await busy(c);
      const report = await c.engine.audit();
      expect(report.discrepancies).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.counts).toMatchObject({ accounts: 2, grants: 5, holds: 3, usages: 4 });
      expect(report.counts.postings).toBeGreaterThan(report.counts.transactions);
      const totals = Object.fromEntries(Object.entries(report.totals).map(([k, v]) => [k, cr(Number(v))]));
      expect(Object.values(totals).reduce((s, v) => s + v, 0n)).toBe(0n);
      expect(totals.issued).toBe(-cr(41));
      expect(totals.voided).toBe(cr(2));
      expect(totals.held).toBe(cr(1));
    });
  });

  it("detects a grant whose remaining was changed behind the journal's back", async () => {
    await withFreshEngine(kind, async (c) => {
      const { b } = await busy(c);
      const pack = b.grants[0]!;
      const before = (await c.engine.getGrant(pack)).remaining;
      expect(before).toBeGreaterThan(0n);
      await rawExec(c, "UPDATE grants SET remaining = ? WHERE id = ?", [before - 1n, pack]);
      const report = await c.engine.audit();
      expect(report.ok).toBe(false);
      expect(report.discrepancies).toContainEqual(
        expect.objectContaining({
          check: "grant_remaining_matches_journal",
          id: pack,
          expected: String(before - 1n),
          actual: String(before),
        }),
      );
    });
  });

  it("detects an account whose overage balance was changed behind the journal's back", async () => {
    await withFreshEngine(kind, async (c) => {
      const { a } = await busy(c);
      const overage = (await c.engine.getAccount(a.account)).overage_balance;
      expect(overage).toBeGreaterThan(0n);
      await rawExec(c, "UPDATE accounts SET overage_balance = ? WHERE id = ?", [overage + cr(1), a.account]);
      const report = await c.engine.audit();
      expect(report.ok).toBe(false);
      expect(report.discrepancies).toContainEqual(
        expect.objectContaining({
          check: "account_overage_matches_journal",
          id: a.account,
          actual: String(overage),
        }),
      );
    });
  });

  it("detects an account whose lifetime granted total was changed behind the journal's back", async () => {
    await withFreshEngine(kind, async (c) => {
      const { b } = await busy(c);
      await rawExec(c, "UPDATE accounts SET granted_total = granted_total + 1 WHERE id = ?", [b.account]);
      const report = await c.engine.audit();
      expect(report.ok).toBe(false);
      expect(report.discrepancies).toContainEqual(
        expect.objectContaining({ check: "account_issued_matches_grants", id: b.account }),
      );
    });
  });

  it("detects a grant created without its journal entry", async () => {
    await withFreshEngine(kind, async (c) => {
      const { b } = await busy(c);
      const g = await c.engine.getGrant(b.grants[0]!);
      await rawExec(c, "UPDATE grants SET amount = amount + 5, remaining = remaining + 5 WHERE id = ?", [
        g.id,
      ]);
      const report = await c.engine.audit();
      expect(report.ok).toBe(false);
      expect(report.discrepancies.map((d) => d.id)).toEqual(expect.arrayContaining([g.id]));
    });
  });

  it("detects a usage whose refunded amount was changed behind the journal's back", async () => {
    await withFreshEngine(kind, async (c) => {
      const { b } = await busy(c);
      const [usage] = (await c.engine.listUsages({ account_id: b.account })).data;
      await rawExec(c, "UPDATE usages SET refunded = ? WHERE id = ?", [1n, usage!.id]);
      const report = await c.engine.audit();
      expect(report.ok).toBe(false);
      expect(report.discrepancies.map((d) => d.id)).toContain(usage!.id);
    });
  });

  it("journal rows cannot be updated or deleted: the database refuses", async () => {
    await withFreshEngine(kind, async (c) => {
      const { a } = await busy(c);
      const entries = await allEntries(c.engine, a.account);
      const target = entries[0]!;
      await expect(
        rawExec(c, "UPDATE postings SET amount = amount + 1 WHERE seq = ?", [target.seq]),
      ).rejects.toThrow();
      await expect(
        rawExec(c, "UPDATE postings SET ledger = 'consumed' WHERE account_id = ?", [a.account]),
      ).rejects.toThrow();
      await expect(rawExec(c, "DELETE FROM postings WHERE seq = ?", [target.seq])).rejects.toThrow();
      await expect(rawExec(c, "DELETE FROM postings")).rejects.toThrow();
      expect(await allEntries(c.engine, a.account)).toEqual(entries);
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });
});
