import { parseCredits } from "../domain/amount.ts";
import type { Engine } from "../ledger/engine.ts";
import { AutoRecharge } from "../billing/auto-recharge.ts";
import { parseMoneyCents } from "../billing/payg.ts";
import { createPack } from "../billing/purchases-catalog.ts";
import { Purchases, purchasesOptionsFromEnv } from "../billing/purchases.ts";
import { packJson, purchaseJson } from "../http/routes/purchases-json.ts";

export interface PurchaseCliValues {
  limit?: string;
  cursor?: string;
  reason?: string;
  currency?: string;
  "expires-days"?: string;
}

/**
 * `tally packs …`, `tally purchases …`, `tally auto-recharge sweep`: the operator's purchase tasks on the
 * database directly. Providers come from the environment (STRIPE_SECRET_KEY, …), as for `tally serve`.
 * Returns what to print, or a usage line (string) when the arguments do not fit.
 */
export async function purchasesCommand(
  engine: Engine,
  command: string,
  sub: string | undefined,
  rest: string[],
  values: PurchaseCliValues,
): Promise<unknown> {
  const purchases = new Purchases(engine, purchasesOptionsFromEnv());
  const now = engine.clock.now();
  if (command === "packs") {
    if (sub === "list") return (await purchases.store.listPacks(false, 200)).map(packJson);
    if (sub === "create" && rest.length === 3) {
      const [name, credits, price] = rest as [string, string, string];
      const days = values["expires-days"];
      const pack = await createPack(
        purchases.store,
        {
          name,
          credits: parseCredits(credits, "credits"),
          price_cents: parseMoneyCents(price, "price"),
          currency: values.currency ?? "USD",
          expires_after_days: days === undefined ? null : Number(days),
        },
        now,
      );
      return packJson(pack);
    }
    return "packs list | packs create NAME CREDITS PRICE [--currency USD] [--expires-days N]";
  }
  if (command === "purchases") {
    if (sub === "list") {
      const page = await purchases.store.listPurchases(
        { ...(rest[0] ? { account_id: rest[0] } : {}), ...(values.cursor ? { cursor: values.cursor } : {}) },
        Math.min(Math.max(Number(values.limit ?? 100) || 100, 1), 1000),
      );
      return { data: page.data.map(purchaseJson), next_cursor: page.next_cursor };
    }
    if (sub === "show" && rest[0]) return purchaseJson(await purchases.getPurchase(rest[0]));
    if (sub === "refund" && rest[0])
      return purchaseJson(await purchases.refund(rest[0], values.reason ?? null));
    if (sub === "reconcile") return purchases.reconcile();
    return "purchases list [ACCOUNT_ID] | purchases show ID | purchases refund ID [--reason R] | purchases reconcile";
  }
  if (command === "auto-recharge" && sub === "sweep") return new AutoRecharge(engine, purchases).sweep();
  return "auto-recharge sweep";
}
