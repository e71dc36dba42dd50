import Fastify, { type FastifyInstance } from "fastify";
import { Engine } from "../ledger/engine.ts";
import { openStore } from "../store/open.ts";

export interface ServeOptions {
  databaseUrl: string;
  port?: number;
  host?: string;
  /** How often the expiry sweep runs. */
  sweepIntervalMs?: number;
}

/** The HTTP app. For now: health and readiness; the operator and customer APIs build on this (issue #3). */
export function buildApp(engine: Engine): FastifyInstance {
  const app = Fastify({
    logger: { level: process.env.LOG_LEVEL ?? "info" },
    bodyLimit: 1024 * 1024,
    genReqId: () => `req_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`,
  });
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    try {
      await engine.store.getAccount("acct_readiness_probe");
      return { status: "ready", store: engine.store.dialect };
    } catch (err) {
      reply.code(503);
      return { status: "unavailable", error: String(err) };
    }
  });
  return app;
}

export async function serve(opts: ServeOptions): Promise<FastifyInstance> {
  const store = await openStore(opts.databaseUrl);
  const engine = new Engine(store);
  const app = buildApp(engine);
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
      .finally(() => (sweeping = false));
  }, sweepEvery);
  timer.unref();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, "shutting down: finishing in-flight commits");
    clearInterval(timer);
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
