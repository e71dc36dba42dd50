import { createHash, timingSafeEqual } from "node:crypto";
import { formatCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { Engine } from "../ledger/engine.ts";
import type { Metadata } from "../ledger/types.ts";
import {
  purchaseStoreFor,
  type CheckoutRecord,
  type PaymentMethodRecord,
  type PurchaseRecord,
  type PurchaseStore,
} from "../store/purchase-store.ts";
import type { EventDraft } from "../events/types.ts";
import { loadPayg, loadTiers, quote } from "./payg.ts";
import { addMethod, getPack } from "./purchases-catalog.ts";
import { LocalProvider } from "./providers/local.ts";
import { StripeProvider, type StripeNotice, type StripeSettings } from "./providers/stripe.ts";
import type { PaymentProvider } from "./providers/types.ts";

export interface PurchasesOptions {
  /** Provider of new checkouts: "stripe" needs `stripe` settings. Default: stripe when configured, else local. */
  provider?: "local" | "stripe";
  stripe?: StripeSettings | null;
  /** Tally's address as the customer's browser reaches it (checkout page, return pages). */
  public_url?: string;
  checkout_ttl_ms?: number;
}

/** Settings from the environment: TALLY_PAYMENT_PROVIDER, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, … */
export function purchasesOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): PurchasesOptions {
  const provider = env.TALLY_PAYMENT_PROVIDER;
  if (provider !== undefined && provider !== "local" && provider !== "stripe")
    throw new Error(`TALLY_PAYMENT_PROVIDER must be local or stripe, not ${provider}`);
  const stripe =
    env.STRIPE_SECRET_KEY && env.STRIPE_WEBHOOK_SECRET
      ? {
          secret_key: env.STRIPE_SECRET_KEY,
          webhook_secret: env.STRIPE_WEBHOOK_SECRET,
          ...(env.STRIPE_API_BASE ? { api_base: env.STRIPE_API_BASE } : {}),
        }
      : null;
  if (provider === "stripe" && !stripe)
    throw new Error("TALLY_PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET");
  return {
    ...(provider ? { provider } : {}),
    stripe,
    public_url: env.TALLY_PUBLIC_URL ?? `http://localhost:${env.PORT ?? 8080}`,
  };
}

/** What is being bought: an amount of money at the pay-as-you-go rate, or a named pack. */
export type PurchaseSpec = { amount_cents: bigint } | { pack_id: string };

interface Priced {
  amount_cents: bigint;
  currency: string;
  credits: bigint;
  pack_id: string | null;
  credits_ttl_ms: number | null;
  description: string;
}

export const DEFAULT_CHECKOUT_TTL_MS = 24 * 3600_000;
const RECONCILE_AFTER_MS = 10 * 60_000;
const RECONCILE_LIMIT = 100;

