/** Live balance streams (server-sent events) over real HTTP: operator and customer, on both stores. */
import { beforeAll, expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { OPERATOR_KEY, useServer } from "../http/harness.ts";

interface Sse {
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

/** Opens an SSE stream and collects its events (real time stamps, for the latency check). */
async function openStream(url: string, bearer: string) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${bearer}` }, signal: ac.signal });
  const events: Sse[] = [];
  const waiters: (() => void)[] = [];
  if (res.status === 200 && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (ev && data) {
              events.push({ event: ev, data: JSON.parse(data), at: Date.now() });
              waiters.splice(0).forEach((w) => w());
            }
          }
        }
      } catch {
        /* aborted */
      }
    })();
  }
  const next = async (pred: (e: Sse) => boolean, timeoutMs = 3000): Promise<Sse> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event; got ${JSON.stringify(events)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  return { res, events, next, close: () => ac.abort() };
}

describeEachStore("live streams", (kind) => {
  const t = useServer(kind);
  beforeAll(async () => {
    const r = await t.op("PUT", "/v1/rate-card", {
      services: { ai_voice: { unit: "second", price: 6, per: 60, increment: 6, minimum: 30, fee: 0.5 } },
    });
    expect(r.status).toBe(201);
  });

  it("operator stream: balance at once, changes within a second, session start, final warning and end", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "10" });
    const s = await openStream(`${t.base}/v1/accounts/${acct}/stream`, OPERATOR_KEY);
    try {
      expect(s.res.status).toBe(200);
      expect(s.res.headers.get("content-type")).toMatch(/text\/event-stream/);
      const first = await s.next((e) => e.event === "balance");
      expect(first.data).toMatchObject({ available: "10", held: "0" });

      // A change made through the API (a plain debit) reaches the stream within one second.
      const before = Date.now();
      const d = await t.op("POST", "/v1/usage", {
        id: `u-${acct}`,
        account_id: acct,
        service: "ai_voice",
        quantity: 30,
      });
      expect(d.status).toBe(201);
      const changed = await s.next((e) => e.event === "balance" && e.data.available === "6.5");
      expect(changed.at - before).toBeLessThan(1000);

      // Changes by another process (here: another engine on the same database, whose commits this
      // server's engine does not hear about) arrive through the poll, also within a second.
      const elsewhere = new Engine(t.store, { clock: t.clock });
      // Timed from the commit: the other engine's first command also starts its SQLite writer thread.
      await elsewhere.debit({ id: `u2-${acct}`, account_id: acct, amount: 500_000n, service: "ai_voice" });
      const before2 = Date.now();
      const polled = await s.next((e) => e.event === "balance" && e.data.available === "6");
      expect(polled.at - before2).toBeLessThan(1000);
      await elsewhere.publish([
        { type: "session.abandoned", account_id: acct, data: { session_id: "ses_elsewhere" } },
      ]);
      await s.next((e) => e.event === "session.abandoned" && e.data.session_id === "ses_elsewhere");
      await elsewhere.drain();
      await elsewhere.grant({ account_id: acct, kind: "promotional", amount: 500_000n });
      await s.next((e) => e.event === "balance" && e.data.available === "6.5");

      const t0 = t.clock.now();
      const st = (
        await t.op("POST", "/v1/sessions", {
          account_id: acct,
          service: "ai_voice",
          grant_seconds: 30,
          answered_at: new Date(t0).toISOString(),
        })
      ).body;
      expect((await s.next((e) => e.event === "session.started")).data).toMatchObject({ session_id: st.id });
      await s.next((e) => e.event === "balance" && e.data.held === "3.5");
      t.clock.advance(35_000); // 35 s used; 6.5 credits cover 60 s: the next 30 s grant is not covered
      const u = (await t.op("POST", `/v1/sessions/${st.id}/update`, {})).body;
      expect(u).toMatchObject({ used_seconds: 35, seconds_left: 25 });
      expect(u.final).toBe(true);
      const warn = await s.next((e) => e.event === "session.final_warning");
      expect(warn.data).toMatchObject({ session_id: st.id, seconds_left: u.seconds_left });
      t.clock.advance(5_000);
      await t.op("POST", `/v1/sessions/${st.id}/end`, {});
      const ended = await s.next((e) => e.event === "session.ended");
      expect(ended.data).toMatchObject({ session_id: st.id, charged_amount: "4.7", billable_seconds: 40 });
      await s.next((e) => e.event === "balance" && e.data.held === "0" && e.data.available === "1.8");
    } finally {
      s.close();
    }
  });

  it("customer stream: the caller's own account only; needs a credential", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const other = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "5" });
    const key = (await t.op("POST", `/v1/accounts/${acct}/keys`, {})).body.secret as string;
    const s = await openStream(`${t.base}/api/v1/credits/stream`, key);
    const foreign = await openStream(`${t.base}/v1/accounts/${other}/stream`, OPERATOR_KEY);
    try {
      expect(s.res.status).toBe(200);
      expect((await s.next((e) => e.event === "balance")).data).toMatchObject({
        account_id: acct,
        available: "5",
      });
      await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "promotional", amount: "1" });
      await s.next((e) => e.event === "balance" && e.data.available === "6");
      const st = (await t.op("POST", "/v1/sessions", { account_id: acct, service: "ai_voice" })).body;
      await s.next((e) => e.event === "session.started" && e.data.session_id === st.id);
      await new Promise((r) => setTimeout(r, 700));
      // Nothing of this account reached another account's stream.
      expect(foreign.events.every((e) => e.event === "balance" && e.data.account_id === other)).toBe(true);
    } finally {
      s.close();
      foreign.close();
    }
    const none = await fetch(`${t.base}/api/v1/credits/stream`);
    expect(none.status).toBe(401);
    const bad = await fetch(`${t.base}/api/v1/credits/stream`, {
      headers: { authorization: "Bearer tly_live_nope" },
    });
    expect(bad.status).toBe(401);
    const unknown = await fetch(`${t.base}/v1/accounts/acct_nope/stream`, {
      headers: { authorization: `Bearer ${OPERATOR_KEY}` },
    });
    expect(unknown.status).toBe(404);
  });

  it("streams left open end when the server closes (it does not wait for the clients)", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const s = await openStream(`${t.base}/v1/accounts/${acct}/stream`, OPERATOR_KEY);
    await s.next((e) => e.event === "balance");
    const started = Date.now();
    await t.app.close(); // the harness closes it again after the suite: a no-op
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
