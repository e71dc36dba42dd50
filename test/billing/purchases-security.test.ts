import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { OPERATOR_KEY } from "../http/harness.ts";
import { assertCustomerRouteSecurity, type SecurityCredentials } from "../http/security-suite.ts";
import { submitCheckout, useBillingServer } from "./harness.ts";

describeEachStore("the security suite on every customer purchase route", (kind) => {
  const t = useBillingServer(kind);

  it("refuses missing, wrong, revoked, expired, forged and foreign credentials; changes nothing", async () => {
    const { acct, secret: full } = await t.customer();
    const other = await t.customer();
    const key = async (scopes: string[]) =>
      (await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes })).body as { id: string; secret: string };
    const reader = await key(["read"]);
    const usageOnly = await key(["usage"]);
    const revoked = await key(["read", "manage"]);
    await t.op("POST", `/v1/keys/${revoked.id}/revoke`);
    const email = `purchases.${kind}.${acct.slice(-6)}@example.com`;
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
      own: full,
      other: other.secret,
      revoked: revoked.secret,
      expired,
      token,
      operator: OPERATOR_KEY,
    };

    // This account's things: a pack purchase, a payment method, an auto-recharge rule.
    const pack = (await t.op("POST", "/v1/packs", { name: "Suite", credits: 100, price_usd: 1 })).body
      .id as string;
    const cs = await t.as(full, "POST", `/api/v1/packs/${pack}/checkout`);
    await submitCheckout(t.base, cs.body.checkout_url, "pay");
    const purchase = (await t.as(full, "GET", "/api/v1/purchases")).body.data[0].id as string;
    const pm = (
      await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
        provider: "local",
        method_ref: "succeeds",
      })
    ).body.id as string;
    const rule = { threshold: 1, amount_usd: 5, payment_method_id: pm };
    expect((await t.as(full, "PUT", "/api/v1/auto-recharge", rule)).status).toBe(200);
    await t.autoRecharge.idle();

    const snapshot = async () => ({
      balance: (await t.op("GET", `/v1/accounts/${acct}/balance`)).body.total,
      purchases: (await t.op("GET", `/v1/purchases?account_id=${acct}`)).body.data.length,
      rule: (await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body,
    });
    const markers = [acct, purchase, pm, cs.body.session_id];
    const reads: [string, "own_data" | "not_found"][] = [
      ["/api/v1/packs", "own_data"],
      ["/api/v1/purchases", "own_data"],
      [`/api/v1/purchases/${purchase}`, "not_found"],
      [`/api/v1/checkout-sessions/${cs.body.session_id}`, "not_found"],
      ["/api/v1/payment-methods", "own_data"],
      ["/api/v1/auto-recharge", "not_found"],
    ];
    for (const [path, foreign] of reads)
      await assertCustomerRouteSecurity(
        t.base,
        { method: "GET", path, scope: "read", foreign, markers },
        { ...creds, lacking: usageOnly.secret },
        { snapshot, ownStatus: 200 },
      );
    await assertCustomerRouteSecurity(
      t.base,
      {
        method: "PUT",
        path: "/api/v1/auto-recharge",
        body: rule,
        scope: "manage",
        foreign: "not_found",
        markers,
      },
      { ...creds, lacking: reader.secret },
      { snapshot, ownStatus: 200 },
    );
    await assertCustomerRouteSecurity(
      t.base,
      {
        method: "POST",
        path: `/api/v1/packs/${pack}/checkout`,
        scope: "manage",
        foreign: "own_data",
        markers,
      },
      { ...creds, lacking: reader.secret },
      { snapshot },
    );
    await assertCustomerRouteSecurity(
      t.base,
      { method: "DELETE", path: "/api/v1/auto-recharge", scope: "manage", foreign: "not_found", markers },
      { ...creds, lacking: reader.secret },
      { snapshot, ownStatus: 200 },
    );
    expect((await t.as(full, "GET", "/api/v1/auto-recharge")).status).toBe(404);
  });
});
