import type { FastifyPluginAsync } from "fastify";
import { TallyError } from "../../domain/errors.ts";
import type { Purchases } from "../../billing/purchases.ts";

/**
 * POST /webhooks/stripe: Stripe's event deliveries. The signature (Stripe-Signature, the endpoint's whsec_
 * secret) is verified by the SDK over the raw body, so this plugin keeps bodies as bytes. A paid Checkout
 * Session is fulfilled exactly once however many times (or how concurrently) Stripe delivers it; events
 * Tally does not use are acknowledged and ignored. Any failure answers non-2xx, so Stripe retries.
 */
export const stripeWebhookRoutes: FastifyPluginAsync<{ purchases: Purchases }> = async (
  app,
  { purchases },
) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: 512 * 1024 }, (_req, body, done) =>
    done(null, body),
  );

  app.post("/webhooks/stripe", { schema: { hide: true } }, async (req) => {
    const stripe = purchases.stripe;
    if (!stripe) throw new TallyError("not_found", "the Stripe provider is not configured", {});
    if (!Buffer.isBuffer(req.body))
      throw TallyError.validation("body", "must be the event as Stripe sent it");
    const sig = req.headers["stripe-signature"];
    const notice = stripe.parseWebhook(req.body, typeof sig === "string" ? sig : undefined);
    const r = await purchases.handleStripe(notice);
    req.log.info(
      { stripe_event: notice.event_id, type: notice.type, purchase: r.purchase?.id, replay: r.replay },
      "stripe webhook",
    );
    return {
      received: true,
      ...(r.purchase ? { purchase_id: r.purchase.id, replay: r.replay } : { ignored: r.ignored }),
    };
  });
};
