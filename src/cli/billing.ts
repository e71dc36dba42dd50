import { adjust } from "../billing/adjustments.ts";
import { Plans, planToApi, type PlanInput } from "../billing/plans.ts";
import { statementToApi, statementToCsv, Statements } from "../billing/statements.ts";
import { Subscriptions, type ChangeTiming } from "../billing/subscriptions.ts";
import { parseCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import type { OveragePolicy } from "../ledger/types.ts";
import { subscriptionToApi } from "../billing/subscription-api.ts";

export interface BillingArgs {
  name?: string;
  allowance?: string;
  price?: string;
  currency?: string;
  overage?: string;
  "overage-rate"?: string;
  "overage-limit"?: string;
  tier?: string;
  "rollover-cap"?: string;
  plan?: string;
  anchor?: string;
  id?: string;
  timing?: string;
  start?: string;
  end?: string;
  format?: string;
  reason?: string;
}

type Out = (value: unknown) => void;

/** Runs a billing command; returns the exit code, or null when `command` is not a billing command. */
export async function runBilling(
  engine: Engine,
  command: string,
  sub: string | undefined,
  rest: string[],
  v: BillingArgs,
  out: Out,
): Promise<number | null> {
  const now = () => engine.clock.now();
  const subs = new Subscriptions(engine);
  switch (command) {
    case "plans": {
      const plans = new Plans(engine.store, now);
      if (sub === "create" && rest[0]) {
        if (!v.name || v.allowance === undefined) return fail("plans create ID --name N --allowance CREDITS");
        const input: PlanInput = {
          id: rest[0],
          name: v.name,
          monthly_allowance: v.allowance,
          ...(v.price !== undefined ? { price: v.price } : {}),
          ...(v.currency ? { currency: v.currency } : {}),
          ...(v.overage ? { overage_policy: v.overage as OveragePolicy } : {}),
          ...(v["overage-rate"] !== undefined ? { overage_rate: v["overage-rate"] } : {}),
          ...(v["overage-limit"] !== undefined ? { overage_limit: v["overage-limit"] } : {}),
          ...(v.tier ? { rate_limit_tier: v.tier } : {}),
          ...(v["rollover-cap"] !== undefined ? { rollover_cap: v["rollover-cap"] } : {}),
        };
        out(planToApi((await plans.create(input)).plan));
      } else if (sub === "list") out({ data: (await plans.list(true)).map(planToApi) });
      else if (sub === "show" && rest[0]) out(planToApi(await plans.get(rest[0])));
      else if (sub === "archive" && rest[0]) out(planToApi(await plans.archive(rest[0])));
      else return fail("plans create|list|show|archive");
      return 0;
    }
    case "subscriptions": {
      const show = (s: Parameters<typeof subscriptionToApi>[0]) => out(subscriptionToApi(s, now()));
      if (sub === "create" && rest[0]) {
        if (!v.plan) return fail("subscriptions create ACCOUNT_ID --plan PLAN_ID");
        const r = await subs.subscribe({
          account_id: rest[0],
          plan_id: v.plan,
          ...(v.anchor ? { anchor_at: time(v.anchor, "anchor") } : {}),
          ...(v.id ? { id: v.id } : {}),
        });
        show(r.subscription);
      } else if (sub === "show" && rest[0]) show(await subs.renew(rest[0]));
      else if (sub === "list") {
        const page = await subs.db.listSubscriptions({
          ...(rest[0] ? { account_id: rest[0] } : {}),
          limit: 1000,
        });
        out({ data: page.data.map((s) => subscriptionToApi(s, now())) });
      } else if (sub === "change" && rest[0]) {
        if (!v.plan) return fail("subscriptions change SUB_ID --plan PLAN_ID [--timing now|period_end]");
        const timing = (v.timing ?? "now") as ChangeTiming;
        if (timing !== "now" && timing !== "period_end") return fail("--timing takes now or period_end");
        show(await subs.change(rest[0], v.plan, timing));
      } else if (sub === "cancel" && rest[0]) show(await subs.cancel(rest[0]));
      else if (sub === "resume" && rest[0]) show(await subs.resume(rest[0]));
      else if (sub === "renew") out({ renewed: await subs.renewDue() });
      else return fail("subscriptions create|show|list|change|cancel|resume|renew");
      return 0;
    }
    case "statement": {
      if (!sub || !v.start) return fail("statement ACCOUNT_ID --start ISO [--end ISO] [--format json|csv]");
      const s = await new Statements(engine).forWindow(
        sub,
        time(v.start, "start"),
        v.end ? time(v.end, "end") : undefined,
      );
      if (v.format === "csv") process.stdout.write(statementToCsv(s));
      else out(statementToApi(s));
      return 0;
    }
    case "adjust": {
      const amount = rest[0];
      if (!sub || !amount || !v.reason) return fail("adjust ACCOUNT_ID AMOUNT --reason TEXT");
      const signed = amount.startsWith("-")
        ? -parseCredits(amount.slice(1), "amount")
        : parseCredits(amount, "amount");
      out(
        await adjust(engine, {
          ...(v.id ? { id: v.id } : {}),
          account_id: sub,
          amount: signed,
          reason: v.reason,
        }),
      );
      return 0;
    }
    default:
      return null;
  }
}

function fail(text: string): number {
  console.error(`usage: tally ${text}`);
  return 2;
}

function time(text: string, field: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw TallyError.validation(field, "must be an ISO 8601 time");
  return t;
}
