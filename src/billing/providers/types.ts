import type { PaymentMethodRecord } from "../../store/purchase-store.ts";

/** What a provider needs to open a hosted checkout for one session. */
export interface CheckoutRequest {
  /** Tally's checkout session id (cs_…): the provider echoes it back on confirmation. */
  session_id: string;
  account_id: string;
  amount_cents: bigint;
  /** ISO 4217, upper case. */
  currency: string;
  /** What the customer sees: "187,500 credits", a pack's name. */
  description: string;
  /** Where the customer's browser goes after paying or giving up. */
  success_url: string;
  cancel_url: string;
  expires_at: number;
  /** Keep the payment method for later off-session charges (auto-recharge). */
  save_payment_method: boolean;
}

export interface CheckoutCreated {
  /** The provider's id of the session. */
  provider_ref: string;
  /** The page where the customer pays. */
  url: string;
  /** Local provider only: the page's secret, kept hashed by Tally. */
  secret?: string;
}

/** An off-session charge of a saved payment method (auto-recharge). */
export interface ChargeRequest {
  /** Tally's purchase id: the idempotency key of the charge at the provider. */
  reference: string;
  account_id: string;
  amount_cents: bigint;
  currency: string;
  method: PaymentMethodRecord;
  description: string;
}

export type ChargeResult =
  { status: "succeeded"; payment_ref: string } | { status: "declined"; code: string; message: string };

export interface RefundRequest {
  /** Tally's idempotency key for the refund (one per purchase refund). */
  reference: string;
  payment_ref: string;
  amount_cents: bigint;
  currency: string;
}

/**
 * A payment provider. Every call is idempotent by its reference, so a call repeated after a crash or a
 * timeout never charges or refunds twice. Confirmation of a checkout arrives separately (a webhook for
 * Stripe, the checkout page for the local provider) and goes to Purchases.fulfil.
 */
export interface PaymentProvider {
  readonly name: "local" | "stripe";
  createCheckout(req: CheckoutRequest): Promise<CheckoutCreated>;
  charge(req: ChargeRequest): Promise<ChargeResult>;
  /** Returns the provider's refund id; throws if the provider refuses. */
  refund(req: RefundRequest): Promise<string>;
}
