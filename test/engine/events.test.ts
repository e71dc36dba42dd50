/** The events outbox: written with the change that causes it, exactly once, in commit order; the commit hook. */
import pg from "pg";
import { expect, it } from "vitest";
import type { CommitInfo, EventRecord } from "../../src/events/types.ts";
import { describeEachStore } from "../support/stores.ts";
import { DAY, cr, expectTallyError, fundedAccount, newAccount, uid, useEngine } from "./harness.ts";

describeEachStore("events outbox", (kind) => {
  const t = useEngine(kind);

  async function eventsOf(account: string): Promise<EventRecord[]> {
    return t.engine.listEvents({ account_id: account, limit: 1000 });
  }

  it("a grant writes grant.created once; its replay writes nothing", async () => {
    const account = await newAccount(t.engine);
    const id = uid("g");
    const input = { id, account_id: account, kind: "purchase" as const, amount: cr(12.5) };
    await t.engine.grant(input);
    await t.engine.grant(input);
    const types = (await eventsOf(account)).map((e) => e.type);
    expect(types).toEqual(["account.created", "grant.created"]);
    const created = (await eventsOf(account))[1]!;
    expect(created.id).toMatch(/^evt_/);
    expect(created.data).toMatchObject({
      grant_id: id,
      kind: "purchase",
      amount: "12.5",
      account_id: account,
    });
  });

  it("events a command carries are written with it, and not when it is refused or replayed", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }]);
    const carried = [{ type: "test.debited", account_id: account, data: { note: "x" } }];
    const id = uid("u");
    await t.engine.debit({ id, account_id: account, amount: cr(2), service: "s", events: carried });
    await t.engine.debit({ id, account_id: account, amount: cr(2), service: "s", events: carried });
    await expectTallyError(
      t.engine.debit({ id: uid("u"), account_id: account, amount: cr(50), service: "s", events: carried }),
      "insufficient_credits",
    );
    expect((await eventsOf(account)).filter((e) => e.type === "test.debited")).toHaveLength(1);
  });

  it("refuses malformed carried events, naming the field", async () => {
    const account = await newAccount(t.engine);
    await expectTallyError(
      t.engine.grant({
        account_id: account,
        kind: "purchase",
        amount: cr(1),
        events: [{ type: "Bad Type", account_id: account, data: {} }],
      }),
      "validation_error",
    );
    expect((await eventsOf(account)).map((e) => e.type)).toEqual(["account.created"]);
  });

  it("expiry, void, refund and account status changes are events", async () => {
    const account = await newAccount(t.engine);
    const now = t.clock.now();
    const soon = await t.engine.grant({
      account_id: account,
      kind: "promotional",
      amount: cr(3),
      expires_at: now + DAY,
    });
    const other = await t.engine.grant({ account_id: account, kind: "purchase", amount: cr(4) });
    const use = await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "s" });
    await t.engine.refund({ usage_id: use.usage.id, amount: cr(0.5), reason: "bad call" });
    await t.engine.voidGrant(other.grant.id, "chargeback");
    t.clock.advance(2 * DAY);
    await t.engine.sweep();
    await t.engine.suspendAccount(account);
    const events = await eventsOf(account);
    expect(events.map((e) => e.type)).toEqual([
      "account.created",
      "grant.created",
      "grant.created",
      "usage.refunded",
      "grant.voided",
      "grant.expired",
      "account.status_changed",
    ]);
    const expired = events.find((e) => e.type === "grant.expired")!;
    expect(expired.data).toMatchObject({ grant_id: soon.grant.id, written_off: "2.5" });
    expect(expired.data.expired_at).toBe(new Date(now + DAY).toISOString());
    expect(events.find((e) => e.type === "grant.voided")!.data).toMatchObject({ reason: "chargeback" });
    expect(events.at(-1)!.data).toMatchObject({ from: "active", to: "suspended" });
    // seq strictly increases; after_seq pages on from there.
    const seqs = events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const rest = await t.engine.listEvents({ account_id: account, after_seq: seqs[3]!, limit: 2 });
    expect(rest.map((e) => e.seq)).toEqual(seqs.slice(4, 6));
    const byType = await t.engine.listEvents({ account_id: account, types: ["grant.created"] });
    expect(byType).toHaveLength(2);
  });

  it("publish writes events with no ledger change; the commit hook hears of every commit", async () => {
    const heard: CommitInfo[] = [];
    const off = t.engine.onCommit((c) => heard.push(c));
    const bad = t.engine.onCommit(() => {
      throw new Error("listener bug");
    });
    const account = await newAccount(t.engine);
    await t.engine.grant({ account_id: account, kind: "purchase", amount: cr(2) });
    await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "s" });
    await t.engine.publish([
      { type: "auto_recharge.failed", account_id: account, data: { reason: "declined" } },
    ]);
    off();
    bad();
    await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "s" });
    expect(heard).toHaveLength(4);
    expect(heard.every((h) => h.account_ids.includes(account))).toBe(true);
    expect(heard.map((h) => h.events.map((e) => e.type))).toEqual([
      ["account.created"],
      ["grant.created"],
      [],
      ["auto_recharge.failed"],
    ]);
    const last = (await eventsOf(account)).at(-1)!;
    expect(last).toMatchObject({ type: "auto_recharge.failed", data: { reason: "declined" } });
  });

  if (kind === "postgres") {
    it("a reader tailing by seq never skips an event that commits late", async () => {
      const account = await newAccount(t.engine);
      const after = (await t.engine.listEvents({ limit: 1000 })).at(-1)!.seq;
      // A writer that took its seq first but has not committed yet (it holds the events lock, as the store does).
      const slow = new pg.Client({ connectionString: t.db.url });
      await slow.connect();
      await slow.query("BEGIN");
      await slow.query("SELECT pg_advisory_xact_lock(8386111946574853748)");
      await slow.query(
        "INSERT INTO events (id, type, account_id, data, created_at) VALUES ('evt_slow', 'test.slow', $1, '{}', 0)",
        [account],
      );
      const fast = t.engine.publish([{ type: "test.fast", account_id: account, data: {} }]);
      // The fast writer waits for the lock, so a reader now sees neither; never the fast one alone.
      await new Promise((r) => setTimeout(r, 100));
      expect((await t.engine.listEvents({ after_seq: after })).map((e) => e.type)).toEqual([]);
      await slow.query("COMMIT");
      await slow.end();
      await fast;
      expect((await t.engine.listEvents({ after_seq: after })).map((e) => e.type)).toEqual([
        "test.slow",
        "test.fast",
      ]);
    });
  }
});
