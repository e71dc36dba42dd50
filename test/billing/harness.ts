import { afterAll, beforeAll } from "vitest";
import { ManualClock } from "../../src/domain/clock.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { buildApp } from "../../src/http/app.ts";
import { OperatorAuth } from "../../src/http/auth.ts";
import { CustomerAuth } from "../../src/http/customer-auth.ts";
import { Purchases, type PurchasesOptions } from "../../src/billing/purchases.ts";
import type { AutoRecharge } from "../../src/billing/auto-recharge.ts";
import { freshDatabase, type StoreKind } from "../support/stores.ts";
import { OPERATOR_KEY, type HttpCtx } from "../http/harness.ts";

export interface BillingCtx extends HttpCtx {
  purchases: Purchases;
  autoRecharge: AutoRecharge;
  /** fetch with a customer credential and JSON. */
  as(
    credential: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** A new account with a customer key of every scope. */
  customer(): Promise<{ acct: string; secret: string }>;
}

/**
 * A real server on 127.0.0.1 over a fresh database, with purchases configured by `options` (read when the
 * server starts, so a fake Stripe API started in an earlier beforeAll can be named). The public URL is the
 * server's own address, so checkout_url works as given.
 */
export function useBillingServer(kind: StoreKind, options: () => PurchasesOptions = () => ({})): BillingCtx {
  const ctx = {} as BillingCtx;
  beforeAll(async () => {
    ctx.db = await freshDatabase(kind);
    ctx.store = await ctx.db.open();
    ctx.clock = new ManualClock(Date.UTC(2026, 10, 10, 12, 0, 0));
    ctx.engine = new Engine(ctx.store, { clock: ctx.clock });
    const { auth } = await OperatorAuth.setup(ctx.store, OPERATOR_KEY);
    ctx.customerAuth = await CustomerAuth.setup(ctx.store, { clock: ctx.clock });
    ctx.purchases = new Purchases(ctx.engine, options());
    ctx.app = await buildApp({
      engine: ctx.engine,
      operator: auth,
      customerAuth: ctx.customerAuth,
      purchases: ctx.purchases,
      logLevel: "silent",
      rateLimit: { backend: "memory" },
    });
    await ctx.app.listen({ port: 0, host: "127.0.0.1" });
    const addr = ctx.app.server.address();
    ctx.base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    // The port is known only once listening: checkout URLs point at this server from now on.
    ctx.purchases.setPublicUrl(ctx.base);
    ctx.autoRecharge = ctx.app.billing.autoRecharge;
    const call = async (auth: string, method: string, path: string, body?: unknown, headers = {}) => {
      const res = await fetch(ctx.base + path, {
        method,
        headers: {
          authorization: `Bearer ${auth}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed as any, headers: res.headers }; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    ctx.op = (method, path, body, headers) => call(OPERATOR_KEY, method, path, body, headers);
    ctx.as = (credential, method, path, body) => call(credential, method, path, body);
    ctx.customer = async () => {
      const acct = (await ctx.op("POST", "/v1/accounts", {})).body.id as string;
      const key = await ctx.op("POST", `/v1/accounts/${acct}/keys`, { scopes: ["read", "usage", "manage"] });
      return { acct, secret: key.body.secret as string };
    };
  });
  afterAll(async () => {
    await ctx.app?.close();
    await ctx.engine?.close();
    await ctx.db?.destroy();
  });
  return ctx;
}

/** Submits the local checkout page's form (as a browser does: urlencoded, no credential). */
export async function submitCheckout(base: string, url: string, action: "pay" | "cancel") {
  const u = new URL(url);
  const id = u.pathname.split("/").pop()!;
  const res = await fetch(`${base}/checkout/${id}/${action}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: u.searchParams.get("token") ?? "" }).toString(),
  });
  return { status: res.status, html: await res.text(), type: res.headers.get("content-type") };
}
