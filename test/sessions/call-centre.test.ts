/**
 * A simulated call centre over real HTTP on both stores: hundreds of concurrent calls of random length with
 * holds, outbound legs, clients that vanish, and accounts that run out of credits mid-call. The clock is
 * manual (one step = one second); every request of a step is sent at once. Each call's charge is computed
 * independently here (our own count of billable seconds and our own price) and must match to the
 * micro-credit; no account is overdrawn and no hold is left behind.
 */
import { beforeAll, expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { useServer } from "../http/harness.ts";

const iso = (t: number) => new Date(t).toISOString();

const SERVICES = {
  ai_voice: { unit: "second", price: 6, per: 60, increment: 6, minimum: 30, fee: 0.5 },
  "ai_voice.outbound": { unit: "second", price: 0.6, per: 60, increment: 60 },
  free_line: { unit: "second", price: 6, per: 60 },
};

/** Our own prices, micro-credits (written from the rate card's words, not from Tally's pricing code). */
function expectedPrice(service: string, direction: string, seconds: number): bigint {
  if (seconds === 0) return 0n;
  if (service === "free_line") return direction === "outbound" ? 0n : BigInt(seconds) * 100_000n;
  if (direction === "outbound") return BigInt(Math.ceil(seconds / 60)) * 600_000n; // 0.01/s per started minute
  const billed = Math.max(Math.ceil(seconds / 6) * 6, 30);
  return BigInt(billed) * 100_000n + 500_000n;
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Call {
  n: number;
  account: string;
  service: string;
  direction: "inbound" | "outbound";
  startAt: number;
  answerAt: number;
  /** Planned billable seconds (talk, excluding hold). */
  talk: number;
  /** Holds planned at a billable second, lasting some seconds. */
  plannedHolds: { atBillable: number; length: number }[];
  /** The client vanishes at this step (null: it stays to the end). */
  dropAt: number | null;
  // --- state
  id: string | null;
  rejected: boolean;
  billable: number;
  target: number;
  holds: { start: number; end: number | null }[];
  lastUpdate: number;
  lastReported: number;
  gotFinal: boolean;
  done: "ended" | "abandoned" | null;
  expected: bigint;
}

const STEP_MS = 1000;

describeEachStore("call centre simulation", (kind) => {
  const t = useServer(kind);
  beforeAll(async () => {
    expect((await t.op("PUT", "/v1/rate-card", { services: SERVICES })).status).toBe(201);
  });

  it(
    "300 calls: charges equal the independent calculation, no overdraft, no hold left",
    { timeout: 240_000 },
    async () => {
      const rand = rng(kind === "sqlite" ? 20261121 : 1121);
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
      const accounts: { id: string; initial: bigint }[] = [];
      for (let i = 0; i < 8; i++) {
        const credits = i < 5 ? 2000 : 40; // the last three run out mid-call
        const a = (await t.op("POST", "/v1/accounts", {})).body.id as string;
        await t.op("POST", `/v1/accounts/${a}/grants`, { kind: "purchase", amount: String(credits) });
        accounts.push({ id: a, initial: BigInt(credits) * 1_000_000n });
      }
      const T0 = t.clock.now();
      const at = (step: number) => T0 + step * STEP_MS;

      const calls: Call[] = [];
      for (let n = 0; n < 300; n++) {
        const startAt = int(0, 60);
        const talk = int(1, 180);
        const plannedHolds: Call["plannedHolds"] = [];
        if (rand() < 0.3 && talk > 10)
          plannedHolds.push({ atBillable: int(3, talk - 2), length: int(1, 40) });
        const r = rand();
        calls.push({
          n,
          account: accounts[int(0, accounts.length - 1)]!.id,
          service: rand() < 0.1 ? "free_line" : "ai_voice",
          direction: rand() < 0.2 ? "outbound" : "inbound",
          startAt,
          answerAt: startAt + int(0, 8),
          talk,
          plannedHolds,
          dropAt: r < 0.1 ? startAt + int(1, 60) : null,
          id: null,
          rejected: false,
          billable: 0,
          target: talk,
          holds: [],
          lastUpdate: startAt,
          lastReported: 0,
          gotFinal: false,
          done: null,
          expected: 0n,
        });
      }

      const onHold = (c: Call) => c.holds.length > 0 && c.holds[c.holds.length - 1]!.end === null;
      const answered = (c: Call, step: number) => step >= c.answerAt;

      const update = async (c: Call, step: number, body: Record<string, unknown>) => {
        const r = await t.op("POST", `/v1/sessions/${c.id}/update`, body);
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        // Tally's count of billable seconds equals ours.
        expect(r.body.used_seconds).toBe(c.billable);
        c.lastUpdate = step;
        c.lastReported = c.billable;
        if (r.body.final) {
          c.gotFinal = true;
          // Warned: hang up when the covered seconds are used.
          c.target = Math.min(c.target, c.billable + (r.body.seconds_left as number));
          c.plannedHolds = [];
        }
      };

      const end = async (c: Call, step: number) => {
        const holds = c.holds.map((h) => ({
          started_at: iso(at(h.start)),
          ended_at: iso(at(h.end ?? step)),
        }));
        const r = await t.op("POST", `/v1/sessions/${c.id}/end`, {
          ...(answered(c, step) ? { answered_at: iso(at(c.answerAt)) } : {}),
          ended_at: iso(at(step)),
          holds,
        });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        c.done = "ended";
        c.expected = expectedPrice(c.service, c.direction, c.billable);
        expect(r.body.billable_seconds).toBe(c.billable);
        expect(r.body.charged_seconds).toBe(c.billable);
      };

      const act = async (c: Call, step: number): Promise<void> => {
        if (c.rejected || c.done || (c.dropAt !== null && step >= c.dropAt)) return;
        if (step === c.startAt) {
          const r = await t.op("POST", "/v1/sessions", {
            account_id: c.account,
            service: c.service,
            direction: c.direction,
            grant_seconds: 30,
            validity_seconds: 30,
            debit_interval_seconds: 30,
            metadata: { call: c.n },
          });
          if (r.status === 402) {
            c.rejected = true;
            return;
          }
          expect(r.status, JSON.stringify(r.body)).toBe(201);
          c.id = r.body.id;
          if (r.body.final) {
            c.gotFinal = true;
            c.target = Math.min(c.target, r.body.granted_seconds as number);
          }
          if (c.answerAt === step) await update(c, step, { answered_at: iso(at(step)) });
          return;
        }
        if (step < c.startAt || !c.id) return;
        if (answered(c, step) && c.billable >= c.target) {
          if (onHold(c)) c.holds[c.holds.length - 1]!.end = step;
          return end(c, step);
        }
        if (onHold(c) && c.gotFinal) {
          // Told to wrap up while on hold: hang up now.
          c.holds[c.holds.length - 1]!.end = step;
          return end(c, step);
        }
        if (step === c.answerAt) return update(c, step, { answered_at: iso(at(step)) });
        const h = c.plannedHolds[0];
        if (answered(c, step) && !onHold(c) && h && c.billable >= h.atBillable) {
          c.holds.push({ start: step, end: null });
          return update(c, step, { hold_started_at: iso(at(step)) });
        }
        if (onHold(c) && h && step - c.holds[c.holds.length - 1]!.start >= h.length) {
          c.holds[c.holds.length - 1]!.end = step;
          c.plannedHolds.shift();
          return update(c, step, { hold_ended_at: iso(at(step)) });
        }
        if (step - c.lastUpdate >= 10) return update(c, step, {});
      };

      let step = 0;
      for (; step < 600; step++) {
        t.clock.set(at(step));
        await Promise.all(calls.map((c) => act(c, step)));
        // The server's sweep timer.
        await t.app.sessions.sweep();
        // One second passes: answered calls off hold accumulate a billable second.
        for (const c of calls)
          if (c.id && !c.done && !c.rejected && answered(c, step) && !onHold(c) && step >= c.answerAt)
            c.billable++;
        if (calls.every((c) => c.rejected || c.done || (c.dropAt !== null && step >= c.dropAt + 40))) break;
      }
      t.clock.set(at(step + 60));
      await t.app.sessions.sweep();

      // Dropped clients: settled at their last reported usage.
      for (const c of calls) {
        if (c.rejected || c.done || !c.id) continue;
        c.done = "abandoned";
        c.expected = expectedPrice(c.service, c.direction, c.lastReported);
      }

      let finals = 0;
      let cut = 0;
      for (const c of calls) {
        if (c.rejected || !c.id) continue;
        const s = (await t.op("GET", `/v1/sessions/${c.id}`)).body;
        expect(s.status, `call ${c.n}`).toBe(c.done);
        expect(
          BigInt(Math.round(Number(s.charged_amount) * 1e6)),
          `call ${c.n} ${c.service} ${c.direction}`,
        ).toBe(c.expected);
        if (c.gotFinal) finals++;
        if (c.target < c.talk) cut++;
      }
      // Most calls overlapped: hundreds were live at once.
      let peak = 0;
      for (let s = 0; s < step; s++)
        peak = Math.max(peak, calls.filter((c) => c.id && s >= c.startAt && s < c.startAt + c.talk).length);
      expect(peak).toBeGreaterThan(100);
      for (const a of accounts) {
        const spent = calls
          .filter((c) => c.account === a.id && !c.rejected && c.id)
          .reduce((sum, c) => sum + c.expected, 0n);
        const b = (await t.op("GET", `/v1/accounts/${a.id}/balance`)).body;
        expect(b.held, a.id).toBe("0");
        const total = BigInt(Math.round(Number(b.total) * 1e6));
        expect(total, a.id).toBe(a.initial - spent);
        expect(total >= 0n).toBe(true);
      }
      const audit = (await t.op("GET", "/v1/audit")).body;
      expect(audit.discrepancies).toEqual([]);
      // The simulation exercised what it claims to.
      expect(calls.filter((c) => c.done === "abandoned").length).toBeGreaterThan(5);
      expect(calls.filter((c) => c.rejected).length).toBeGreaterThan(0);
      expect(finals).toBeGreaterThan(3);
      expect(cut).toBeGreaterThan(3);
      expect(calls.filter((c) => c.holds.length > 0 && c.done === "ended").length).toBeGreaterThan(20);
    },
  );
});
