/**
 * Webhook delivery against real local HTTP receivers: Standard Webhooks signatures checked by an
 * independent verifier (node:crypto, not the library), retries until success with every event accepted
 * exactly once and in order per account (two dispatchers racing), give-up disables the endpoint with an
 * event, manual redelivery, per-account endpoints.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, expect, it } from "vitest";
import { Engine } from "../../src/ledger/engine.ts";
import { EndpointService } from "../../src/webhooks/endpoints.ts";
import { DeliveryLog, WebhookDispatcher } from "../../src/webhooks/dispatcher.ts";
import { MAX_ATTEMPTS, RETRY_DELAYS_MS } from "../../src/webhooks/schedule.ts";
import { describeEachStore } from "../support/stores.ts";
import { cr, uid, useEngine } from "../engine/harness.ts";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A real HTTP receiver whose answer to the n-th request (0-based) is `answer(n)`. */
async function receiver(answer: (n: number) => number = () => 204) {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const status = answer(got.length);
      got.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** The Standard Webhooks signature, computed here from the spec: HMAC-SHA256 over `id.timestamp.body`. */
function verify(secret: string, h: IncomingHttpHeaders, body: string): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key)
    .update(`${h["webhook-id"]}.${h["webhook-timestamp"]}.${body}`)
    .digest();
  return String(h["webhook-signature"])
    .split(" ")
    .some((sig) => {
      const [version, b64] = sig.split(",");
      const given = Buffer.from(b64 ?? "", "base64");
      return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

describeEachStore("webhooks", (kind) => {
  const t = useEngine(kind);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    const endpoints = new EndpointService(t.engine);
    for (const e of await endpoints.list({})) await endpoints.remove(e.id, undefined);
  });

  const setup = async (answer?: (n: number) => number) => {
    const r = await receiver(answer);
    closers.push(r.close);
    const endpoints = new EndpointService(t.engine, { allowPrivateCustomerUrls: true });
    const dispatcher = new WebhookDispatcher(t.engine, endpoints, { random: () => 0 });
    return { r, endpoints, dispatcher };
  };

  /** Ticks (moving the clock past each retry) until nothing is pending. */
  const drain = async (dispatchers: WebhookDispatcher[], maxRounds = 40) => {
    for (let i = 0; i < maxRounds; i++) {
      const made = await Promise.all(dispatchers.map((d) => d.tick()));
      if (made.every((n) => n === 0)) {
        t.clock.advance(Math.max(...RETRY_DELAYS_MS) + 1000);
        const again = await Promise.all(dispatchers.map((d) => d.tick()));
        if (again.every((n) => n === 0)) return;
      }
    }
  };

  it("signs per Standard Webhooks: an independent HMAC check passes, a tampered body fails", async () => {
    const { r, endpoints, dispatcher } = await setup();
    const ep = await endpoints.create(null, { url: r.url, event_types: ["*"] }, "operator", false);
    expect(ep.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const { account } = await t.engine.createAccount({ id: uid("acct") });
    await t.engine.grant({ account_id: account.id, kind: "purchase", amount: cr(5) });
    await dispatcher.tick();
    const mine = r.got.filter((g) => JSON.parse(g.body).account_id === account.id);
    expect(mine.map((g) => JSON.parse(g.body).type)).toEqual(["account.created", "grant.created"]);
    for (const g of mine) {
      expect(verify(ep.secret, g.headers, g.body)).toBe(true);
      expect(verify(ep.secret, g.headers, g.body.replace("}", ',"x":1}'))).toBe(false);
      expect(g.headers["webhook-id"]).toBe(JSON.parse(g.body).id);
      expect(g.headers["webhook-timestamp"]).toBe(String(Math.floor(t.clock.now() / 1000)));
    }
    const body = JSON.parse(mine[1]!.body);
    expect(JSON.stringify(body.data)).toContain(`"5"`);
  });

  it("a receiver failing three times then succeeding gets every event exactly once, in order per account", async () => {
    const { r, endpoints, dispatcher } = await setup((n) => (n < 3 ? 500 : 200));
    // A second dispatcher on its own connection to the same database, as another server process would be.
    const engine2 = new Engine(await t.db.open(), { clock: t.clock });
    closers.push(() => engine2.close());
    const second = new WebhookDispatcher(engine2, new EndpointService(engine2), { random: () => 0 });
    await endpoints.create(null, { url: r.url, event_types: ["account.*", "grant.*"] }, "operator", false);
    const accounts: string[] = [];
    for (let i = 0; i < 3; i++) accounts.push((await t.engine.createAccount({ id: uid("acct") })).account.id);
    await Promise.all(
      accounts.flatMap((a) =>
        [1, 2, 3, 4].map((n) => t.engine.grant({ account_id: a, kind: "promotional", amount: cr(n) })),
      ),
    );
    await drain([dispatcher, second]);
    const expected = await t.engine.listEvents({ limit: 1000 });
    const mineExpected = expected.filter((e) => accounts.includes(e.account_id ?? ""));
    expect(mineExpected).toHaveLength(15);
    const accepted = r.got.filter((g) => g.status === 200).map((g) => JSON.parse(g.body));
    const acceptedIds = accepted.map((b) => b.id);
    expect(new Set(acceptedIds).size).toBe(acceptedIds.length); // never twice
    expect([...acceptedIds].sort()).toEqual(mineExpected.map((e) => e.id).sort()); // every one
    const seqOf = new Map(mineExpected.map((e) => [e.id, e.seq]));
    for (const a of accounts) {
      const seqs = accepted.filter((b) => b.account_id === a).map((b) => seqOf.get(b.id)!);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
    expect(r.got.filter((g) => g.status === 500)).toHaveLength(3);
    // The delivery log shows the failed attempts of the first event.
    const log = new DeliveryLog(t.engine);
    const eps = await endpoints.list({ account_id: null });
    const page = await log.list(eps[0]!.id, { limit: 100 });
    expect(page.data.every((d) => d.status === "succeeded")).toBe(true);
    const retried = page.data.filter((d) => d.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    const detail = await log.get(eps[0]!.id, retried[0]!.id);
    expect(detail!.log[0]!.status_code).toBe(500);
    expect(detail!.log.at(-1)!.status_code).toBe(200);
  });

  it("gives up after the whole schedule (>= 24 h), disables the endpoint with an event; redelivery works", async () => {
    let healthy = false;
    const { r, endpoints, dispatcher } = await setup(() => (healthy ? 200 : 503));
    const ep = await endpoints.create(
      null,
      { url: r.url, event_types: ["account.created"] },
      "operator",
      false,
    );
    const { account } = await t.engine.createAccount({ id: uid("acct") });
    const start = t.clock.now();
    await drain([dispatcher]);
    expect(r.got.filter((g) => JSON.parse(g.body).account_id === account.id)).toHaveLength(MAX_ATTEMPTS);
    const log = new DeliveryLog(t.engine);
    const [d] = (await log.list(ep.id, { limit: 10 })).data;
    expect(d!.status).toBe("failed");
    expect(d!.finished_at! - start).toBeGreaterThanOrEqual(24 * 3600_000);
    expect((await endpoints.require(ep.id)).status).toBe("disabled");
    const disabled = await t.engine.listEvents({ types: ["webhook_endpoint.disabled"], limit: 10 });
    expect(disabled.filter((e) => e.data.endpoint_id === ep.id)).toHaveLength(1);
    // Nothing is sent to a disabled endpoint; after re-enabling, a manual redelivery succeeds.
    healthy = true;
    expect(await log.redeliver(ep.id, d!.id, t.clock.now())).toBe(true);
    expect(await dispatcher.tick()).toBe(0);
    await endpoints.update(ep.id, undefined, { status: "enabled" }, false);
    await dispatcher.tick();
    const after = await log.get(ep.id, d!.id);
    expect(after!.status).toBe("succeeded");
    expect(after!.log).toHaveLength(MAX_ATTEMPTS + 1);
  });

  it("a customer endpoint hears only its own account; types filter; bad input is refused", async () => {
    const { r, endpoints, dispatcher } = await setup();
    const a = (await t.engine.createAccount({ id: uid("acct") })).account.id;
    const b = (await t.engine.createAccount({ id: uid("acct") })).account.id;
    const ep = await endpoints.create(a, { url: r.url, event_types: ["grant.created"] }, "key:x", true);
    await t.engine.grant({ account_id: a, kind: "purchase", amount: cr(1) });
    await t.engine.grant({ account_id: b, kind: "purchase", amount: cr(1) });
    await dispatcher.tick();
    expect(r.got.map((g) => [JSON.parse(g.body).type, JSON.parse(g.body).account_id])).toEqual([
      ["grant.created", a],
    ]);
    await expect(endpoints.require(ep.id, b)).rejects.toMatchObject({ code: "not_found" });
    const strict = new EndpointService(t.engine);
    await expect(
      strict.create(a, { url: "http://127.0.0.1:9/x", event_types: ["*"] }, "k", true),
    ).rejects.toMatchObject({
      code: "validation_error",
      details: { field: "url" },
    });
    await expect(
      strict.create(a, { url: "ftp://example.com", event_types: ["*"] }, "k", true),
    ).rejects.toMatchObject({
      details: { field: "url" },
    });
    await expect(
      strict.create(a, { url: "https://example.com", event_types: ["Bad Type"] }, "k", true),
    ).rejects.toMatchObject({
      details: { field: "event_types" },
    });
  });
});
