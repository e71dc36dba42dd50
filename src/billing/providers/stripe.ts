import { createRequire } from "node:module";
import type Stripe from "stripe";
import { TallyError } from "../../domain/errors.ts";
import type {
  ChargeRequest,
  ChargeResult,
  CheckoutCreated,
  CheckoutRequest,
  PaymentProvider,
  RefundRequest,
} from "./types.ts";

export interface StripeSettings {
  /** sk_live_… or sk_test_… (STRIPE_SECRET_KEY). */
  secret_key: string;
  /** whsec_… of the webhook endpoint (STRIPE_WEBHOOK_SECRET). */
  webhook_secret: string;
  /** Another API address (STRIPE_API_BASE), e.g. stripe-mock or a test server: http://127.0.0.1:12111. */
  api_base?: string;
}

/**
 * The SDK is loaded when a Stripe provider is made, not when Tally starts: it is a large module, and most
 * processes (the CLI, servers on the local provider) never use it.
 */
const requireCjs = createRequire(import.meta.url);
let sdk: typeof Stripe | null = null;
function stripeSdk(): typeof Stripe {
  sdk ??= requireCjs("stripe") as typeof Stripe;
  return sdk;
}

/** Stripe holds a Checkout Session open 30 minutes to 24 hours; stay inside with a minute to spare. */
const MAX_STRIPE_SESSION_MS = 24 * 3600_000 - 60_000;
const MIN_STRIPE_SESSION_MS = 30 * 60_000 + 60_000;

/** What a verified webhook event tells Tally. */
export type StripeNotice =
  | {
      type: "checkout_paid";
      event_id: string;
      session_ref: string;
      tally_session_id: string | null;
      payment_ref: string | null;
      amount_cents: bigint | null;
      currency: string | null;
      /** The Stripe customer of the session (made when the card is to be saved). */
      customer: string | null;
    }
  | { type: "checkout_expired"; event_id: string; session_ref: string; tally_session_id: string | null }
  | { type: "ignored"; event_id: string; event_type: string };

/** Payments through Stripe's official SDK: Checkout Sessions, off-session PaymentIntents, refunds, webhooks. */
export class StripeProvider implements PaymentProvider {
  readonly name = "stripe" as const;
  readonly client: Stripe;

  constructor(private readonly settings: StripeSettings) {
    const base = settings.api_base ? new URL(settings.api_base) : null;
    const StripeSdk = stripeSdk();
    this.client = new StripeSdk(settings.secret_key, {
      maxNetworkRetries: 2,
      timeout: 20_000,
      telemetry: false,
      ...(base
        ? {
            host: base.hostname,
            port: Number(base.port || (base.protocol === "http:" ? 80 : 443)),
            protocol: base.protocol === "http:" ? "http" : "https",
          }
        : {}),
    });
  }

