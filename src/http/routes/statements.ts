import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { statementToApi, statementToCsv, type Statements } from "../../billing/statements.ts";
import { TallyError } from "../../domain/errors.ts";
import { Id, Time, parseTime } from "../schemas.ts";

export interface StatementRouteDeps {
  statements: Statements;
}

/** Operator: cycle statements (JSON or CSV), reconciled with the journal. */
export const statementRoutes: FastifyPluginAsyncTypebox<StatementRouteDeps> = async (app, { statements }) => {
  app.get(
    "/accounts/:id/cycles",
    {
      schema: {
        tags: ["statements"],
        summary: "An account's billing cycles, newest first (each has a statement)",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
      },
    },
    async (req) => {
      const periods = await statements.periods(req.params.id, req.query.limit ?? 100);
      return {
        data: periods.map((p) => ({
          subscription_id: p.subscription_id,
          plan_id: p.plan_id,
          period_start: new Date(p.start_at).toISOString(),
          period_end: new Date(p.end_at).toISOString(),
          grant_id: p.grant_id,
        })),
      };
    },
  );

  app.get(
    "/accounts/:id/statement",
    {
      schema: {
        tags: ["statements"],
        summary:
          "The statement of the cycle starting at period_start (default: the latest cycle), or of [period_start, end): opening, grants by kind, usage by service, expirations, overage and its charge, refunds, closing",
        params: Type.Object({ id: Id }),
        querystring: Type.Object({
          period_start: Type.Optional(Time),
          end: Type.Optional(Time),
          format: Type.Optional(Type.Union([Type.Literal("json"), Type.Literal("csv")])),
        }),
      },
    },
    async (req, reply) => {
      // Without period_start: the latest cycle (the current one, up to now).
      let start = parseTime(req.query.period_start, "period_start");
      if (start === undefined) {
        await statements.engine.getAccount(req.params.id);
        const [latest] = await statements.periods(req.params.id, 1);
        if (!latest)
          throw TallyError.validation("period_start", "is required: the account has no billing cycle");
        start = latest.start_at;
      }
      const end = parseTime(req.query.end, "end");
      if (end !== undefined && end - start > 400 * 86_400_000)
        throw TallyError.validation("end", "must be within 400 days of period_start");
      const s = await statements.forWindow(req.params.id, start, end);
      if (req.query.format === "csv") {
        void reply
          .header("content-type", "text/csv; charset=utf-8")
          .header(
            "content-disposition",
            `attachment; filename="statement-${s.account_id}-${new Date(s.period_start).toISOString().slice(0, 10)}.csv"`,
          );
        return statementToCsv(s);
      }
      return statementToApi(s);
    },
  );
};