/** Ids derived from a purchase's own id: the same purchase always makes the same grant (exactly once). */
export function purchaseIdForSession(sessionId: string): string {
  return `pur_${sessionId.replace(/^cs_/, "")}`;
}
export function grantIdForPurchase(purchaseId: string): string {
  return `grt_${purchaseId.replace(/^pur_/, "")}`;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * Purchases of credits: checkout sessions through a payment provider, fulfilment exactly once per purchase
 * (a grant whose id derives from the purchase, plus conditional status changes), charges of saved payment
 * methods, and refunds that void what is left of a purchase and return the matching money.
 */
export class Purchases {
  readonly store: PurchaseStore;
  readonly local: LocalProvider;
  readonly stripe: StripeProvider | null;
  readonly defaultProvider: PaymentProvider;
  private publicUrl: string;
  private readonly ttlMs: number;

  constructor(
    readonly engine: Engine,
    opts: PurchasesOptions = {},
  ) {
    this.store = purchaseStoreFor(engine.store);
    this.publicUrl = (opts.public_url ?? "http://localhost:8080").replace(/\/+$/, "");
    this.ttlMs = opts.checkout_ttl_ms ?? DEFAULT_CHECKOUT_TTL_MS;
    this.local = new LocalProvider(this.store, engine.clock, () => this.publicUrl);
    this.stripe = opts.stripe ? new StripeProvider(opts.stripe) : null;
    const name = opts.provider ?? (this.stripe ? "stripe" : "local");
    if (name === "stripe" && !this.stripe) throw new Error("the stripe provider needs Stripe settings");
    this.defaultProvider = name === "stripe" ? this.stripe! : this.local;
  }

  /** Tally's address as browsers reach it (checkout pages and return pages are under it). */
  setPublicUrl(url: string): void {
    this.publicUrl = url.replace(/\/+$/, "");
  }

  provider(name: string): PaymentProvider {
    if (name === "local") return this.local;
    if (name === "stripe" && this.stripe) return this.stripe;
    throw new TallyError("payment_provider_error", `the payment provider ${name} is not configured`, {
      provider: name,
    });
  }

  /** Prices an amount (bulk tiers applied; refused outside min/max) or a pack (active ones only). */
  async price(spec: PurchaseSpec, field = "amount_usd"): Promise<Priced> {
    if ("pack_id" in spec) {
      const pack = await getPack(this.store, spec.pack_id);
      if (!pack.active) throw TallyError.validation("pack_id", "is a pack that is no longer sold");
      return {
        amount_cents: pack.price_cents,
        currency: pack.currency,
        credits: pack.credits,
        pack_id: pack.id,
        credits_ttl_ms: pack.expires_after_days === null ? null : pack.expires_after_days * 86_400_000,
        description: `${pack.name} (${formatCredits(pack.credits)} credits)`,
      };
    }
    const [settings, tiers] = await Promise.all([loadPayg(this.engine.store), loadTiers(this.engine.store)]);
    const credits = quote(spec.amount_cents, settings, field, tiers);
    return {
      amount_cents: spec.amount_cents,
      currency: settings.currency,
      credits,
      pack_id: null,
      credits_ttl_ms: null,
      description: `${formatCredits(credits)} credits`,
    };
  }

  /**
   * Opens a checkout session with the default provider; the customer pays at `url`. With
   * `save_payment_method`, the payment method is saved on payment, for auto-recharge.
   */
  async createCheckout(
    accountId: string,
    spec: PurchaseSpec,
    opts: { field?: string; save_payment_method?: boolean } = {},
  ): Promise<CheckoutRecord> {
    const priced = await this.price(spec, opts.field);
    const save = opts.save_payment_method ?? false;
    // A suspended account may still buy credits (the ledger grants to it); a closed one takes nothing.
    const account = await this.engine.getAccount(accountId);
    if (account.status === "closed")
      throw new TallyError("account_not_active", `account ${accountId} is ${account.status}`, {
        field: "account_id",
        status: account.status,
      });
    const now = this.engine.clock.now();
    const id = newId("cs", now);
    const provider = this.defaultProvider;
    const expiresAt = now + this.ttlMs;
    const created = await provider.createCheckout({
      session_id: id,
      account_id: accountId,
      amount_cents: priced.amount_cents,
      currency: priced.currency,
      description: priced.description,
      success_url: `${this.publicUrl}/checkout/${id}/done`,
      cancel_url: `${this.publicUrl}/checkout/${id}/canceled`,
      expires_at: expiresAt,
      save_payment_method: save,
    });
    const session: CheckoutRecord = {
      id,
      account_id: accountId,
      amount_cents: priced.amount_cents,
      currency: priced.currency,
      credits: priced.credits,
      status: "open",
      provider: provider.name,
      created_at: now,
      expires_at: expiresAt,
      pack_id: priced.pack_id,
      credits_ttl_ms: priced.credits_ttl_ms,
      provider_ref: created.provider_ref,
      url: created.url,
      secret_sha256: created.secret ? sha256(created.secret) : null,
      paid_at: null,
      payment_ref: null,
      closed_at: null,
      save_method: save,
    };
    // The row is written once the provider has the session: nobody can pay before the URL is answered.
    await this.store.insertSession(session);
    return session;
  }

  async getSession(id: string): Promise<CheckoutRecord> {
    const s = await this.store.getSession(id);
    if (!s) throw TallyError.notFound("checkout session", id, "session_id");
    return s;
  }

  /** The local checkout page's session, if the token is its secret (else not_found: nothing leaks). */
  async localSession(id: string, token: string | undefined): Promise<CheckoutRecord> {
    const s = await this.store.getSession(id);
    if (
      !s ||
      s.provider !== "local" ||
      !s.secret_sha256 ||
      !token ||
      !sameHex(sha256(token), s.secret_sha256)
    )
      throw TallyError.notFound("checkout session", id, "session_id");
    return s;
  }

  /** The person paid on the local checkout page. Any number of submissions make one purchase. */
  async payLocal(
    id: string,
    token: string | undefined,
  ): Promise<{ purchase: PurchaseRecord; replay: boolean }> {
    let s = await this.localSession(id, token);
    const now = this.engine.clock.now();
    if (s.status === "open" && s.expires_at <= now) {
      await this.store.closeSession(id, "expired", now);
      s = await this.getSession(id);
    }
    if (s.status !== "open" && s.status !== "paid") throw notOpen(s);
    const paymentRef = `lpay_${id.replace(/^cs_/, "")}`;
    if (s.status === "open" && !(await this.store.markSessionPaid(id, paymentRef, now))) {
      s = await this.getSession(id);
      if (s.status !== "paid") throw notOpen(s);
    }
    await this.local.payCheckout(id, s.account_id, s.amount_cents, s.currency);
    const done = await this.completePaid(await this.getSession(id));
    if (s.save_method)
      await this.saveMethod(s.account_id, "local", null, "succeeds", "test card saved at checkout");
    return done;
  }

  /** The person gave up on the local checkout page. */
  async cancelLocal(id: string, token: string | undefined): Promise<CheckoutRecord> {
    const s = await this.localSession(id, token);
    if (s.status === "canceled") return s;
    if (!(await this.store.closeSession(id, "canceled", this.engine.clock.now())))
      throw notOpen(await this.getSession(id));
    const closed = await this.getSession(id);
    await this.engine.publish([sessionEvent("checkout.canceled", closed)]);
    return closed;
  }

  /** A verified Stripe webhook: fulfils a paid session, closes an expired one; others are ignored. */
  async handleStripe(
    notice: StripeNotice,
  ): Promise<{ purchase?: PurchaseRecord; replay?: boolean; ignored?: string }> {
    if (notice.type === "ignored") return { ignored: notice.event_type };
    const s = await this.sessionForStripe(notice.session_ref, notice.tally_session_id);
    if (!s) return { ignored: "a session this Tally did not open" };
    const now = this.engine.clock.now();
    if (notice.type === "checkout_expired") {
      await this.store.closeSession(s.id, "expired", now);
      return { ignored: "expired" };
    }
    if (notice.amount_cents !== s.amount_cents || notice.currency !== s.currency)
      throw TallyError.validation(
        "amount_total",
        `the payment (${notice.amount_cents} ${notice.currency}) does not match the session (${s.amount_cents} ${s.currency})`,
      );
    // Stripe took the money: that wins over a session Tally had seen expire meanwhile.
    if (s.status !== "paid") await this.store.markSessionPaid(s.id, notice.payment_ref, now, true);
    const done = await this.completePaid(await this.getSession(s.id));
    if (s.save_method && notice.payment_ref && this.stripe) {
      // A failure here answers non-2xx: Stripe delivers again, the grant replays, the save is retried.
      const pm = await this.stripe.paymentMethodOf(notice.payment_ref);
      const customer = pm.customer ?? notice.customer;
      if (customer && pm.payment_method)
        await this.saveMethod(s.account_id, "stripe", customer, pm.payment_method, "card saved at checkout");
    }
    return done;
  }

  /** Saves a payment method unless the account has it already (or has as many as it may keep). */
  private async saveMethod(
    accountId: string,
    provider: "local" | "stripe",
    customer: string | null,
    methodRef: string,
    label: string,
  ): Promise<void> {
    if (await this.store.findMethod(accountId, provider, methodRef)) return;
    try {
      await addMethod(
        this.store,
        accountId,
        { provider, customer_ref: customer, method_ref: methodRef, label },
        this.engine.clock.now(),
      );
    } catch (err) {
      // Over the per-account limit, or a reference of an unexpected shape: the purchase stands, unsaved.
      if (!(err instanceof TallyError && err.code === "validation_error")) throw err;
    }
  }

  private async sessionForStripe(ref: string, tallyId: string | null): Promise<CheckoutRecord | null> {
    const s = tallyId ? await this.store.getSession(tallyId) : null;
    if (!s || s.provider !== "stripe" || s.provider_ref !== ref) return null;
    return s;
  }

  /**
   * The grant and the purchase record of a paid session, each exactly once: the grant's id derives from the
   * session and its fields from the stored session (paid_at fixed by the one transition to paid), so every
   * later confirmation is a replay. Also run by the reconciler for a session paid before a crash.
   */
  private async completePaid(s: CheckoutRecord): Promise<{ purchase: PurchaseRecord; replay: boolean }> {
    if (s.status !== "paid" || s.paid_at === null) throw notOpen(s);
    const purchaseId = purchaseIdForSession(s.id);
    const p: PurchaseRecord = {
      id: purchaseId,
      account_id: s.account_id,
      source: "checkout",
      checkout_session_id: s.id,
      pack_id: s.pack_id,
      amount_cents: s.amount_cents,
      currency: s.currency,
      credits: s.credits,
      credits_expire_at: s.credits_ttl_ms === null ? null : s.paid_at + s.credits_ttl_ms,
      grant_id: grantIdForPurchase(purchaseId),
      provider: s.provider,
      payment_method_id: null,
      payment_ref: s.payment_ref,
      status: "paid",
      failure_reason: null,
      refunded_cents: 0n,
      refunded_credits: 0n,
      refund_ref: null,
      refund_reason: null,
      created_at: s.created_at,
      paid_at: s.paid_at,
      refunded_at: null,
      updated_at: s.paid_at,
    };
    // purchase.completed is written with the grant, in its transaction: once, never on a replay.
    const g = await this.grantFor(p, [purchaseEvent("purchase.completed", p)]);
    await this.store.insertPurchase(p);
    return { purchase: (await this.store.getPurchase(purchaseId))!, replay: g.replay };
  }

  private grantFor(p: PurchaseRecord, events: EventDraft[]) {
    const metadata: Metadata = { purchase_id: p.id };
    if (p.checkout_session_id) metadata.checkout_session_id = p.checkout_session_id;
    if (p.pack_id) metadata.pack_id = p.pack_id;
    return this.engine.grant({
      id: p.grant_id,
      account_id: p.account_id,
      kind: "purchase",
      amount: p.credits,
      expires_at: p.credits_expire_at,
      source: p.source === "checkout" ? "purchase" : "auto_recharge",
      reference: p.id,
      metadata,
      events,
    });
  }

  /**
   * Buys with a saved payment method (auto-recharge): a pending purchase first, then the provider's charge
   * (idempotent by the purchase id), then the grant (idempotent by its derived id), then paid.
   */
  async chargeSaved(
    accountId: string,
    spec: PurchaseSpec,
    method: PaymentMethodRecord,
    extra: (p: PurchaseRecord) => EventDraft[] = () => [],
  ): Promise<
    | { status: "succeeded"; purchase: PurchaseRecord }
    | { status: "declined"; purchase: PurchaseRecord; code: string; message: string }
  > {
    const priced = await this.price(spec, "amount_usd");
    const now = this.engine.clock.now();
    const id = newId("pur", now);
    const p: PurchaseRecord = {
      id,
      account_id: accountId,
      source: "auto_recharge",
      checkout_session_id: null,
      pack_id: priced.pack_id,
      amount_cents: priced.amount_cents,
      currency: priced.currency,
      credits: priced.credits,
      credits_expire_at: priced.credits_ttl_ms === null ? null : now + priced.credits_ttl_ms,
      grant_id: grantIdForPurchase(id),
      provider: method.provider,
      payment_method_id: method.id,
      payment_ref: null,
      status: "pending",
      failure_reason: null,
      refunded_cents: 0n,
      refunded_credits: 0n,
      refund_ref: null,
      refund_reason: null,
      created_at: now,
      paid_at: null,
      refunded_at: null,
      updated_at: now,
    };
    await this.store.insertPurchase(p);
    return this.finishCharge(p, method, priced.description, extra);
  }

  private async finishCharge(
    p: PurchaseRecord,
    method: PaymentMethodRecord,
    description: string,
    extra: (p: PurchaseRecord) => EventDraft[],
  ): Promise<
    | { status: "succeeded"; purchase: PurchaseRecord }
    | { status: "declined"; purchase: PurchaseRecord; code: string; message: string }
  > {
    const result = await this.provider(method.provider).charge({
      reference: p.id,
      account_id: p.account_id,
      amount_cents: p.amount_cents,
      currency: p.currency,
      method,
      description,
    });
    const now = this.engine.clock.now();
    if (result.status === "declined") {
      await this.store.markPurchaseFailed(p.id, `${result.code}: ${result.message}`, now);
      return { status: "declined", purchase: (await this.store.getPurchase(p.id))!, ...pick(result) };
    }
    const paid = { ...p, status: "paid" as const, payment_ref: result.payment_ref };
    await this.grantFor(paid, [purchaseEvent("purchase.completed", paid), ...extra(paid)]);
    await this.store.markPurchasePaid(p.id, result.payment_ref, now);
    return { status: "succeeded", purchase: (await this.store.getPurchase(p.id))! };
  }

  async getPurchase(id: string): Promise<PurchaseRecord> {
    const p = await this.store.getPurchase(id);
    if (!p) throw TallyError.notFound("purchase", id, "purchase_id");
    return p;
  }

  /**
   * Refunds a purchase: voids what is left of its credits and returns the matching share of the money
   * (amount × credits left / credits bought, rounded down to the cent) through its provider. Once: a second
   * call answers the refunded purchase.
   */
  async refund(id: string, reason: string | null = null): Promise<PurchaseRecord> {
    let p = await this.getPurchase(id);
    if (p.status === "refunded") return p;
    if (p.status === "paid") await this.store.startRefund(id, reason, this.engine.clock.now());
    // Read again whoever started it: a concurrent refund of the same purchase may have finished meanwhile
    // (then this one answers with its result, as a retry would).
    p = await this.getPurchase(id);
    if (p.status === "refunded") return p;
    if (p.status !== "refunding")
      throw new TallyError("purchase_not_refundable", `purchase ${id} is ${p.status}`, {
        field: "purchase_id",
        status: p.status,
      });
    return this.finishRefund(p);
  }

  private async finishRefund(p: PurchaseRecord): Promise<PurchaseRecord> {
    // A refund must not be followed by an automatic purchase: the account's auto-recharge pauses first.
    await this.store.pauseRule(
      p.account_id,
      `paused by the refund of purchase ${p.id}`,
      this.engine.clock.now(),
    );
    try {
      await this.engine.voidGrant(p.grant_id, `refund of purchase ${p.id}`);
    } catch (err) {
      // An expired pack has nothing left to void or refund.
      if (!(err instanceof TallyError && err.code === "grant_not_active")) throw err;
    }
    const credits = await this.store.voidedCredits(p.account_id, p.grant_id);
    const cents = (p.amount_cents * credits) / p.credits;
    let ref: string | null = null;
    if (cents > 0n) {
      if (!p.payment_ref)
        throw new TallyError("purchase_not_refundable", `purchase ${p.id} has no payment`, {});
      ref = await this.provider(p.provider).refund({
        reference: `refund_${p.id}`,
        payment_ref: p.payment_ref,
        amount_cents: cents,
        currency: p.currency,
      });
    }
    const now = this.engine.clock.now();
    if (
      await this.store.finishRefund(
        p.id,
        { refunded_cents: cents, refunded_credits: credits, refund_ref: ref },
        now,
      )
    ) {
      const done = (await this.store.getPurchase(p.id))!;
      await this.engine.publish([purchaseEvent("purchase.refunded", done)]);
      return done;
    }
    return this.getPurchase(p.id);
  }

  /**
   * Finishes work a crash interrupted and closes what is due: paid sessions without their grant, charges
   * left pending, refunds left half-done, open sessions past their expiry. Run by the scheduler.
   */
  async reconcile(): Promise<{
    fulfilled: number;
    charges: number;
    refunds: number;
    expired: number;
    errors: { id: string; error: string }[];
  }> {
    const now = this.engine.clock.now();
    const out = {
      fulfilled: 0,
      charges: 0,
      refunds: 0,
      expired: 0,
      errors: [] as { id: string; error: string }[],
    };
    // One item's failure (a closed account, the provider down) must not keep the others waiting.
    const attempt = async (id: string, f: () => Promise<unknown>): Promise<boolean> => {
      try {
        await f();
        return true;
      } catch (err) {
        out.errors.push({ id, error: err instanceof Error ? err.message : String(err) });
        return false;
      }
    };
    for (const s of await this.store.unfulfilledSessions(RECONCILE_LIMIT))
      if (await attempt(s.id, () => this.completePaid(s))) out.fulfilled++;
    for (const p of await this.store.stalePurchases(now - RECONCILE_AFTER_MS, RECONCILE_LIMIT)) {
      if (p.status === "refunding") {
        if (await attempt(p.id, () => this.finishRefund(p))) out.refunds++;
      } else if (p.payment_method_id) {
        const methodId = p.payment_method_id;
        const ok = await attempt(p.id, async () => {
          const method = await this.store.getMethod(methodId);
          if (!method) await this.store.markPurchaseFailed(p.id, "the payment method no longer exists", now);
          else await this.finishCharge(p, method, `${formatCredits(p.credits)} credits`, () => []);
        });
        if (ok) out.charges++;
      }
    }
    out.expired = await this.store.expireSessions(now, 1000);
    return out;
  }
}

function pick(r: { code: string; message: string }) {
  return { code: r.code, message: r.message };
}

function notOpen(s: CheckoutRecord): TallyError {
  return new TallyError("checkout_not_open", `checkout session ${s.id} is ${s.status}`, {
    field: "session_id",
    status: s.status,
  });
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

export function purchaseEvent(type: string, p: PurchaseRecord, extra: Metadata = {}): EventDraft {
  return {
    type,
    account_id: p.account_id,
    data: {
      purchase_id: p.id,
      source: p.source,
      pack_id: p.pack_id,
      amount_cents: Number(p.amount_cents),
      currency: p.currency,
      credits: formatCredits(p.credits),
      grant_id: p.grant_id,
      refunded_cents: Number(p.refunded_cents),
      refunded_credits: formatCredits(p.refunded_credits),
      ...extra,
    },
  };
}

function sessionEvent(type: string, s: CheckoutRecord): EventDraft {
  return {
    type,
    account_id: s.account_id,
    data: { session_id: s.id, amount_cents: Number(s.amount_cents), currency: s.currency },
  };
}
