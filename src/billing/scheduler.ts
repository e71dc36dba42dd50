import { randomBytes } from "node:crypto";
import type { Subscriptions } from "./subscriptions.ts";

export interface RenewalSchedulerOptions {
  /** How often a pass runs. Default 30 s. */
  intervalMs?: number;
  /** How long a held lease lasts without renewal (wall clock). Default 60 s. */
  leaseMs?: number;
  /** Subscriptions per pass. Default 500. */
  batch?: number;
  onError?: (err: unknown) => void;
  onPass?: (renewed: number) => void;
}

export const RENEWAL_LEASE = "renewals";

/**
 * Runs renewal passes on every server process; a lease row in the database lets one process at a time do
 * them (the holder renews its lease each pass; if it dies, another takes over when the lease expires).
 * Correctness never depends on the lease: renewals are exactly-once anyway (subscription locks, derived
 * grant ids); the lease only keeps processes from doing the same work twice.
 */
export class RenewalScheduler {
  readonly holder = `sched_${randomBytes(8).toString("hex")}`;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private readonly intervalMs: number;
  private readonly leaseMs: number;
  private readonly batch: number;

  constructor(
    private readonly subs: Subscriptions,
    private readonly opts: RenewalSchedulerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 30_000;
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.batch = opts.batch ?? 500;
  }

  /** One pass if this process holds (or takes) the lease; returns how many subscriptions it renewed. */
  async tick(): Promise<number> {
    if (this.running) return this.running;
    this.running = (async () => {
      const now = Date.now();
      if (!(await this.subs.db.acquireLease(RENEWAL_LEASE, this.holder, now + this.leaseMs, now))) return 0;
      let total = 0;
      // Rounds of `batch` until nothing is due (bounded: a pass never runs away).
      for (let round = 0; round < 100; round++) {
        const n = await this.subs.renewDue(this.batch);
        total += n;
        if (n < this.batch) break;
      }
      return total;
    })().finally(() => (this.running = null));
    return this.running;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.tick().then(
        (n) => this.opts.onPass?.(n),
        (e: unknown) => this.opts.onError?.(e),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer, waits for a pass in progress and gives the lease up. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => 0);
    await this.subs.db.releaseLease(RENEWAL_LEASE, this.holder);
  }
}
