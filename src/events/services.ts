/**
 * The services behind events, webhooks, alerts, budgets and analytics, built once per engine and shared by
 * the routes and the server's background loops (webhook dispatcher, alert evaluator).
 */
import { AlertService } from "../alerts/service.ts";
import { subscriptionPeriods } from "../analytics/periods.ts";
import { AnalyticsService, type PeriodResolver } from "../analytics/service.ts";
import { BudgetService } from "../budgets/service.ts";
import type { Engine } from "../ledger/engine.ts";
import { DeliveryLog, WebhookDispatcher, type DispatcherOptions } from "../webhooks/dispatcher.ts";
import { EndpointService } from "../webhooks/endpoints.ts";

export interface EventServices {
  endpoints: EndpointService;
  deliveries: DeliveryLog;
  dispatcher: WebhookDispatcher;
  alerts: AlertService;
  budgets: BudgetService;
  analytics: AnalyticsService;
}

export interface EventServiceOptions {
  /** Customer webhook URLs may point at private addresses (closed networks, tests). */
  allowPrivateCustomerUrls?: boolean;
  /** The billing period of an account (default: its subscription's current period, else the calendar month). */
  resolvePeriod?: PeriodResolver;
  dispatcher?: DispatcherOptions;
}

export function createEventServices(engine: Engine, opts: EventServiceOptions = {}): EventServices {
  const endpoints = new EndpointService(engine, { allowPrivateCustomerUrls: opts.allowPrivateCustomerUrls });
  const analytics = new AnalyticsService(engine, opts.resolvePeriod ?? subscriptionPeriods(engine.store));
  return {
    endpoints,
    deliveries: new DeliveryLog(engine),
    dispatcher: new WebhookDispatcher(engine, endpoints, opts.dispatcher),
    alerts: new AlertService(engine, analytics),
    budgets: new BudgetService(engine),
    analytics,
  };
}
