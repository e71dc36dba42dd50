/**
 * Webhook delivery from the events outbox. Each tick:
 *  1. fan-out: events after the shared cursor (settings `webhooks.cursor`) become one delivery row per
 *     matching endpoint (UNIQUE (endpoint, event): a second process fanning out the same events adds nothing);
 *  2. delivery: the head of each (endpoint, account) queue that is due is claimed with a conditional update
 *     (a lease), POSTed with Standard Webhooks headers, and its outcome written under the same lease.
 * A delivery waits while an earlier one to the same endpoint for the same account is pending, so each
 * endpoint sees an account's events in order. Failures retry on the schedule (>= 24 h); when a delivery
 * gives up, its endpoint is disabled and `webhook_endpoint.disabled` is emitted.
 */
import { Webhook } from "standardwebhooks";
import { newId } from "../domain/ids.ts";
import { int, intOrNull, sqlFor, strOrNull, type Row, type Sql } from "../events/sql.ts";
import type { EventRecord } from "../events/types.ts";
import type { Engine } from "../ledger/engine.ts";
import { endpointWants, type EndpointService, type EndpointWithSecret } from "./endpoints.ts";
import { nextAttemptAt } from "./schedule.ts";

export const CURSOR_KEY = "webhooks.cursor";
const FANOUT_PAGE = 500;
const DELIVERY_PAGE = 64;
const LEASE_MS = 60_000;
const MAX_ERROR_LENGTH = 500;

export type DeliveryStatus = "pending" | "succeeded" | "failed";

export interface DeliveryRecord {
  id: string;
  endpoint_id: string;
  event_seq: number;
  event_id: string;
  event_type: string;
  account_id: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  finished_at: number | null;
}

export interface AttemptRecord {
  attempt: number;
  at: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export function rowToDelivery(r: Row): DeliveryRecord {
  return {
    id: String(r.id),
    endpoint_id: String(r.endpoint_id),
    event_seq: int(r.event_seq),
    event_id: String(r.event_id),
    event_type: String(r.event_type),
    account_id: strOrNull(r.account_id),
    status: String(r.status) as DeliveryStatus,
    attempts: int(r.attempts),
    next_attempt_at: int(r.next_attempt_at),
    last_status_code: intOrNull(r.last_status_code),
    last_error: strOrNull(r.last_error),
    created_at: int(r.created_at),
    finished_at: intOrNull(r.finished_at),
  };
}

/** The body every endpoint receives: Standard Webhooks' type/timestamp/data, plus the event id and account. */
export function payloadOf(e: EventRecord): string {
  return JSON.stringify({
    id: e.id,
    type: e.type,
    timestamp: new Date(e.created_at).toISOString(),
    account_id: e.account_id,
    data: e.data,
  });
}

export interface DispatcherOptions {
  /** Per-attempt timeout. */
  timeoutMs?: number;
  /** Deliveries sent at once per tick. */
  concurrency?: number;
  random?: () => number;
}

export class WebhookDispatcher {
  private readonly sql: Sql;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private again = false;
  private unsubscribe: (() => void) | null = null;
  /** The cursor row exists (it is never deleted). */
  private cursorExists = false;

  constructor(
    private readonly engine: Engine,
    private readonly endpoints: EndpointService,
    private readonly opts: DispatcherOptions = {},
  ) {
    this.sql = sqlFor(engine.store);
  }