  async createCheckout(req: CheckoutRequest): Promise<CheckoutCreated> {
    const now = Date.now();
    const expiresMs = Math.max(
      now + MIN_STRIPE_SESSION_MS,
      Math.min(req.expires_at, now + MAX_STRIPE_SESSION_MS),
    );
    const metadata = { tally_session_id: req.session_id, tally_account_id: req.account_id };
    const s = await this.call(() =>
      this.client.checkout.sessions.create(
        {
          mode: "payment",
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency: req.currency.toLowerCase(),
                unit_amount: Number(req.amount_cents),
                product_data: { name: req.description },
              },
            },
          ],
          client_reference_id: req.session_id,
          metadata,
          // Saving the card for auto-recharge needs a customer and the customer's consent to off-session use.
          payment_intent_data: {
            metadata,
            ...(req.save_payment_method ? { setup_future_usage: "off_session" as const } : {}),
          },
          ...(req.save_payment_method ? { customer_creation: "always" as const } : {}),
          success_url: req.success_url,
          cancel_url: req.cancel_url,
          expires_at: Math.floor(expiresMs / 1000),
        },
        { idempotencyKey: `tally-checkout-${req.session_id}` },
      ),
    );
    if (!s.url) throw providerError("Stripe returned a Checkout Session without a URL");
    return { provider_ref: s.id, url: s.url };
  }

  async charge(req: ChargeRequest): Promise<ChargeResult> {
    if (req.method.provider !== "stripe" || !req.method.customer_ref)
      throw TallyError.validation("payment_method_id", "is not a Stripe payment method with a customer");
    try {
      const pi = await this.client.paymentIntents.create(
        {
          amount: Number(req.amount_cents),
          currency: req.currency.toLowerCase(),
          customer: req.method.customer_ref,
          payment_method: req.method.method_ref,
          off_session: true,
          confirm: true,
          description: req.description,
          metadata: { tally_purchase_id: req.reference, tally_account_id: req.account_id },
        },
        { idempotencyKey: `tally-charge-${req.reference}` },
      );
      if (pi.status === "succeeded") return { status: "succeeded", payment_ref: pi.id };
      // requires_action (authentication) and the like cannot complete off-session: a decline for auto-recharge.
      return { status: "declined", code: pi.status, message: `the payment is ${pi.status}` };
    } catch (err) {
      if (err instanceof stripeSdk().errors.StripeCardError)
        return {
          status: "declined",
          code: err.decline_code ?? err.code ?? "card_declined",
          message: err.message,
        };
      throw toProviderError(err);
    }
  }

  async refund(req: RefundRequest): Promise<string> {
    const r = await this.call(() =>
      this.client.refunds.create(
        { payment_intent: req.payment_ref, amount: Number(req.amount_cents) },
        { idempotencyKey: `tally-refund-${req.reference}` },
      ),
    );
    return r.id;
  }

  /** The customer and payment method a PaymentIntent was paid with (to save them for later charges). */
  async paymentMethodOf(
    paymentIntentId: string,
  ): Promise<{ customer: string | null; payment_method: string | null }> {
    const pi = await this.call(() => this.client.paymentIntents.retrieve(paymentIntentId));
    const id = (v: string | { id: string } | null) => (v === null ? null : typeof v === "string" ? v : v.id);
    return { customer: id(pi.customer), payment_method: id(pi.payment_method) };
  }

  /** Verifies the signature of a webhook delivery (raw body as received) and reads what matters to Tally. */
  parseWebhook(rawBody: string | Buffer, signature: string | undefined): StripeNotice {
    if (!signature)
      throw new TallyError("unauthorized", "the Stripe-Signature header is missing", {
        field: "stripe-signature",
      });
    let event: Stripe.Event;
    try {
      event = this.client.webhooks.constructEvent(rawBody, signature, this.settings.webhook_secret);
    } catch (err) {
      throw new TallyError(
        "unauthorized",
        `the webhook signature does not verify: ${(err as Error).message}`,
        {
          field: "stripe-signature",
        },
      );
    }
    switch (event.type) {
      case "checkout.session.completed":
      case "checkout.session.async_payment_succeeded": {
        const s = event.data.object;
        if (s.payment_status !== "paid")
          return { type: "ignored", event_id: event.id, event_type: event.type };
        return {
          type: "checkout_paid",
          event_id: event.id,
          session_ref: s.id,
          tally_session_id: s.client_reference_id ?? s.metadata?.tally_session_id ?? null,
          payment_ref:
            typeof s.payment_intent === "string" ? s.payment_intent : (s.payment_intent?.id ?? null),
          amount_cents: s.amount_total === null ? null : BigInt(s.amount_total),
          currency: s.currency ? s.currency.toUpperCase() : null,
          customer: typeof s.customer === "string" ? s.customer : (s.customer?.id ?? null),
        };
      }
      case "checkout.session.expired": {
        const s = event.data.object;
        return {
          type: "checkout_expired",
          event_id: event.id,
          session_ref: s.id,
          tally_session_id: s.client_reference_id ?? s.metadata?.tally_session_id ?? null,
        };
      }
      default:
        return { type: "ignored", event_id: event.id, event_type: event.type };
    }
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw toProviderError(err);
    }
  }
}

function providerError(message: string): TallyError {
  return new TallyError("payment_provider_error", message, { provider: "stripe" });
}

function toProviderError(err: unknown): TallyError {
  if (err instanceof TallyError) return err;
  if (err instanceof stripeSdk().errors.StripeError)
    return new TallyError("payment_provider_error", `Stripe: ${err.message}`, {
      provider: "stripe",
      provider_code: err.code ?? err.type,
    });
  return providerError(`Stripe could not be reached: ${(err as Error).message ?? String(err)}`);
}
