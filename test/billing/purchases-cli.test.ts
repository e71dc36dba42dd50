import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Purchases } from "../../src/billing/purchases.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { freshDatabase, type TestDatabase } from "../support/stores.ts";

const run = promisify(execFile);
const TALLY = new URL("../../bin/tally.js", import.meta.url).pathname;

async function tally(url: string, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [TALLY, "--database-url", url, ...args], {
      timeout: 30_000,
      env: {
        ...process.env,
        STRIPE_SECRET_KEY: "",
        STRIPE_WEBHOOK_SECRET: "",
        TALLY_PAYMENT_PROVIDER: "local",
      },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("tally packs / purchases [sqlite]", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase("sqlite");
  });
  afterAll(() => db.destroy());

  it("creates and lists packs, lists, shows and refunds purchases", async () => {
    const pack = JSON.parse(
      (await tally(db.url, "packs", "create", "Starter", "1000", "9.99", "--expires-days", "90", "--json"))
        .stdout,
    );
    expect(pack).toMatchObject({ name: "Starter", credits: "1000", price_usd: 9.99, expires_after_days: 90 });
    const listed = JSON.parse((await tally(db.url, "packs", "list", "--json")).stdout);
    expect(listed.map((p: { id: string }) => p.id)).toEqual([pack.id]);
    const bad = await tally(db.url, "packs", "create", "Broken", "0", "1");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/validation_error: credits must be greater than zero/);

    // A purchase made through the service, as the server would make it.
    const store = await db.open();
    const engine = new Engine(store);
    const acct = (await engine.createAccount()).account.id;
    const purchases = new Purchases(engine, { provider: "local" });
    const s = await purchases.createCheckout(acct, { pack_id: pack.id });
    const { purchase } = await purchases.payLocal(s.id, new URL(s.url!).searchParams.get("token")!);
    await engine.close();

    const list = JSON.parse((await tally(db.url, "purchases", "list", acct, "--json")).stdout);
    expect(list.data.map((p: { id: string }) => p.id)).toEqual([purchase.id]);
    const shown = JSON.parse((await tally(db.url, "purchases", "show", purchase.id, "--json")).stdout);
    expect(shown).toMatchObject({ status: "paid", credits: "1000", amount_usd: 9.99 });
    const refunded = JSON.parse(
      (await tally(db.url, "purchases", "refund", purchase.id, "--reason", "test", "--json")).stdout,
    );
    expect(refunded).toMatchObject({ status: "refunded", refunded_usd: 9.99, refunded_credits: "1000" });
    expect(JSON.parse((await tally(db.url, "balance", acct, "--json")).stdout).available).toBe("0");
    expect((await tally(db.url, "purchases", "reconcile", "--json")).code).toBe(0);
    expect((await tally(db.url, "auto-recharge", "sweep", "--json")).code).toBe(0);
    expect((await tally(db.url, "purchases", "frobnicate")).code).toBe(2);
  }, 240_000); // ten CLI processes: slow on a loaded machine
});