  /** Ticks every `intervalMs`, and soon after each commit of this process. */
  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.kick(), intervalMs);
    this.timer.unref();
    this.unsubscribe = this.engine.onCommit((c) => {
      if (c.events.length > 0) void this.kick();
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.running;
  }

  /** One tick at a time per process; a kick during a tick runs one more after it. */
  private kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.tick();
        } while (this.again);
      } catch {
        // A store hiccup: the next tick tries again (nothing is lost: rows and leases are durable).
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** Fan out new events, then deliver what is due. Returns the number of attempts made. */
  async tick(): Promise<number> {
    await this.fanOut();
    // Each round sends the head of every queue; the next round sends what the successes unblocked.
    let total = 0;
    for (let round = 0; round < 50; round++) {
      const n = await this.deliverDue();
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  async cursor(): Promise<number> {
    const v = await this.engine.store.getSetting(CURSOR_KEY);
    return v === null ? 0 : Number(v);
  }

  async fanOut(): Promise<number> {
    // Once per process: the row is never deleted, and a write every second would be a commit every second.
    if (!this.cursorExists) {
      await this.engine.store.putSettingIfAbsent(CURSOR_KEY, "0");
      this.cursorExists = true;
    }
    let made = 0;
    for (let round = 0; round < 100; round++) {
      const after = await this.cursor();
      const events = await this.engine.store.listEvents({ after_seq: after, limit: FANOUT_PAGE });
      if (events.length === 0) break;
      const endpoints = await this.endpoints.listEnabled();
      const now = this.engine.clock.now();
      for (const e of events)
        for (const ep of endpoints) {
          // An endpoint hears what happened after it was created.
          if (e.created_at < ep.created_at || !endpointWants(ep, e.type, e.account_id)) continue;
          made += await this.sql.run(
            `INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, event_id, event_type, account_id, order_key,
               status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)
             ON CONFLICT (endpoint_id, event_id) DO NOTHING`,
            [newId("dlv", now), ep.id, e.seq, e.id, e.type, e.account_id, e.account_id ?? "", now, now],
          );
        }
      const last = events[events.length - 1]!.seq;
      // Only forward: a slower process never moves the cursor back.
      const cast = this.sql.dialect === "postgres" ? "CAST(value AS BIGINT)" : "CAST(value AS INTEGER)";
      await this.sql.run(`UPDATE settings SET value = ?, updated_at = ? WHERE key = ? AND ${cast} < ?`, [
        String(last),
        now,
        CURSOR_KEY,
        last,
      ]);
      if (events.length < FANOUT_PAGE) break;
    }
    return made;
  }

  /** The due heads of every (endpoint, account) queue, claimed and sent. */
  async deliverDue(): Promise<number> {
    const now = this.engine.clock.now();
    const rows = await this.sql.all(
      `SELECT d.* FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND d.lease_until < ? AND e.status = 'enabled'
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.status = 'pending'
           AND p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key AND p.event_seq < d.event_seq)
       ORDER BY d.next_attempt_at, d.event_seq LIMIT ?`,
      [now, now, DELIVERY_PAGE],
    );
    const claimed: { row: Row; lease: number }[] = [];
    for (const r of rows) {
      const lease = now + LEASE_MS;
      const won = await this.sql.run(
        `UPDATE webhook_deliveries SET lease_until = ? WHERE id = ? AND status = 'pending' AND lease_until < ?
           AND next_attempt_at <= ?`,
        [lease, r.id, now, now],
      );
      if (won !== 1) continue;
      // Read again under the lease: another process may have attempted it since the SELECT.
      const fresh = await this.sql.one("SELECT * FROM webhook_deliveries WHERE id = ? AND lease_until = ?", [
        r.id,
        lease,
      ]);
      if (fresh) claimed.push({ row: fresh, lease });
    }
    const limit = this.opts.concurrency ?? 16;
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const c = claimed[next++]!;
        await this.attempt(rowToDelivery(c.row), int(c.row.schedule_offset), c.lease);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, claimed.length) }, worker));
    return claimed.length;
  }

  private async attempt(d: DeliveryRecord, scheduleOffset: number, lease: number): Promise<void> {
    const ep = await this.endpoints.getWithSecret(d.endpoint_id);
    const [event] = await this.engine.store.listEvents({ after_seq: d.event_seq - 1, limit: 1 });
    if (!ep || !event || event.id !== d.event_id) {
      await this.finish(
        d,
        lease,
        "failed",
        null,
        "event or endpoint no longer exists",
        this.engine.clock.now(),
      );
      return;
    }
    const started = Date.now();
    const at = this.engine.clock.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = await send(ep, event, at, this.opts.timeoutMs ?? 10_000);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    const duration = Date.now() - started;
    const attemptNo = d.attempts + 1;
    await this.sql.run(
      `INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (delivery_id, attempt) DO NOTHING`,
      [d.id, attemptNo, at, status, error?.slice(0, MAX_ERROR_LENGTH) ?? null, duration],
    );
    if (error === null) {
      await this.finish(d, lease, "succeeded", status, null, at);
      return;
    }
    const retryAt = nextAttemptAt(attemptNo - scheduleOffset, at, (this.opts.random ?? Math.random)());
    if (retryAt !== null) {
      await this.sql.run(
        `UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?, lease_until = 0, last_status_code = ?,
           last_error = ? WHERE id = ? AND lease_until = ?`,
        [attemptNo, retryAt, status, error.slice(0, MAX_ERROR_LENGTH), d.id, lease],
      );
      return;
    }
    await this.finish(d, lease, "failed", status, error, at);
    // Gave up after the whole schedule: the endpoint keeps failing, so it is disabled (once).
    if (await this.endpoints.disable(ep.id, at))
      await this.engine.publish([
        {
          type: "webhook_endpoint.disabled",
          account_id: ep.account_id,
          data: {
            endpoint_id: ep.id,
            url: ep.url,
            reason: "deliveries failed for the whole retry schedule",
            last_delivery_id: d.id,
            last_error: error.slice(0, MAX_ERROR_LENGTH),
          },
        },
      ]);
  }

  private async finish(
    d: DeliveryRecord,
    lease: number,
    status: "succeeded" | "failed",
    code: number | null,
    error: string | null,
    at: number,
  ): Promise<void> {
    await this.sql.run(
      `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, lease_until = 0, last_status_code = ?,
         last_error = ?, finished_at = ? WHERE id = ? AND lease_until = ?`,
      [status, code, error?.slice(0, MAX_ERROR_LENGTH) ?? null, at, d.id, lease],
    );
  }
}

