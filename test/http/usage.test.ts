import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { useServer } from "./harness.ts";

describeEachStore("usage, estimate and the rate card over HTTP", (kind) => {
  const t = useServer(kind);

  async function funded(credits: string) {
    const id = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${id}/grants`, { kind: "purchase", amount: credits });
    return id;
  }

  it("prices usage by the default rate card (the seed's multipliers) and debits it, idempotently", async () => {
    const acct = await funded("10000");
    const r = await t.op("POST", "/v1/usage", {
      id: `tx-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 90,
    });
    expect(r.status).toBe(201);
    // 660 credits per minute, per second: 90 s = 990 credits.
    expect(r.body).toMatchObject({
      id: `tx-${acct}`,
      cost: "990",
      service: "transcription",
      quantity: "90",
      replay: false,
    });
    expect(r.body.pricing).toMatchObject({ cost: "990", version: 1 });
    const again = await t.op("POST", "/v1/usage", {
      id: `tx-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 90,
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ cost: "990", replay: true });
    const conflict = await t.op("POST", "/v1/usage", {
      id: `tx-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 91,
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatchObject({ code: "idempotency_conflict", field: "quantity" });
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.available).toBe("9010");
  });

  it("modifiers and multiple dimensions", async () => {
    const acct = await funded("100000");
    const dia = await t.op("POST", "/v1/usage", {
      id: `dia-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: "60",
      metadata: { speaker_diarization: true },
    });
    expect(dia.body.cost).toBe("2310"); // 660 + 1,650 per minute
    const llm = await t.op("POST", "/v1/usage", {
      id: `llm-${acct}`,
      account_id: acct,
      service: "llm_chat",
      quantities: { input_tokens: 1000, output_tokens: 2000 },
    });
    expect(llm.status).toBe(201);
    expect(llm.body.cost).toBe("3.5"); // 0.5 per 1k input + 1.5 per 1k output
    const wrongShape = await t.op("POST", "/v1/usage", {
      id: `bad-${acct}`,
      account_id: acct,
      service: "llm_chat",
      quantity: 5,
    });
    expect(wrongShape.status).toBe(400);
    expect(wrongShape.body.error.field).toMatch(/quantit/);
  });

  it("refuses unknown services, bad quantities and insufficient credits with the field at fault", async () => {
    const acct = await funded("1");
    const cases: [unknown, number, string, string][] = [
      [{ id: "u1", account_id: acct, service: "teleport", quantity: 1 }, 400, "validation_error", "service"],
      [
        { id: "u2", account_id: acct, service: "transcription", quantity: -1 },
        400,
        "validation_error",
        "quantity",
      ],
      [
        { id: "u3", account_id: acct, service: "transcription", quantity: "1e9999" },
        400,
        "validation_error",
        "quantity",
      ],
      [
        { id: "u4", account_id: acct, service: "transcription", quantity: 60 },
        402,
        "insufficient_credits",
        "amount",
      ],
      [
        { id: "u5", account_id: "acct_missing", service: "video_download", quantity: 1 },
        404,
        "not_found",
        "account_id",
      ],
    ];
    for (const [body, status, code, field] of cases) {
      const r = await t.op("POST", "/v1/usage", body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.error).toMatchObject({ code, field });
    }
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.available).toBe("1");
  });

  it("batch: one result per event, in order; a refusal does not affect the others", async () => {
    const acct = await funded("20");
    const events = [
      { id: `b1-${acct}`, account_id: acct, service: "video_download", quantity: 1 },
      { id: `b2-${acct}`, account_id: acct, service: "teleport" },
      { id: `b3-${acct}`, account_id: acct, service: "video_download", quantity: 1 },
      { id: `b4-${acct}`, account_id: acct, service: "video_download", quantity: 1 },
      { id: `b5-${acct}`, account_id: acct, service: "video_download", quantity: 1 },
      { id: `b1-${acct}`, account_id: acct, service: "video_download", quantity: 1 },
    ];
    const r = await t.op("POST", "/v1/usage/batch", { events });
    expect(r.status).toBe(200);
    const results = r.body.results as {
      id: string;
      ok: boolean;
      error?: { code: string };
      usage?: { replay: boolean };
    }[];
    expect(results.map((x) => x.id)).toEqual(events.map((e) => e.id));
    expect(results.map((x) => x.ok)).toEqual([true, false, true, true, false, true]);
    expect(results[1]!.error!.code).toBe("validation_error");
    expect(results[4]!.error!.code).toBe("insufficient_credits");
    expect(results[5]!.usage!.replay).toBe(true);
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.available).toBe("2");
    // Retries: the same event is a replay; a changed one is a conflict naming the field, even when the
    // changed event would not price at all; nothing is debited again.
    const again = await t.op("POST", "/v1/usage/batch", {
      events: [{ ...events[2]! }, { ...events[0]!, quantity: 2 }, { ...events[3]!, service: "teleport" }],
    });
    expect(again.status).toBe(200);
    const [same, changed, unpriced] = again.body.results as {
      ok: boolean;
      usage?: { replay: boolean; cost: string };
      error?: { code: string; field: string };
    }[];
    expect(same!.usage).toMatchObject({ replay: true, cost: "6" });
    expect(changed!.error).toMatchObject({ code: "idempotency_conflict", field: "quantity" });
    expect(unpriced!.error).toMatchObject({ code: "idempotency_conflict", field: "service" });
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.available).toBe("2");
    // One id twice in one batch, the second changed: the first is recorded (not a replay), the second refused.
    const other = await funded("20");
    const twice = await t.op("POST", "/v1/usage/batch", {
      events: [
        { id: `b6-${other}`, account_id: other, service: "video_download", quantity: 1 },
        { id: `b6-${other}`, account_id: other, service: "video_download", quantity: 2 },
      ],
    });
    const [first, second] = twice.body.results as {
      ok: boolean;
      usage?: { replay: boolean };
      error?: { code: string; field: string };
    }[];
    expect(first).toMatchObject({ ok: true, usage: { replay: false } });
    expect(second!.error).toMatchObject({ code: "idempotency_conflict", field: "quantity" });
    const tooMany = await t.op("POST", "/v1/usage/batch", { events: new Array(1001).fill(events[0]) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.field).toBe("events");
  });

  it("estimate prices without recording; a new rate card version changes new prices only", async () => {
    const acct = await funded("10000");
    const est = await t.op("POST", "/v1/estimate", { service: "music_generation", quantity: 45 });
    expect(est.status).toBe(200);
    expect(est.body.cost).toBe("1980"); // 1,320 per 30 s, billed per second
    expect((await t.op("GET", `/v1/accounts/${acct}/usage`)).body.data).toHaveLength(0);

    const before = t.clock.now();
    const old = await t.op("POST", "/v1/usage", {
      id: `old-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 60,
    });
    expect(old.body.cost).toBe("660");
    t.clock.advance(1000);
    const card = (await t.op("GET", "/v1/rate-card")).body;
    const services = { ...card.services, transcription: { ...card.services.transcription, price: "1000" } };
    const published = await t.op("PUT", "/v1/rate-card", { services });
    expect(published.status).toBe(201);
    expect(published.body.version).toBe(card.version + 1);
    t.clock.advance(1000);
    const now = await t.op("POST", "/v1/usage", {
      id: `new-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 60,
    });
    expect(now.body.cost).toBe("1000");
    // A retry of the old event after the price change is still a replay, at the price it was charged.
    const retry = await t.op("POST", "/v1/usage", {
      id: `old-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 60,
    });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ replay: true, cost: "660" });
    const batchRetry = await t.op("POST", "/v1/usage/batch", {
      events: [{ id: `old-${acct}`, account_id: acct, service: "transcription", quantity: 60 }],
    });
    expect(batchRetry.body.results[0].usage).toMatchObject({ replay: true, cost: "660" });
    // Old usage keeps the price it was charged; a late event that occurred before the change is priced by the old version.
    expect((await t.op("GET", `/v1/usage/old-${acct}`)).body.cost).toBe("660");
    const late = await t.op("POST", "/v1/usage", {
      id: `late-${acct}`,
      account_id: acct,
      service: "transcription",
      quantity: 60,
      occurred_at: new Date(before).toISOString(),
    });
    expect(late.body.cost).toBe("660");
    const pastEstimate = await t.op("POST", "/v1/estimate", {
      service: "transcription",
      quantity: 60,
      at: new Date(before).toISOString(),
    });
    expect(pastEstimate.body.cost).toBe("660");
    expect((await t.op("GET", "/v1/rate-card/versions")).body.data.length).toBeGreaterThanOrEqual(2);
    const bad = await t.op("PUT", "/v1/rate-card", {
      services: { transcription: { unit: "second", price: "-1" } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toMatch(/^services\.transcription\.price/);
  });
});
