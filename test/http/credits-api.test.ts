import { expect, it } from "vitest";
import {
  AudioPodCreditManager,
  analyze_credit_usage,
  estimate_service_cost,
  setup_credit_alerts,
} from "../support/seed-client.ts";
import { describeEachStore } from "../support/stores.ts";
import { useServer } from "./harness.ts";
import { assertCustomerRouteSecurity, type SecurityCredentials } from "./security-suite.ts";
import { OPERATOR_KEY } from "./harness.ts";

/** The seed's multipliers response, verbatim (shared/seeds/003). */
const SEED_MULTIPLIERS = {
  voice_cloning_generation: 330,
  voice_conversion: 990,
  speech_translation: 3300,
  translation: 1650,
  speaker_diarization: 1650,
  speaker_extraction: 1650,
  denoise_audio: 330,
  spectral_denoise: 660,
  stem_extraction: 990,
  music_generation: 1320,
  transcription: 660,
  video_download: 6,
};

describeEachStore("the seed's Credits API (/api/v1/credits…)", (kind) => {
  const t = useServer(kind);

  /** An account with a 20,000-credit monthly supply, 5,000 purchased credits and five usage events. */
  async function customer() {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const expires = new Date(t.clock.now() + 30 * 86400_000).toISOString();
    await t.op("POST", `/v1/accounts/${acct}/grants`, {
      kind: "subscription",
      amount: 20000,
      expires_at: expires,
    });
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: 5000 });
    const events = [
      { service: "voice_cloning_generation", quantity: 180, metadata: { voice_id: 123, language: "en" } }, // 990
      { service: "music_generation", quantity: 30, metadata: { quality: "premium" } }, // 2,640
      { service: "transcription", quantity: 300, metadata: { speaker_diarization: true } }, // 3,300 + 8,250
      { service: "translation", quantity: 180 }, // 4,950: 4,820 monthly + 130 purchased
      { service: "video_download", quantity: 1 }, // 6 purchased
    ];
    for (const [i, e] of events.entries()) {
      const r = await t.op("POST", "/v1/usage", { id: `${acct}-${i}`, account_id: acct, ...e });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      t.clock.advance(1000);
    }
    const key = async (scopes: string[]) =>
      (await t.op("POST", `/v1/accounts/${acct}/keys`, { name: scopes.join("+"), scopes })).body as {
        id: string;
        secret: string;
      };
    return { acct, key };
  }

  async function get(credential: string, path: string, body?: unknown) {
    const res = await fetch(t.base + path, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${credential}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  it("GET /credits answers every documented field, with the documented types", async () => {
    const { key } = await customer();
    const { secret } = await key(["read"]);
    const r = await get(secret, "/api/v1/credits");
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(
      [
        "credits_balance",
        "payg_balance",
        "total_available_credits",
        "last_reset_at",
        "total_credits_used",
        "total_payg_credits_purchased",
        "next_reset_date",
        "credits_per_month",
        "days_until_reset",
      ].sort(),
    );
    expect(r.body).toEqual({
      credits_balance: 0,
      payg_balance: 4864,
      total_available_credits: 4864,
      last_reset_at: null,
      total_credits_used: 20136,
      total_payg_credits_purchased: 5000,
      next_reset_date: null,
      credits_per_month: 0,
      days_until_reset: null,
    });
  });

  it("GET /credits/usage: a JSON array of the documented rows, newest first", async () => {
    const { acct, key } = await customer();
    const { secret } = await key(["read"]);
    const r = await get(secret, "/api/v1/credits/usage");
    expect(r.status).toBe(200);
    expect(Array.isArray(r.body)).toBe(true);
    expect(r.body).toHaveLength(5);
    for (const row of r.body) {
      expect(Object.keys(row).sort()).toEqual(
        [
          "id",
          "user_credits_id",
          "credits_used",
          "service_type",
          "audio_duration",
          "credit_source",
          "created_at",
          "usage_metadata",
        ].sort(),
      );
      expect(typeof row.credits_used).toBe("number");
      expect(typeof row.audio_duration).toBe("number");
      expect(row.user_credits_id).toBe(acct);
      expect(row.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    expect(r.body.map((u: { service_type: string }) => u.service_type)).toEqual([
      "video_download",
      "translation",
      "transcription",
      "music_generation",
      "voice_cloning_generation",
    ]);
    expect(r.body[0]).toMatchObject({ credits_used: 6, credit_source: "payg", audio_duration: 0 });
    expect(r.body[1]).toMatchObject({
      credits_used: 4950,
      credit_source: "subscription",
      audio_duration: 180,
    });
    expect(r.body[2]).toMatchObject({
      credits_used: 11550,
      service_type: "transcription",
      audio_duration: 300,
      usage_metadata: { speaker_diarization: true },
    });
    const page = await fetch(`${t.base}/api/v1/credits/usage?limit=2`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(((await page.json()) as unknown[]).length).toBe(2);
    expect(page.headers.get("x-next-cursor")).toBeTruthy();
  });

  it("multipliers, PAYG info and checkout sessions, as documented", async () => {
    const { key } = await customer();
    const { secret } = await key(["read", "manage"]);
    const m = await get(secret, "/api/v1/credits/multipliers");
    expect(m.body).toMatchObject(SEED_MULTIPLIERS);
    expect((await get(secret, "/api/v1/credits/payg/info")).body).toEqual({
      credits_per_dollar: 7500,
      min_amount_usd: 1,
      max_amount_usd: 1000,
      currency: "USD",
    });
    const cs = await get(secret, "/api/v1/credits/payg/create-checkout-session", { amount_usd: 25 });
    expect(cs.status).toBe(200);
    expect(cs.body).toEqual({
      session_id: expect.stringMatching(/^cs_/),
      credits_to_receive: 187500,
      amount_usd: 25,
      // Beyond the seed's fields: the page where the customer pays (the local provider's, by default).
      checkout_url: expect.stringMatching(/\/checkout\/cs_\w+\?token=/),
    });
    expect(await t.store.getCheckoutSession(cs.body.session_id)).toMatchObject({
      amount_cents: 2500n,
      status: "open",
    });
    for (const amount_usd of [0.5, 1000.01, "abc", -5, 10.001]) {
      const bad = await get(secret, "/api/v1/credits/payg/create-checkout-session", { amount_usd });
      expect(bad.status, String(amount_usd)).toBe(400);
      expect(bad.body.error).toMatchObject({ code: "validation_error", field: "amount_usd" });
    }
    const reader = await key(["read"]);
    const refused = await get(reader.secret, "/api/v1/credits/payg/create-checkout-session", {
      amount_usd: 25,
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: "forbidden", required_scope: "manage" });
  });

  it("the seed's example client and analysis code, ported line by line, run unchanged against it", async () => {
    const { acct, key } = await customer();
    const { secret } = await key(["read", "usage", "manage"]);
    const base = `${t.base}/api/v1`;
    const manager = new AudioPodCreditManager(secret, base);
    expect(await manager.check_sufficient_credits("voice_cloning_generation", 120)).toEqual({
      sufficient: true,
      available: 4864,
      required: 660,
      shortfall: 0,
    });
    expect(await manager.check_sufficient_credits("transcription", 2 * 3600)).toEqual({
      sufficient: false,
      available: 4864,
      required: 79200,
      shortfall: 74336,
    });
    expect(await manager.check_sufficient_credits("video_download")).toMatchObject({
      required: 6,
      sufficient: true,
    });
    expect(await manager.get_usage_summary(30)).toEqual({
      period_days: 30,
      total_credits_used: 20136,
      service_breakdown: {
        video_download: 6,
        translation: 4950,
        transcription: 11550,
        music_generation: 2640,
        voice_cloning_generation: 990,
      },
      usage_count: 5,
    });

    const lines: string[] = [];
    const { service_analysis } = await analyze_credit_usage(base, secret, (l) => lines.push(l));
    expect(lines).toContain("Current Balance: 4,864 credits");
    expect(lines).toContain("  • transcription is your highest cost service (11550 credits)");
    expect(lines).toContain("    Total Duration: 300.0s");
    expect(service_analysis.transcription).toEqual({
      total_credits: 11550,
      total_duration: 300,
      usage_count: 1,
      average_cost: 11550,
    });

    expect(
      await estimate_service_cost(base, secret, "voice_cloning_generation", { duration: 120 }),
    ).toMatchObject({
      credits_needed: 660,
      usd_cost: 0.66,
    });
    expect(await estimate_service_cost(base, secret, "transcription", { duration: 1800 })).toMatchObject({
      credits_needed: 19800,
    });
    expect(await estimate_service_cost(base, secret, "music_generation", { duration: 60 })).toMatchObject({
      credits_needed: 2640,
    });
    expect(await estimate_service_cost(base, secret, "text_to_speech", { characters: 5000 })).toMatchObject({
      credits_needed: 1650,
    });
    expect(
      await estimate_service_cost(base, secret, "transcription_with_speakers", { duration: 60 }),
    ).toMatchObject({
      credits_needed: 2310,
    });
    expect(await estimate_service_cost(base, secret, "voice_cloning_training")).toMatchObject({
      credits_needed: 3300,
    });

    const alerts: string[] = [];
    expect(await setup_credit_alerts(base, secret, (a) => alerts.push(a), 5000, 100)).toBe(4864);
    expect(alerts).toEqual(["WARNING: 4864 credits remaining"]);
    await setup_credit_alerts(base, secret, (a) => alerts.push(a), 10000, 5000);
    expect(alerts[1]).toBe("CRITICAL: Only 4864 credits remaining!");
    void acct;
  });

  it("a token from email and password works like a key", async () => {
    const { acct } = await customer();
    const email = `seed.${kind}.${acct.slice(-6)}@example.com`;
    expect(
      (await t.op("POST", `/v1/accounts/${acct}/users`, { email, password: "correct horse battery" })).status,
    ).toBe(201);
    const tok = await fetch(`${t.base}/api/v1/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse battery" }),
    });
    const { access_token } = (await tok.json()) as { access_token: string };
    expect((await get(access_token, "/api/v1/credits")).body.total_available_credits).toBe(4864);
  });

  it("the security suite passes on every Credits API route", async () => {
    const { acct, key } = await customer();
    const other = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const otherKey = (
      await t.op("POST", `/v1/accounts/${other}/keys`, { scopes: ["read", "usage", "manage"] })
    ).body.secret;
    const full = await key(["read", "usage", "manage"]);
    const usageOnly = await key(["usage"]);
    const reader = await key(["read"]);
    const revoked = await key(["read"]);
    await t.op("POST", `/v1/keys/${revoked.id}/revoke`);
    const email = `suite.${kind}.${acct.slice(-6)}@example.com`;
    await t.op("POST", `/v1/accounts/${acct}/users`, { email, password: "correct horse battery" });
    const token = (
      (await (
        await fetch(`${t.base}/api/v1/auth/token`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email, password: "correct horse battery" }),
        })
      ).json()) as { access_token: string }
    ).access_token;
    const expired = (
      await t.customerAuth.signToken(
        { account_id: acct, user_id: "usr_x", scopes: ["read", "usage", "manage"] },
        { issuedAt: t.clock.now() - 7200_000 },
      )
    ).access_token;
    const creds: SecurityCredentials = {
      own: full.secret,
      other: otherKey,
      revoked: revoked.secret,
      expired,
      token,
      operator: OPERATOR_KEY,
    };
    const snapshot = async () => (await t.op("GET", `/v1/accounts/${acct}/balance`)).body.total;
    const markers = [acct];
    for (const path of [
      "/api/v1/credits",
      "/api/v1/credits/usage",
      "/api/v1/credits/multipliers",
      "/api/v1/credits/payg/info",
    ]) {
      await assertCustomerRouteSecurity(
        t.base,
        { method: "GET", path, scope: "read", foreign: "own_data", markers },
        { ...creds, lacking: usageOnly.secret },
        { snapshot, ownStatus: 200 },
      );
    }
    await assertCustomerRouteSecurity(
      t.base,
      {
        method: "POST",
        path: "/api/v1/credits/payg/create-checkout-session",
        body: { amount_usd: 10 },
        scope: "manage",
        foreign: "own_data",
        markers,
      },
      { ...creds, lacking: reader.secret },
      { snapshot, ownStatus: 200 },
    );
  });
});
