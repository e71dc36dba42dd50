import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { TallyError } from "../../domain/errors.ts";
import { UnknownServiceError, priceUsage, pricedToJSON, rateCardToJSON } from "../../domain/pricing.ts";
import type { Engine } from "../../ledger/engine.ts";
import type { RateCards } from "../../pricing/rate-cards.ts";
import { customerRoute, type CustomerAuth } from "../customer-auth.ts";
import { Metadata as MetadataSchema } from "../schemas.ts";

export interface CustomerPricingDeps {
  engine: Engine;
  rateCards: RateCards;
  customerAuth: CustomerAuth;
}

const Quantity = Type.Union([Type.String({ maxLength: 40 }), Type.Number()]);

/**
 * The customer's credit calculator: the rate card in force and a priced estimate, so a customer sees the
 * exact cost of a call (units, increments, minimums, fees, modifiers) before making it. Records nothing.
 */
export const customerPricingRoutes: FastifyPluginAsyncTypebox<CustomerPricingDeps> = async (
  app,
  { engine, rateCards, customerAuth },
) => {
  app.get(
    "/credits/rate-card",
    {
      ...customerRoute(customerAuth, "read"),
      schema: { tags: ["credits"], summary: "The rate card in force now (what each service costs)" },
    },
    async () => {
      const json = rateCardToJSON(await rateCards.at(engine.clock.now(), "now"));
      return { ...json, effective_at: new Date(json.effective_at).toISOString() };
    },
  );

  app.post(
    "/credits/estimate",
    {
      ...customerRoute(customerAuth, "read"),
      schema: {
        tags: ["credits"],
        summary: "Price a hypothetical call in credits without recording anything (the credit calculator)",
        body: Type.Object(
          {
            service: Type.String({ minLength: 1, maxLength: 64 }),
            quantity: Type.Optional(Type.Union([Quantity, Type.Null()])),
            quantities: Type.Optional(
              Type.Union([Type.Record(Type.String({ maxLength: 64 }), Quantity), Type.Null()]),
            ),
            metadata: Type.Optional(MetadataSchema),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const b = req.body;
      const card = await rateCards.at(engine.clock.now(), "now");
      try {
        return pricedToJSON(
          priceUsage(card, {
            service: b.service,
            quantity: b.quantity,
            quantities: b.quantities,
            metadata: b.metadata,
          }),
        );
      } catch (err) {
        // An unknown service is a fault of the request (400 naming the field), not a missing resource.
        if (err instanceof UnknownServiceError) throw TallyError.validation("service", err.message);
        throw err;
      }
    },
  );
};
