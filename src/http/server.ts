import type { FastifyInstance } from "fastify";
import { Engine } from "../ledger/engine.ts";
import { openStore } from "../store/open.ts";
import { buildApp } from "./app.ts";
import { OperatorAuth } from "./auth.ts";
import { createEventServices } from "../events/services.ts";
import { RenewalScheduler } from "../billing/scheduler.ts";
import { Subscriptions } from "../billing/subscriptions.ts";

export interface ServeOptions {
  databaseUrl: string;
  port?: number;
  host?: string;
  /** How often the expiry sweep runs. */
  sweepIntervalMs?: number;
  /** How often a renewal pass runs (TALLY_RENEWAL_INTERVAL_MS, default 30 s). */
  renewalIntervalMs?: number;
  /** How often purchases are reconciled and auto-recharge rules checked. */
  billingIntervalMs?: number;
}

/** TALLY_SQLITE_WRITER: `thread` (default) or `inline`; anything else is a configuration error. */
function sqliteWriterSetting(value: string | undefined): "thread" | "inline" {
  if (value === undefined || value === "" || value === "thread") return "thread";
  if (value === "inline") return "inline";
  throw new Error(`TALLY_SQLITE_WRITER must be thread or inline, not ${JSON.stringify(value)}`);
}

export async function serve(opts: ServeOptions): Promise<FastifyInstance> {
  const store = await openStore(opts.databaseUrl);
  const engine = new Engine(store, { sqliteWriter: sqliteWriterSetting(process.env.TALLY_SQLITE_WRITER) });
  const { auth, printed } = await OperatorAuth.setup(store, process.env.TALLY_ADMIN_KEY);
  const subscriptions = new Subscriptions(engine);
  const events = createEventServices(engine);
  const app = await buildApp({ engine, operator: auth, subscriptions, events });
  if (printed) {
    // Shown once: only its hash is stored.
    process.stdout.write(
      `\n  Operator key (shown once, store it now): ${printed}\n  Use it as: Authorization: Bearer <key>\n\n`,
    );
  }
  const port = opts.port ?? Number(process.env.PORT ?? 8080);
  const host = opts.host ?? process.env.HOST ?? "0.0.0.0";

  // Expiry is also applied lazily by every command; the sweep writes off what nobody touches.
  const sweepEvery = opts.sweepIntervalMs ?? 10_000;
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    engine
      .sweep()
      .then((r) => {
        if (r.expired_grants + r.expired_holds > 0) app.log.info({ sweep: r }, "expiry sweep");
      })
      .catch((err: unknown) => app.log.error({ err }, "expiry sweep failed"))
      // Then sessions whose validity ran out: settled at their last reported usage, holds released.
      .then(() => app.sessions.sweep())
      .then((n) => {
        if (n > 0) app.log.info({ abandoned_sessions: n }, "session sweep");
      })
      .catch((err: unknown) => app.log.error({ err }, "session sweep failed"))
      .finally(() => (sweeping = false));
  }, sweepEvery);
  timer.unref();
  // Webhook delivery from the outbox and alert evaluation run in every server process (multi-process safe).
  events.dispatcher.start();
  events.alerts.start();

  // Renewals: one process at a time by a database lease; reads renew lazily anyway.
  const renewals = new RenewalScheduler(subscriptions, {
    intervalMs: opts.renewalIntervalMs ?? Number(process.env.TALLY_RENEWAL_INTERVAL_MS ?? 30_000),
    onPass: (n) => {
      if (n > 0) app.log.info({ renewed: n }, "renewal pass");
    },
    onError: (err) => app.log.error({ err }, "renewal pass failed"),
  });
  renewals.start();
  // Purchases: finish interrupted fulfilments, charges and refunds, expire checkouts, then auto-recharge
  // accounts below their threshold that no commit has triggered (the scheduler's share of the work).
  let billingBusy = false;
  const billingTimer = setInterval(() => {
    if (billingBusy) return;
    billingBusy = true;
    const { purchases, autoRecharge } = app.billing;
    purchases
      .reconcile()
      .then((r) => {
        if (r.errors.length > 0) app.log.warn({ errors: r.errors.slice(0, 20) }, "purchases left to retry");
        return autoRecharge.sweep();
      })
      .catch((err: unknown) => app.log.error({ err }, "purchases scheduler failed"))
      .finally(() => (billingBusy = false));
  }, opts.billingIntervalMs ?? 30_000);
  billingTimer.unref();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, "shutting down: finishing in-flight commits");
    clearInterval(timer);
    await Promise.all([events.dispatcher.stop(), events.alerts.stop()]);
    await renewals.stop().catch(() => {});
    clearInterval(billingTimer);
    await app.close();
    await engine.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));

  await app.listen({ port, host });
  app.log.info({ store: store.dialect, database: redact(opts.databaseUrl) }, "tally is running");
  return app;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}
