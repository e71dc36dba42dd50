import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { adjust, listAdjustments, type Adjustment } from "../../billing/adjustments.ts";
import { loadSignupGrant, saveSignupGrant } from "../../billing/signup.ts";
import { formatCredits, parseCredits } from "../../domain/amount.ts";
import { TallyError } from "../../domain/errors.ts";
import { Credits, Id, Time, parseTime } from "../schemas.ts";
import type { RouteDeps } from "./deps.ts";

function adjustmentToApi(a: Adjustment) {
  return {
    id: a.id,
    account_id: a.account_id,
    direction: a.direction,
    amount: formatCredits(a.amount),
    reason: a.reason,
    grant_id: a.grant_id,
    usage_id: a.usage_id,
    created_at: new Date(a.created_at).toISOString(),
  };
}

/** A signed amount of credits: "-12.5" removes, "12.5" adds. */
function parseSigned(v: string | number, field: string): bigint {
  const text = typeof v === "number" ? String(v) : v.trim();
  if (text.startsWith("-")) return -parseCredits(text.slice(1), field);
  return parseCredits(text.startsWith("+") ? text.slice(1) : text, field);
}

/** Operator: adjustments (add or remove credits, with a reason) and the signup grant setting. */
export const adjustmentRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  app.post(
    "/accounts/:id/adjustments",
    {
      schema: {
        tags: ["adjustments"],
        summary: "Add (positive amount) or remove (negative amount) credits, with a reason",
        params: Type.Object({ id: Id }),
        body: Type.Object(
          {
            id: Type.Optional(Id),
            amount: Credits,
            reason: Type.String({ minLength: 1, maxLength: 1024 }),
            expires_at: Type.Optional(Type.Union([Time, Type.Null()])),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const expiresAt = b.expires_at === null ? null : parseTime(b.expires_at, "expires_at");
      const a = await adjust(engine, {
        ...(b.id ? { id: b.id } : {}),
        account_id: req.params.id,
        amount: parseSigned(b.amount, "amount"),
        reason: b.reason,
        ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
      });
      reply.code(a.replay ? 200 : 201);
      return { ...adjustmentToApi(a), replay: a.replay };
    },
  );

  app.get(
    "/accounts/:id/adjustments",
    {
      schema: {
        tags: ["adjustments"],
        summary: "An account's adjustments, newest first",
        params: Type.Object({ id: Id }),
      },
    },
    async (req) => ({ data: (await listAdjustments(engine, req.params.id)).map(adjustmentToApi) }),
  );

  const signupOut = (s: { amount: bigint; expires_in_days: number | null } | null) => ({
    amount: formatCredits(s?.amount ?? 0n),
    expires_in_days: s?.expires_in_days ?? null,
    enabled: (s?.amount ?? 0n) > 0n,
  });

  app.get(
    "/settings/signup-grant",
    { schema: { tags: ["adjustments"], summary: "The one-time promotional grant for new accounts" } },
    async () => signupOut(await loadSignupGrant(engine.store)),
  );

  app.put(
    "/settings/signup-grant",
    {
      schema: {
        tags: ["adjustments"],
        summary: "Set the signup grant (amount 0 turns it off); it applies to accounts created from now on",
        body: Type.Object(
          {
            amount: Credits,
            expires_in_days: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const amount = parseCredits(req.body.amount, "amount", { allowZero: true });
      if (amount < 0n) throw TallyError.validation("amount", "must not be negative");
      return signupOut(
        await saveSignupGrant(
          engine.store,
          { amount, expires_in_days: req.body.expires_in_days },
          engine.clock.now(),
        ),
      );
    },
  );
};
