/**
 * Several processes renew the same subscriptions at once on one database (each with a scheduler holding a
 * database lease and lazy renewals on reads): every period is granted exactly once, with exact dates, the
 * rollover computed identically everywhere, one subscription.renewed event per period and a clean audit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { allowanceGrantId, rolloverGrantId } from "../../src/billing/subscriptions.ts";
import { periodStart } from "../../src/domain/cycles.ts";
import { cr, HOUR, MINUTE, newAccount, withFreshEngine } from "../engine/harness.ts";
import { describeEachStore } from "../support/stores.ts";
import { billing, grantsOf, plan } from "./support.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RENEWER = fileURLToPath(new URL("../support/renewer.ts", import.meta.url));
const PROCESSES = 3;
const ACCOUNTS = 6;
const PERIODS = 12;

class Renewer {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  private waiters: (() => void)[] = [];

  constructor(url: string, accounts: string[]) {
    this.child = spawn(process.execPath, ["--import", "tsx", RENEWER], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url, RENEWER_ACCOUNTS: JSON.stringify(accounts) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stdin!.on("error", () => {});
    this.child.stderr!.on("data", (d: Buffer) => {
      if (this.stderr.length < 20_000) this.stderr += d.toString();
    });
    createInterface({ input: this.child.stdout! }).on("line", (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.once("close", () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async waitFor(line: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.includes(line)) {
      const bad = this.lines.find((l) => l.startsWith("err "));
      if (bad) throw new Error(`renewer: ${bad}\n${this.stderr}`);
      if (this.child.exitCode !== null) throw new Error(`renewer exited before "${line}":\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${line}":\n${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    this.child.stdin!.write(line + "\n");
  }
}

const live: Renewer[] = [];
afterAll(() => {
  for (const r of live) if (r.child.exitCode === null) r.child.kill("SIGKILL");
});

/** Usage in period m of account a (credits): varies so the rollover differs by account and period. */
const usageOf = (m: number, a: number) => (m * 37 + a * 23) % 130;

describeEachStore("renewals across processes", (kind) => {
  it(`${PROCESSES} processes racing over ${PERIODS} renewals of ${ACCOUNTS} subscriptions grant each period exactly once`, async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const anchor = Date.UTC(2031, 0, 31, 12);
      c.clock.set(anchor);
      await plan(c, { id: "roll", monthly_allowance: "100", rollover_cap: "40" });
      const accounts: string[] = [];
      const subIds: string[] = [];
      for (let i = 0; i < ACCOUNTS; i++) {
        const a = await newAccount(c.engine);
        accounts.push(a);
        subIds.push((await c.subs.subscribe({ account_id: a, plan_id: "roll" })).subscription.id);
      }
      const renewers = Array.from({ length: PROCESSES }, () => new Renewer(e.db.url, accounts));
      live.push(...renewers);
      await Promise.all(renewers.map((r) => r.waitFor("ready")));

      const expectedCarry: bigint[][] = accounts.map(() => [0n]);
      for (let m = 1; m <= PERIODS; m++) {
        // Usage late in period m-1, by the parent (another process again).
        c.clock.set(periodStart(anchor, m) - HOUR);
        for (const [i, a] of accounts.entries()) {
          const carry = expectedCarry[i]![m - 1]!;
          const available = cr(100) + carry;
          const want = cr(usageOf(m - 1, i));
          const used = want < available ? want : available;
          if (used > 0n)
            await c.engine.debit({ id: `u-${a}-${m}`, account_id: a, amount: used, service: "x" });
          const unused = available - used;
          expectedCarry[i]!.push(unused < cr(40) ? unused : cr(40));
        }
        const at = periodStart(anchor, m) + (m % 4) * MINUTE;
        for (const r of renewers) r.send(`step ${m} ${at}`);
        await Promise.all(renewers.map((r) => r.waitFor(`done ${m}`)));
      }
      for (const r of renewers) r.send("quit");
      await Promise.all(renewers.map((r) => new Promise((res) => r.child.once("close", res))));
      for (const r of renewers) expect(r.child.exitCode, r.stderr).toBe(0);

      c.clock.set(periodStart(anchor, PERIODS) + HOUR);
      for (const [i, a] of accounts.entries()) {
        // By period (creation order is per process clock, so not the test's order).
        const subsGrants = (await grantsOf(c.engine, a, "subscription")).sort(
          (x, y) => x.effective_at - y.effective_at,
        );
        expect(subsGrants.map((g) => g.id)).toEqual(
          Array.from({ length: PERIODS + 1 }, (_, m) => allowanceGrantId(subIds[i]!, 0, m)),
        );
        subsGrants.forEach((g, m) => {
          expect([g.amount, g.effective_at, g.expires_at]).toEqual([
            cr(100),
            periodStart(anchor, m),
            periodStart(anchor, m + 1),
          ]);
        });
        const carry = await grantsOf(c.engine, a, "carryover");
        const expected = expectedCarry[i]!.slice(1).flatMap((amount, k) =>
          amount > 0n ? [[rolloverGrantId(subIds[i]!, 0, k + 1), amount]] : [],
        );
        expect(carry.map((g) => [g.id, g.amount])).toEqual(expected);
        const renewed = await c.engine.listEvents({
          account_id: a,
          types: ["subscription.renewed"],
          limit: 100,
        });
        expect(renewed.map((ev) => ev.data.period_index)).toEqual(
          Array.from({ length: PERIODS + 1 }, (_, m) => m),
        );
      }
      const audit = await c.engine.audit();
      expect(audit.discrepancies).toEqual([]);
    });
  }, 180_000);
});
