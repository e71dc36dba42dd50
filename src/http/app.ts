import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyInstance } from "fastify";
import client from "prom-client";
import { registerDashboard } from "./static.ts";
import { customerPricingRoutes } from "./routes/customer-pricing.ts";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import type { OperatorAuth } from "./auth.ts";
import { errorHandler } from "./errors.ts";
import { newRequestId } from "./request-id.ts";
import { idempotency } from "./idempotency.ts";
import { accountRoutes } from "./routes/accounts.ts";
import { holdRoutes } from "./routes/holds.ts";
import { usageRoutes } from "./routes/usage.ts";
import { paygRoutes } from "./routes/payg.ts";
import { creditsRoutes } from "./routes/credits.ts";
import { operatorKeyRoutes } from "./routes/keys.ts";
import { customerKeyRoutes } from "./routes/customer-keys.ts";
import { CustomerAuth } from "./customer-auth.ts";
import { RateCards } from "../pricing/rate-cards.ts";
import { rateLimit, type RateLimitSettings } from "./rate-limit.ts";
import { createEventServices, type EventServices } from "../events/services.ts";
import { eventRoutes, eventStreamRoutes } from "./routes/events.ts";
import { customerWebhookRoutes, webhookRoutes } from "./routes/webhooks.ts";
import { alertRoutes, customerAlertRoutes } from "./routes/alerts.ts";
import { budgetRoutes } from "./routes/budgets.ts";
import { analyticsRoutes, customerAnalyticsRoutes } from "./routes/analytics.ts";
import { Plans } from "../billing/plans.ts";
import { Statements } from "../billing/statements.ts";
import { Subscriptions } from "../billing/subscriptions.ts";
import { planRoutes } from "./routes/plans.ts";
import { subscriptionRoutes } from "./routes/subscriptions.ts";
import { statementRoutes } from "./routes/statements.ts";
import { adjustmentRoutes } from "./routes/adjustments.ts";
import { lazyRenewal } from "./lazy-renewal.ts";
import { Purchases, purchasesOptionsFromEnv } from "../billing/purchases.ts";
import { AutoRecharge, subscriptionPeriodOf } from "../billing/auto-recharge.ts";
import { purchaseRoutes } from "./routes/purchases.ts";
import { customerPurchaseRoutes } from "./routes/customer-purchases.ts";
import { checkoutPageRoutes } from "./routes/checkout.ts";
import { stripeWebhookRoutes } from "./routes/stripe-webhook.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { customerStreamRoutes, operatorStreamRoutes } from "./routes/stream.ts";
import { SessionService } from "../sessions/service.ts";
import { sessionStoreFor } from "../sessions/store.ts";

export interface AppOptions {
  engine: Engine;
  operator: OperatorAuth;
  /** Customer credentials (API keys, users, tokens); set up from the store when not given. */
  customerAuth?: CustomerAuth;
  rateCards?: RateCards;
  logLevel?: string;
  /** Serve the dashboard (web/dist) at /; default true. */
  dashboard?: boolean;
  /** Largest accepted request body. */
  bodyLimitBytes?: number;
  /** Rate limits and their backend; unset fields come from the environment (TALLY_RATE_LIMIT, REDIS_URL). */
  rateLimit?: RateLimitSettings;
  /** Webhooks, alerts, budgets and analytics (built from the engine when not given). */
  events?: EventServices;
  /** Subscriptions and cycles (issue #4); set up from the engine when not given. */
  subscriptions?: Subscriptions;
  /** Purchases and their payment providers; set up from the environment (STRIPE_*, TALLY_PUBLIC_URL) when not given. */
  purchases?: Purchases;
  /** Live sessions; set up from the engine when not given. */
  sessions?: SessionService;
}

