import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { useServer } from "./harness.ts";

describeEachStore("the customer's calculator (/api/v1/credits/rate-card, /credits/estimate)", (kind) => {
  const t = useServer(kind);

  async function key(scopes: string[]) {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    return (await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes })).body.secret as string;
  }
  const as = (secret: string | null, method: string, path: string, body?: unknown) =>
    fetch(t.base + path, {
      method,
      headers: {
        ...(secret ? { authorization: `Bearer ${secret}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })); // eslint-disable-line @typescript-eslint/no-explicit-any

  it("shows the card in force and prices exactly like the operator's estimate, recording nothing", async () => {
    const secret = await key(["read"]);
    const card = await as(secret, "GET", "/api/v1/credits/rate-card");
    expect(card.status).toBe(200);
    expect(card.body.services.transcription).toMatchObject({ unit: "second", price: "660", per: "60" });

    const body = { service: "transcription", quantity: 90, metadata: { speaker_diarization: true } };
    const mine = await as(secret, "POST", "/api/v1/credits/estimate", body);
    const op = await t.op("POST", "/v1/estimate", body);
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual(op.body);
    expect(mine.body.cost).toBe("3465");
    expect((await t.op("GET", "/v1/audit")).body.counts.usages).toBe(0);
  });

  it("follows a newly published card", async () => {
    const secret = await key(["read"]);
    const card = (await t.op("GET", "/v1/rate-card")).body;
    card.services.video_download.price = "7";
    expect((await t.op("PUT", "/v1/rate-card", { services: card.services })).status).toBe(201);
    const r = await as(secret, "POST", "/api/v1/credits/estimate", {
      service: "video_download",
      quantity: 2,
    });
    expect(r.body.cost).toBe("14");
  });

  it("refuses bad input with the field at fault, and callers without a read credential", async () => {
    const secret = await key(["read"]);
    const unknown = await as(secret, "POST", "/api/v1/credits/estimate", { service: "nope", quantity: 1 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ code: "validation_error", field: "service" });
    const negative = await as(secret, "POST", "/api/v1/credits/estimate", {
      service: "transcription",
      quantity: -5,
    });
    expect(negative.status).toBe(400);
    const extra = await as(secret, "POST", "/api/v1/credits/estimate", {
      service: "transcription",
      at: "2020-01-01T00:00:00Z",
    });
    expect(extra.status).toBe(400);
    expect((await as(null, "GET", "/api/v1/credits/rate-card")).status).toBe(401);
    expect(
      (await as(null, "POST", "/api/v1/credits/estimate", { service: "transcription", quantity: 1 })).status,
    ).toBe(401);
    const usageOnly = await key(["usage"]);
    const forbidden = await as(usageOnly, "POST", "/api/v1/credits/estimate", {
      service: "transcription",
      quantity: 1,
    });
    expect(forbidden.status).toBe(403);
  });
});
