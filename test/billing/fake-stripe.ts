import { createServer, type IncomingMessage, type Server } from "node:http";

/** One API call the SDK made, as the fake server received it. */
export interface StripeCall {
  method: string;
  path: string;
  /** Form fields as Stripe encodes them: "line_items[0][price_data][unit_amount]" → "2500". */
  form: Record<string, string>;
  idempotency_key: string | null;
  authorization: string | null;
}

/**
 * A local HTTP server that answers the Stripe API calls Tally makes (Checkout Sessions, PaymentIntents,
 * Refunds) the way Stripe documents them, idempotency keys included, so the official SDK runs unchanged
 * against it with no network. Payment methods named pm_card_visa succeed; pm_card_chargeDeclined is declined.
 */
export class FakeStripe {
  readonly calls: StripeCall[] = [];
  private readonly byKey = new Map<string, { status: number; body: unknown }>();
  private server: Server | null = null;
  private n = 0;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(({ status, body }) => {
        res.writeHead(status, { "content-type": "application/json", "request-id": `req_fake_${++this.n}` });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((ok) => this.server!.listen(0, "127.0.0.1", ok));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }

  callsTo(path: string): StripeCall[] {
    return this.calls.filter((c) => c.path === path);
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    let raw = "";
    for await (const chunk of req) raw += String(chunk);
    const call: StripeCall = {
      method: req.method ?? "",
      path: (req.url ?? "").split("?")[0]!,
      form: Object.fromEntries(new URLSearchParams(raw)),
      idempotency_key: (req.headers["idempotency-key"] as string | undefined) ?? null,
      authorization: (req.headers.authorization as string | undefined) ?? null,
    };
    this.calls.push(call);
    if (call.authorization !== "Bearer sk_test_tally")
      return error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided");
    const key = call.idempotency_key ? `${call.path} ${call.idempotency_key}` : null;
    if (key && this.byKey.has(key)) return this.byKey.get(key)!;
    const answer = this.answer(call);
    if (key) this.byKey.set(key, answer);
    return answer;
  }

  private answer(c: StripeCall): { status: number; body: unknown } {
    const f = c.form;
    const id = (p: string) => `${p}_test_${String(++this.n).padStart(8, "0")}`;
    if (c.method === "POST" && c.path === "/v1/checkout/sessions") {
      const sid = id("cs");
      return {
        status: 200,
        body: {
          id: sid,
          object: "checkout.session",
          mode: f.mode,
          status: "open",
          payment_status: "unpaid",
          amount_total: Number(f["line_items[0][price_data][unit_amount]"]),
          currency: f["line_items[0][price_data][currency]"],
          client_reference_id: f.client_reference_id ?? null,
          metadata: {
            tally_session_id: f["metadata[tally_session_id]"],
            tally_account_id: f["metadata[tally_account_id]"],
          },
          success_url: f.success_url,
          cancel_url: f.cancel_url,
          expires_at: Number(f.expires_at),
          payment_intent: null,
          url: `https://checkout.stripe.test/c/pay/${sid}`,
        },
      };
    }
    if (c.method === "POST" && c.path === "/v1/payment_intents") {
      if (f.payment_method === "pm_card_chargeDeclined")
        return error(402, "card_error", "card_declined", "Your card was declined.", "generic_decline");
      return {
        status: 200,
        body: {
          id: id("pi"),
          object: "payment_intent",
          amount: Number(f.amount),
          currency: f.currency,
          customer: f.customer,
          payment_method: f.payment_method,
          status: "succeeded",
          metadata: { tally_purchase_id: f["metadata[tally_purchase_id]"] },
        },
      };
    }
    if (c.method === "GET" && c.path.startsWith("/v1/payment_intents/"))
      return {
        status: 200,
        body: {
          id: c.path.split("/").pop(),
          object: "payment_intent",
          status: "succeeded",
          customer: "cus_SavedAtCheckout",
          payment_method: "pm_card_visa",
        },
      };
    if (c.method === "POST" && c.path === "/v1/refunds")
      return {
        status: 200,
        body: {
          id: id("re"),
          object: "refund",
          amount: Number(f.amount),
          payment_intent: f.payment_intent,
          status: "succeeded",
        },
      };
    return error(
      404,
      "invalid_request_error",
      "resource_missing",
      `Unrecognized request URL (${c.method}: ${c.path})`,
    );
  }
}

function error(status: number, type: string, code: string, message: string, decline_code?: string) {
  return { status, body: { error: { type, code, message, ...(decline_code ? { decline_code } : {}) } } };
}
