/** `tally plans|subscriptions|statement|adjust` against a real database of each kind. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachStore, freshDatabase, type TestDatabase } from "../support/stores.ts";

const run = promisify(execFile);
const TALLY = new URL("../../bin/tally.js", import.meta.url).pathname;

async function tally(
  url: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TALLY, "--database-url", url, ...args], {
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const json = (r: { stdout: string }) => JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describeEachStore("tally billing CLI", (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase(kind);
  });
  afterAll(async () => {
    await db.destroy();
  });

  it(
    "plans, a subscription, adjustments, a plan change and a statement that reconciles",
    { timeout: 180_000 },
    async () => {
      const plan = await tally(
        db.url,
        "plans",
        "create",
        "pro",
        "--name",
        "Pro",
        "--allowance",
        "1000",
        "--price",
        "29",
        "--overage",
        "allow",
        "--overage-rate",
        "0.01",
        "--json",
      );
      expect(plan.code, plan.stderr).toBe(0);
      expect(json(plan)).toMatchObject({
        id: "pro",
        monthly_allowance: "1000",
        price: "29.00",
        overage_rate: "0.01",
      });
      await tally(db.url, "plans", "create", "max", "--name", "Max", "--allowance", "5000", "--json");
      const bad = await tally(db.url, "plans", "create", "x", "--name", "X", "--allowance=-1");
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/validation_error: monthly_allowance/);

      const acct = json(await tally(db.url, "accounts", "create", "--json")).id as string;
      const sub = await tally(db.url, "subscriptions", "create", acct, "--plan", "pro", "--json");
      expect(sub.code, sub.stderr).toBe(0);
      const s = json(sub);
      expect(s).toMatchObject({ plan_id: "pro", status: "active", days_until_reset: expect.any(Number) });

      const add = await tally(db.url, "adjust", acct, "--reason", "goodwill", "--json", "--", "25");
      expect(json(add)).toMatchObject({ direction: "add", amount: "25", reason: "goodwill" });
      const rm = await tally(db.url, "adjust", acct, "--reason", "correction", "--json", "--", "-5");
      expect(json(rm)).toMatchObject({ direction: "remove", amount: "5" });
      expect((await tally(db.url, "adjust", acct, "10")).code).toBe(2); // no reason

      const changed = await tally(db.url, "subscriptions", "change", s.id, "--plan", "max", "--json");
      expect(json(changed)).toMatchObject({ plan_id: "max", term: 1 });
      expect(json(await tally(db.url, "balance", acct, "--json")).by_kind).toMatchObject({
        // The removal took 5 from the monthly supply first (burn-down order); 995 of it carried over.
        carryover: "995",
        subscription: "5000",
        adjustment: "25",
      });

      const statement = await tally(db.url, "statement", acct, "--start", s.period_start, "--json");
      expect(statement.code, statement.stderr).toBe(0);
      expect(json(statement)).toMatchObject({
        plan_id: "pro",
        granted_total: "1025",
        removed: "5",
        reconciles: true,
      });
      const csv = await tally(db.url, "statement", acct, "--start", s.period_start, "--format", "csv");
      expect(csv.stdout.split("\r\n")[0]).toBe("section,item,credits,count,amount,currency");
      expect(csv.stdout).toContain("granted,subscription,1000,,,");

      expect(json(await tally(db.url, "subscriptions", "cancel", s.id, "--json")).cancel_at_period_end).toBe(
        true,
      );
      expect(json(await tally(db.url, "subscriptions", "renew", "--json"))).toEqual({ renewed: 0 });
      expect(json(await tally(db.url, "subscriptions", "list", acct, "--json")).data).toHaveLength(1);
      expect((await tally(db.url, "audit", "--json")).code).toBe(0);
    },
  );
});