/** One signed POST; resolves to the HTTP status. Redirects are not followed (a 3xx is a failure). */
async function send(
  ep: EndpointWithSecret,
  event: EventRecord,
  at: number,
  timeoutMs: number,
): Promise<number> {
  const body = payloadOf(event);
  const signature = new Webhook(ep.secret).sign(event.id, new Date(at), body);
  const res = await fetch(ep.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "Tally-Webhooks/1",
      "webhook-id": event.id,
      "webhook-timestamp": String(Math.floor(at / 1000)),
      "webhook-signature": signature,
    },
    body,
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
  // Drain (bounded) so the connection is reused; the body itself is not kept.
  await res.body?.cancel().catch(() => {});
  return res.status;
}

/** Deliveries and their attempt log, as the routes show them. */
export class DeliveryLog {
  private readonly sql: Sql;
  constructor(engine: Engine) {
    this.sql = sqlFor(engine.store);
  }

  async list(
    endpointId: string,
    q: { status?: DeliveryStatus; after?: string; limit: number },
  ): Promise<{ data: DeliveryRecord[]; next_cursor: string | null }> {
    const where = ["endpoint_id = ?"];
    const args: unknown[] = [endpointId];
    if (q.status) {
      where.push("status = ?");
      args.push(q.status);
    }
    if (q.after) {
      where.push("id > ?");
      args.push(q.after);
    }
    args.push(q.limit + 1);
    const rows = await this.sql.all(
      `SELECT * FROM webhook_deliveries WHERE ${where.join(" AND ")} ORDER BY id LIMIT ?`,
      args,
    );
    const data = rows.slice(0, q.limit).map(rowToDelivery);
    return { data, next_cursor: rows.length > q.limit ? data[data.length - 1]!.id : null };
  }

  async get(endpointId: string, id: string): Promise<(DeliveryRecord & { log: AttemptRecord[] }) | null> {
    const r = await this.sql.one("SELECT * FROM webhook_deliveries WHERE id = ? AND endpoint_id = ?", [
      id,
      endpointId,
    ]);
    if (!r) return null;
    const log = (
      await this.sql.all("SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt", [id])
    ).map((a) => ({
      attempt: int(a.attempt),
      at: int(a.at),
      status_code: intOrNull(a.status_code),
      error: strOrNull(a.error),
      duration_ms: int(a.duration_ms),
    }));
    return { ...rowToDelivery(r), log };
  }

  /** Sends the delivery again now, with a fresh retry schedule; false if it is already pending. */
  async redeliver(endpointId: string, id: string, now: number): Promise<boolean> {
    return (
      (await this.sql.run(
        `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, lease_until = 0, finished_at = NULL,
           schedule_offset = attempts WHERE id = ? AND endpoint_id = ? AND status <> 'pending'`,
        [now, id, endpointId],
      )) === 1
    );
  }
}
