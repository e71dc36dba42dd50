import { randomBytes } from "node:crypto";
import { TallyError } from "../../domain/errors.ts";
import type { Clock } from "../../domain/clock.ts";
import type { PurchaseStore } from "../../store/purchase-store.ts";
import type {
  ChargeRequest,
  ChargeResult,
  CheckoutCreated,
  CheckoutRequest,
  PaymentProvider,
  RefundRequest,
} from "./types.ts";

/** The local provider's saved "test cards": what a charge of each does. */
export const LOCAL_TEST_CARDS = {
  succeeds: "succeeded",
  declines: "card_declined",
  insufficient_funds: "insufficient_funds",
} as const;
export type LocalTestCard = keyof typeof LOCAL_TEST_CARDS;

export function isLocalTestCard(v: string): v is LocalTestCard {
  return Object.hasOwn(LOCAL_TEST_CARDS, v);
}

/**
 * The embedded payment provider: Tally serves the checkout page itself (GET /checkout/:id), where a person
 * completes or cancels the payment; saved "test cards" succeed or decline as named. Payments and refunds are
 * recorded in Tally's own database (local_payments, local_refunds), each once per reference. No money moves:
 * it makes the whole purchase flow work on a fresh machine, and is a real implementation of the interface.
 */
export class LocalProvider implements PaymentProvider {
  readonly name = "local" as const;

  constructor(
    private readonly store: PurchaseStore,
    private readonly clock: Clock,
    /** Tally's public address, read at each checkout (it may be known only once the server listens). */
    private readonly publicUrl: () => string,
  ) {}

  async createCheckout(req: CheckoutRequest): Promise<CheckoutCreated> {
    // The page is reached only with this secret: session ids are sortable, so guessable in part.
    const secret = randomBytes(24).toString("base64url");
    return {
      provider_ref: req.session_id,
      url: `${this.publicUrl()}/checkout/${req.session_id}?token=${secret}`,
      secret,
    };
  }

  /** Records the payment of a checkout session (the person pressed "Pay"): once per session. */
  async payCheckout(
    sessionId: string,
    accountId: string,
    amountCents: bigint,
    currency: string,
  ): Promise<string> {
    const p = await this.store.insertLocalPayment({
      id: paymentIdFor(sessionId),
      reference: sessionId,
      account_id: accountId,
      amount_cents: amountCents,
      currency,
      refunded_cents: 0n,
      method: "checkout_page",
      created_at: this.clock.now(),
    });
    return p.id;
  }

  async charge(req: ChargeRequest): Promise<ChargeResult> {
    if (req.method.provider !== "local")
      throw TallyError.validation("payment_method_id", "is not a payment method of the local provider");
    const card = req.method.method_ref;
    if (!isLocalTestCard(card) || card !== "succeeds")
      return {
        status: "declined",
        code: isLocalTestCard(card) ? LOCAL_TEST_CARDS[card] : "card_declined",
        message: `the test card "${card}" declines every charge`,
      };
    const p = await this.store.insertLocalPayment({
      id: paymentIdFor(req.reference),
      reference: req.reference,
      account_id: req.account_id,
      amount_cents: req.amount_cents,
      currency: req.currency,
      refunded_cents: 0n,
      method: card,
      created_at: this.clock.now(),
    });
    return { status: "succeeded", payment_ref: p.id };
  }

  async refund(req: RefundRequest): Promise<string> {
    const payment = await this.store.getLocalPayment(req.payment_ref);
    if (!payment) throw TallyError.notFound("payment", req.payment_ref, "payment_ref");
    const id = await this.store.refundLocalPayment(
      payment.id,
      `lrf_${req.reference.replace(/^[a-z]+_/, "")}`,
      req.reference,
      req.amount_cents,
      this.clock.now(),
    );
    if (!id)
      throw new TallyError("validation_error", "the refund is more than what is left of the payment", {
        field: "amount",
      });
    return id;
  }
}

/** One local payment per reference, with an id derived from it. */
function paymentIdFor(reference: string): string {
  return `lpay_${reference.replace(/^[a-z]+_/, "")}`;
}
