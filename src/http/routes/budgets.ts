import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { parseCredits } from "../../domain/amount.ts";
import type { BudgetStatus } from "../../budgets/service.ts";
import type { EventServices } from "../../events/services.ts";
import type { Engine } from "../../ledger/engine.ts";
import { Credits, Id } from "../schemas.ts";
import { toApi } from "../serialize.ts";

export function budgetToApi(b: BudgetStatus): unknown {
  const { cycle_start, cycle_end, ...rest } = b;
  return toApi({ ...rest, cycle_start_at: cycle_start, cycle_end_at: cycle_end });
}

/** Operator: spend caps per calendar month on an account or one of its API keys. */
export const budgetRoutes: FastifyPluginAsyncTypebox<{ engine: Engine; services: EventServices }> = async (
  app,
  { services },
) => {
  const { budgets } = services;
  const Params = Type.Object({ id: Id });
  const OneParams = Type.Object({ id: Id, budget_id: Id });

  app.get(
    "/accounts/:id/budgets",
    {
      schema: { tags: ["budgets"], summary: "An account's budgets with this cycle's spend", params: Params },
    },
    async (req) => ({ data: (await budgets.list(req.params.id)).map(budgetToApi) }),
  );
  app.post(
    "/accounts/:id/budgets",
    {
      schema: {
        tags: ["budgets"],
        summary: "Cap the account's (or one API key's) spend per calendar month",
        params: Params,
        body: Type.Object(
          { limit: Credits, api_key_id: Type.Optional(Type.Union([Id, Type.Null()])) },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = await budgets.create({
        account_id: req.params.id,
        api_key_id: req.body.api_key_id ?? null,
        limit: parseCredits(req.body.limit, "limit"),
        created_by: "operator",
      });
      reply.code(201);
      return budgetToApi(b);
    },
  );
  app.get(
    "/accounts/:id/budgets/:budget_id",
    { schema: { tags: ["budgets"], summary: "One budget", params: OneParams } },
    async (req) => budgetToApi(await budgets.require(req.params.id, req.params.budget_id)),
  );
  app.patch(
    "/accounts/:id/budgets/:budget_id",
    {
      schema: {
        tags: ["budgets"],
        summary: "Change a budget's limit",
        params: OneParams,
        body: Type.Object({ limit: Credits }, { additionalProperties: false }),
      },
    },
    async (req) =>
      budgetToApi(
        await budgets.update(req.params.id, req.params.budget_id, parseCredits(req.body.limit, "limit")),
      ),
  );
  app.delete(
    "/accounts/:id/budgets/:budget_id",
    { schema: { tags: ["budgets"], summary: "Remove a budget", params: OneParams } },
    async (req, reply) => {
      await budgets.remove(req.params.id, req.params.budget_id);
      reply.code(204);
    },
  );
};