/** The HTTP app: operator API under /v1, health, metrics, OpenAPI 3.1 at /openapi.json and /docs. */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { engine, operator } = opts;
  const rateCards = opts.rateCards ?? new RateCards(engine.store, engine.clock);
  const customerAuth = opts.customerAuth ?? (await CustomerAuth.setup(engine.store, { clock: engine.clock }));
  const services = opts.events ?? createEventServices(engine);
  const subs = opts.subscriptions ?? new Subscriptions(engine);
  const purchases = opts.purchases ?? new Purchases(engine, purchasesOptionsFromEnv());
  // Auto-recharge checks every account a commit touched; the scheduler (server.ts) checks the rest.
  // "At most N per period" counts per subscription period, or per calendar month without a subscription.
  const autoRecharge = new AutoRecharge(engine, purchases, { periodOf: subscriptionPeriodOf(subs.db) });
  const sessions = opts.sessions ?? new SessionService(engine, rateCards, sessionStoreFor(engine.store));
  const app = Fastify({
    logger: { level: opts.logLevel ?? process.env.LOG_LEVEL ?? "info" },
    bodyLimit: opts.bodyLimitBytes ?? 1024 * 1024,
    genReqId: newRequestId,
    // Long path parameters reach the schemas, which say which field is too long.
    routerOptions: { maxParamLength: 2048 },
    // Errors the framework raises before routing (bad URL encoding) get the same error shape.
    frameworkErrors: (err, req, reply) => errorHandler(err, req, reply),
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate("sessions", sessions);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    errorHandler(
      new TallyError("not_found", `no route ${req.method} ${req.url.split("?")[0]}`, {}),
      req,
      reply,
    );
  });
  // Hooks on every request take a callback rather than returning a promise: one microtask less each.
  app.addHook("onSend", (req, reply, payload, done) => {
    void reply.header("x-request-id", req.id);
    done(null, payload);
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Tally", version: "0.1.0", description: "Credits ledger for AI and voice APIs" },
      components: {
        securitySchemes: {
          operatorKey: { type: "http", scheme: "bearer", description: "the operator key (/v1)" },
          customerBearer: {
            type: "http",
            scheme: "bearer",
            description: "a customer API key (tly_live_…) or a JWT from POST /api/v1/auth/token (/api/v1)",
          },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  await app.register(rateLimit, { ...opts.rateLimit, store: engine.store, operator, customerAuth });

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({
    name: "tally_http_requests_total",
    help: "HTTP requests by route and status",
    labelNames: ["route", "status"],
    registers: [registry],
  });
  const batches = new client.Gauge({
    name: "tally_commit_batches_total",
    help: "Group-commit transactions since start",
    registers: [registry],
    collect() {
      this.set(engine.committer.stats.batches);
    },
  });
  void batches;
  app.addHook("onResponse", (req, reply, done) => {
    requests.inc({ route: req.routeOptions.url ?? "unknown", status: String(reply.statusCode) });
    done();
  });

  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    try {
      await engine.store.getAccount("acct_readiness_probe");
      return { status: "ready", store: engine.store.dialect };
    } catch (err) {
      reply.code(503);
      return { status: "unavailable", error: String(err) };
    }
  });
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    reply.header("content-type", registry.contentType);
    return registry.metrics();
  });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  // The dashboard at / (only its own files: no API path is shadowed).
  if (opts.dashboard !== false) await registerDashboard(app);
  await app.register(idempotency, { store: engine.store, clock: engine.clock });
  // The customer's credit calculator (the dashboard's, and any client's).
  await app.register(customerPricingRoutes, { engine, rateCards, customerAuth, prefix: "/api/v1" });

  await app.register(
    async (v1) => {
      v1.addHook("onRequest", (req, _reply, done) => {
        operator.check(req);
        done();
      });
      v1.addHook("preHandler", lazyRenewal(subs));
      await v1.register(accountRoutes, { engine });
      await v1.register(holdRoutes, { engine });
      await v1.register(paygRoutes, { engine });
      await v1.register(usageRoutes, { engine, rateCards });
      await v1.register(operatorKeyRoutes, { engine, customerAuth });
      await v1.register(eventRoutes, { engine });
      await v1.register(eventStreamRoutes, { engine });
      await v1.register(webhookRoutes, { engine, services });
      await v1.register(alertRoutes, { engine, services });
      await v1.register(budgetRoutes, { engine, services });
      await v1.register(analyticsRoutes, { services });
      await v1.register(planRoutes, { plans: new Plans(engine.store, () => engine.clock.now()) });
      await v1.register(subscriptionRoutes, { subs });
      await v1.register(statementRoutes, { statements: new Statements(engine) });
      await v1.register(adjustmentRoutes, { engine });
      await v1.register(purchaseRoutes, { engine, purchases, autoRecharge });
      await v1.register(sessionRoutes, { sessions });
      await v1.register(operatorStreamRoutes, { engine, sessions });
    },
    { prefix: "/v1" },
  );
  // The customer API: /auth/token needs no credential; every other route checks its own scope.
  await app.register(customerKeyRoutes, { engine, customerAuth, prefix: "/api/v1" });
  await app.register(creditsRoutes, { engine, rateCards, customerAuth, subs, purchases, prefix: "/api/v1" });
  await app.register(customerPurchaseRoutes, { purchases, autoRecharge, customerAuth, prefix: "/api/v1" });
  await app.register(checkoutPageRoutes, { purchases });
  await app.register(stripeWebhookRoutes, { purchases });
  autoRecharge.onError((err) => app.log.error({ err }, "auto-recharge check failed"));
  const detach = autoRecharge.attach();
  app.addHook("onClose", async () => {
    detach();
    await autoRecharge.idle();
  });
  app.decorate("billing", { purchases, autoRecharge });
  await app.register(customerStreamRoutes, { engine, sessions, customerAuth, prefix: "/api/v1" });
  await app.register(customerWebhookRoutes, { engine, services, customerAuth, prefix: "/api/v1" });
  await app.register(customerAlertRoutes, { services, customerAuth, prefix: "/api/v1" });
  await app.register(customerAnalyticsRoutes, { services, customerAuth, prefix: "/api/v1" });
  return app;
}
