import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { loadPayg, parseMoneyCents, paygInfo, savePayg } from "../../billing/payg.ts";
import { parseCredits } from "../../domain/amount.ts";
import type { RouteDeps } from "./deps.ts";

/** Operator: pay-as-you-go settings (what the customer's /credits/payg/info shows). */
export const paygRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  app.get("/payg", { schema: { tags: ["purchases"], summary: "Pay-as-you-go settings" } }, async () =>
    paygInfo(await loadPayg(engine.store)),
  );
  app.put(
    "/payg",
    {
      schema: {
        tags: ["purchases"],
        summary: "Change pay-as-you-go settings",
        body: Type.Object(
          {
            credits_per_dollar: Type.Union([Type.Number(), Type.String({ maxLength: 32 })]),
            min_amount_usd: Type.Union([Type.Number(), Type.String({ maxLength: 20 })]),
            max_amount_usd: Type.Union([Type.Number(), Type.String({ maxLength: 20 })]),
            currency: Type.String({ minLength: 3, maxLength: 3 }),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const b = req.body;
      const settings = {
        credits_per_dollar: parseCredits(b.credits_per_dollar, "credits_per_dollar"),
        min_amount_cents: parseMoneyCents(b.min_amount_usd, "min_amount_usd"),
        max_amount_cents: parseMoneyCents(b.max_amount_usd, "max_amount_usd"),
        currency: b.currency,
      };
      await savePayg(engine.store, settings);
      return paygInfo(settings);
    },
  );
};
