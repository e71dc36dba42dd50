/** Live sessions over real HTTP on both stores: start, update, end, abandonment, limits, bad input. */
import { newId } from "../../src/domain/ids.ts";
import { beforeAll, expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { useServer, type HttpCtx } from "../http/harness.ts";

const iso = (t: number) => new Date(t).toISOString();

/** 0.1 credit per second, billed per started 6 s, 30 s minimum, 0.5 credit per call; outbound 0.01/s. */
const SERVICES = {
  ai_voice: { unit: "second", price: 6, per: 60, increment: 6, minimum: 30, fee: 0.5 },
  "ai_voice.outbound": { unit: "second", price: 0.6, per: 60, increment: 60 },
  free_line: { unit: "second", price: 6, per: 60 },
};

/** Independent price: per started 6 s, at least 30 s, 0.1 credit/s, plus 0.5 (0 for no billable time). */
export function voicePrice(seconds: number): number {
  if (seconds === 0) return 0;
  const billed = Math.max(Math.ceil(seconds / 6) * 6, 30);
  return Math.round(billed * 100_000) + 500_000; // micro-credits
}

async function account(t: HttpCtx, credits: string): Promise<string> {
  const a = await t.op("POST", "/v1/accounts", {});
  expect(a.status).toBe(201);
  if (credits !== "0") {
    const g = await t.op("POST", `/v1/accounts/${a.body.id}/grants`, { kind: "purchase", amount: credits });
    expect(g.status).toBe(201);
  }
  return a.body.id as string;
}

async function balance(t: HttpCtx, id: string): Promise<{ available: string; held: string; total: string }> {
  return (await t.op("GET", `/v1/accounts/${id}/balance`)).body;
}

describeEachStore("sessions API", (kind) => {
  const t = useServer(kind);
  beforeAll(async () => {
    const r = await t.op("PUT", "/v1/rate-card", { services: SERVICES });
    expect(r.status).toBe(201);
  });

  it("start holds the first grant and tells the longest call the balance covers", async () => {
    const acct = await account(t, "10");
    const r = await t.op("POST", "/v1/sessions", {
      account_id: acct,
      service: "ai_voice",
      metadata: { call: "c1" },
      grant_seconds: 60,
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      account_id: acct,
      status: "active",
      direction: "inbound",
      granted_seconds: 60,
      final: false,
      held_amount: "6.5",
      valid_until: iso(t.clock.now() + 60_000),
    });
    expect(r.body.id).toMatch(/^ses_/);
    // 10 credits: 9.5 after the fee; 90 s cost 9 (91 s are billed as 96 s: 9.6).
    expect(r.body.max_seconds).toBe(90);
    expect(await balance(t, acct)).toMatchObject({ available: "3.5", held: "6.5", total: "10" });
    const got = await t.op("GET", `/v1/sessions/${r.body.id}`);
    expect(got.body).toMatchObject({ id: r.body.id, status: "active", authorized_seconds: 60 });
  });

  it("402 with the shortfall when even the minimum cannot be covered; nothing held", async () => {
    const acct = await account(t, "3");
    const r = await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" });
    expect(r.status).toBe(402);
    expect(r.body.error).toMatchObject({ code: "insufficient_credits", shortfall: "0.5" });
    expect(await balance(t, acct)).toMatchObject({ available: "3", held: "0" });
  });

  it("update extends the grant; end charges answer→hang-up minus hold, releases the rest; end is idempotent", async () => {
    const acct = await account(t, "100");
    const t0 = t.clock.now();
    const s = (
      await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice", grant_seconds: 30 })
    ).body;
    t.clock.advance(5_000); // ringing
    let u = await t.op("POST", `/v1/sessions/${s.id}/update`, { answered_at: iso(t0 + 5_000) });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ used_seconds: 0, granted_seconds: 30, final: false });
    t.clock.advance(20_000);
    u = await t.op("POST", `/v1/sessions/${s.id}/update`, { hold_started_at: iso(t0 + 25_000) });
    // used + 30 s = 50 s, billed as 54 s: the held credits cover 54 s.
    expect(u.body).toMatchObject({ used_seconds: 20, authorized_seconds: 54, granted_seconds: 34 });
    t.clock.advance(40_000); // 40 s on hold: not billed
    u = await t.op("POST", `/v1/sessions/${s.id}/update`, { hold_ended_at: iso(t0 + 65_000) });
    expect(u.body).toMatchObject({ used_seconds: 20, authorized_seconds: 54 });
    t.clock.advance(13_500);
    const end = await t.op("POST", `/v1/sessions/${s.id}/end`, { ended_at: iso(t0 + 78_500) });
    expect(end.status).toBe(200);
    // 20 s + 13.5 s → 34 billable seconds → 36 s billed → 3.6 + 0.5 fee.
    expect(end.body).toMatchObject({
      status: "ended",
      billable_seconds: 34,
      charged_seconds: 34,
      charged_amount: "4.1",
      replay: false,
    });
    expect(await balance(t, acct)).toMatchObject({ available: "95.9", held: "0", total: "95.9" });
    const again = await t.op("POST", `/v1/sessions/${s.id}/end`, { ended_at: iso(t0 + 99_000) });
    expect(again.body).toMatchObject({ status: "ended", charged_amount: "4.1", replay: true });
    expect(await balance(t, acct)).toMatchObject({ available: "95.9" });
    const up = await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    expect(up.status).toBe(409);
    expect(up.body.error.code).toBe("session_not_active");
  });

  it("an unanswered call costs nothing; outbound is billed by its own rate, free without one", async () => {
    const acct = await account(t, "5");
    const s = (await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" })).body;
    const e = await t.op("POST", `/v1/sessions/${s.id}/end`, {});
    expect(e.body).toMatchObject({ billable_seconds: 0, charged_amount: "0" });
    const o = (
      await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice", direction: "outbound" })
    ).body;
    const t0 = t.clock.now();
    const oe = await t.op("POST", `/v1/sessions/${o.id}/end`, {
      answered_at: iso(t0),
      ended_at: iso(t0 + 61_000),
    });
    expect(oe.body).toMatchObject({ billable_seconds: 61, charged_amount: "1.2" });
    const f = (
      await t.op("POST", "/v1/sessions", { account_id: acct, service: "free_line", direction: "outbound" })
    ).body;
    expect(f).toMatchObject({ hold_id: null, held_amount: "0", final: false });
    const fe = await t.op("POST", `/v1/sessions/${f.id}/end`, {
      answered_at: iso(t0),
      ended_at: iso(t0 + 600_000),
    });
    expect(fe.body).toMatchObject({ billable_seconds: 600, charged_amount: "0" });
    expect(await balance(t, acct)).toMatchObject({ available: "3.8", held: "0" });
  });

  it("a call that outlives the balance gets final before the credits run out and is charged up to the covered second", async () => {
    const acct = await account(t, "7.1"); // 6.6 after the fee: 66 s, billed in 6 s units
    const t0 = t.clock.now();
    const s = (
      await t.op("POST", "/v1/sessions", {
        account_id: acct,
        service: "ai_voice",
        grant_seconds: 30,
        answered_at: iso(t0),
      })
    ).body;
    expect(s).toMatchObject({ max_seconds: 66, granted_seconds: 30, final: false });
    t.clock.advance(20_000);
    let u = await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    expect(u.body).toMatchObject({ used_seconds: 20, authorized_seconds: 54, final: false });
    t.clock.advance(20_000);
    u = await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    expect(u.body).toMatchObject({ used_seconds: 40, authorized_seconds: 66, final: true, seconds_left: 26 });
    expect(await balance(t, acct)).toMatchObject({ available: "0", held: "7.1" });
    t.clock.advance(40_000); // the caller ignores the warning and talks 14 s past the covered time
    const e = await t.op("POST", `/v1/sessions/${s.id}/end`, { ended_at: iso(t0 + 80_000) });
    expect(e.body).toMatchObject({ billable_seconds: 80, charged_seconds: 66, charged_amount: "7.1" });
    expect(await balance(t, acct)).toMatchObject({ available: "0", held: "0", total: "0" });
    expect((await t.op("GET", "/v1/audit")).body.ok).toBe(true);
  });

  it("long calls commit usage every debit interval: balance and history show the running call", async () => {
    const acct = await account(t, "1000");
    const t0 = t.clock.now();
    const s = (
      await t.op("POST", "/v1/sessions", {
        account_id: acct,
        service: "ai_voice",
        answered_at: iso(t0),
        debit_interval_seconds: 60,
      })
    ).body;
    for (let i = 1; i <= 12; i++) {
      t.clock.advance(10_000);
      const u = await t.op("POST", `/v1/sessions/${s.id}/update`, {});
      expect(u.status).toBe(200);
    }
    const mid = (await t.op("GET", `/v1/sessions/${s.id}`)).body;
    expect(mid).toMatchObject({ committed_seconds: 120, committed_amount: "12.5" });
    const usages = (await t.op("GET", `/v1/accounts/${acct}/usage`)).body.data;
    expect(usages.map((u: { id: string }) => u.id).sort()).toEqual([`${s.id}.t120`, `${s.id}.t60`]);
    t.clock.advance(5_000);
    const e = await t.op("POST", `/v1/sessions/${s.id}/end`, {});
    expect(e.body).toMatchObject({ billable_seconds: 125, charged_amount: String(voicePrice(125) / 1e6) });
    expect((await balance(t, acct)).total).toBe(String((1_000_000_000 - voicePrice(125)) / 1e6));
  });

  it("an end reporting less than was committed refunds the difference", async () => {
    const acct = await account(t, "100");
    const t0 = t.clock.now();
    const s = (
      await t.op("POST", "/v1/sessions", {
        account_id: acct,
        service: "ai_voice",
        answered_at: iso(t0),
        debit_interval_seconds: 10,
        validity_seconds: 120,
      })
    ).body;
    t.clock.advance(60_000);
    await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    expect((await t.op("GET", `/v1/sessions/${s.id}`)).body.committed_amount).toBe("6.5");
    const e = await t.op("POST", `/v1/sessions/${s.id}/end`, { billable_seconds: 31 });
    expect(e.body).toMatchObject({ charged_amount: "4.1" });
    expect(await balance(t, acct)).toMatchObject({ total: "95.9", held: "0" });
    expect((await t.op("GET", "/v1/audit")).body.ok).toBe(true);
  });

  it("a session without updates past its validity is settled at its last usage; its hold released", async () => {
    const acct = await account(t, "50");
    const t0 = t.clock.now();
    const s = (
      await t.op("POST", "/v1/sessions", {
        account_id: acct,
        service: "ai_voice",
        answered_at: iso(t0),
        validity_seconds: 30,
      })
    ).body;
    t.clock.advance(25_000);
    await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    const other = (
      await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice", validity_seconds: 30 })
    ).body;
    t.clock.advance(31_000); // client gone
    const late = await t.op("POST", `/v1/sessions/${s.id}/update`, {});
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: "session_not_active", status: "abandoned" });
    const got = (await t.op("GET", `/v1/sessions/${s.id}`)).body;
    expect(got).toMatchObject({ status: "abandoned", billable_seconds: 25, charged_amount: "3.5" });
    // The other one is settled by the sweep (the server's timer runs it).
    expect(await t.app.sessions.sweep()).toBeGreaterThanOrEqual(1);
    expect((await t.op("GET", `/v1/sessions/${other.id}`)).body).toMatchObject({
      status: "abandoned",
      charged_amount: "0",
    });
    expect(await balance(t, acct)).toMatchObject({ total: "46.5", held: "0" });
    const list = (await t.op("GET", `/v1/accounts/${acct}/sessions?status=abandoned`)).body;
    expect(list.data.length).toBe(2);
  });

  it("a session whose hold was never taken (a crash between insert and hold) is settled for nothing", async () => {
    const acct = await account(t, "10");
    const s = (
      await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice", validity_seconds: 5 })
    ).body;
    const row = (await t.app.sessions.store.get(s.id))!;
    const ghost = {
      ...row,
      // A fresh id: flipping a character of the first one could name an earlier test's session.
      id: newId("ses", t.clock.now()),
      hold_id: "hld_never_taken",
    };
    expect(await t.app.sessions.store.insert(ghost, null)).toBe(true);
    t.clock.advance(6_000);
    expect(await t.app.sessions.sweep()).toBeGreaterThanOrEqual(2);
    expect((await t.op("GET", `/v1/sessions/${ghost.id}`)).body).toMatchObject({
      status: "abandoned",
      charged_amount: "0",
    });
    expect((await t.op("GET", `/v1/sessions/${s.id}`)).body).toMatchObject({
      status: "abandoned",
      charged_amount: "0",
    });
    expect(await balance(t, acct)).toMatchObject({ available: "10", held: "0" });
  });

  it("a per-account limit on concurrent sessions", async () => {
    const acct = await account(t, "100");
    expect((await t.op("PUT", `/v1/accounts/${acct}/session-limit`, { max_concurrent: 2 })).status).toBe(200);
    const a = await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" });
    const b = await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" });
    const c = await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" });
    expect([a.status, b.status, c.status]).toEqual([201, 201, 429]);
    expect(c.body.error).toMatchObject({ code: "session_limit_reached", limit: 2 });
    expect((await t.op("GET", `/v1/accounts/${acct}/session-limit`)).body).toMatchObject({
      max_concurrent: 2,
      active: 2,
    });
    await t.op("POST", `/v1/sessions/${a.body.id}/end`, {});
    expect((await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" })).status).toBe(201);
    await t.op("PUT", `/v1/accounts/${acct}/session-limit`, { max_concurrent: null });
    expect((await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" })).status).toBe(201);
    // Concurrent starts never exceed the limit.
    await t.op("PUT", `/v1/accounts/${acct}/session-limit`, { max_concurrent: 5 });
    const many = await Promise.all(
      Array.from({ length: 8 }, () =>
        t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" }),
      ),
    );
    expect(many.filter((r) => r.status === 201).length).toBe(2);
    expect((await t.op("GET", `/v1/accounts/${acct}/session-limit`)).body.active).toBe(5);
  });

  it("bad input is a 400 naming the field and changes nothing", async () => {
    const acct = await account(t, "10");
    const cases: [unknown, string][] = [
      [{ account_id: acct, service: "nope" }, "service"],
      [{ account_id: acct, service: "ai_voice", grant_seconds: 0 }, "grant_seconds"],
      [{ account_id: acct, service: "ai_voice", direction: "sideways" }, "direction"],
      [{ account_id: acct, service: "ai_voice", answered_at: "yesterday" }, "answered_at"],
      [{ service: "ai_voice" }, "account_id"],
    ];
    for (const [body, field] of cases) {
      const r = await t.op("POST", "/v1/sessions", body);
      expect(r.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.body.error.field ?? r.body.error.message).toContain(field);
    }
    expect(
      (await t.op("POST", "/v1/sessions", { account_id: "acct_nope", service: "ai_voice" })).status,
    ).toBe(404);
    const s = (await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" })).body;
    const bad: [unknown, string][] = [
      [{ hold_ended_at: iso(t.clock.now()) }, "hold_ended_at"],
      [{ billable_seconds: -1 }, "billable_seconds"],
      [{ answered_at: iso(t.clock.now() + 3600_000) }, "answered_at"],
    ];
    for (const [body, field] of bad) {
      const r = await t.op("POST", `/v1/sessions/${s.id}/update`, body);
      expect(r.status).toBe(400);
      expect(r.body.error.field ?? r.body.error.message).toContain(field);
    }
    expect((await t.op("POST", `/v1/sessions/ses_nope/update`, {})).status).toBe(404);
    expect(await balance(t, acct)).toMatchObject({ held: "6.5" });
  });
});
