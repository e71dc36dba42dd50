/**
 * Migration version 9 (`alerts_webhooks_budgets`): hourly usage rollup, budgets and their per-cycle spend,
 * alert rules with their crossing state, webhook endpoints, deliveries and the attempt log. Times are
 * epoch ms; amounts micro-credits. One text per dialect (INTEGER vs BIGINT, REAL vs DOUBLE PRECISION).
 */
function schema(big: string, real: string, clustered: string): string {
  return `
CREATE TABLE usage_hourly (
  account_id TEXT NOT NULL,
  hour ${big} NOT NULL,
  service TEXT NOT NULL,
  credits ${big} NOT NULL,
  refunded ${big} NOT NULL,
  events ${big} NOT NULL,
  quantity ${real} NOT NULL,
  PRIMARY KEY (account_id, hour, service)
)${clustered};
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
CREATE TABLE budgets (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  api_key_id TEXT,
  limit_amount ${big} NOT NULL CHECK (limit_amount > 0),
  created_by TEXT NOT NULL,
  created_at ${big} NOT NULL,
  updated_at ${big} NOT NULL
);
CREATE INDEX budgets_account ON budgets (account_id, id);
CREATE TABLE budget_spend (
  budget_id TEXT NOT NULL REFERENCES budgets(id) ON DELETE CASCADE,
  cycle_start ${big} NOT NULL,
  spent ${big} NOT NULL,
  PRIMARY KEY (budget_id, cycle_start)
);
CREATE TABLE alert_rules (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL,
  condition TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at ${big} NOT NULL,
  state TEXT NOT NULL,
  state_changed_at ${big} NOT NULL,
  crossings ${big} NOT NULL DEFAULT 0
);
CREATE INDEX alert_rules_account ON alert_rules (account_id, id);
CREATE TABLE webhook_endpoints (
  id TEXT PRIMARY KEY,
  account_id TEXT,
  url TEXT NOT NULL,
  secret TEXT NOT NULL,
  event_types TEXT NOT NULL,
  description TEXT,
  status TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at ${big} NOT NULL,
  disabled_at ${big}
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY,
  endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_seq ${big} NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  account_id TEXT,
  order_key TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  schedule_offset INTEGER NOT NULL DEFAULT 0,
  next_attempt_at ${big} NOT NULL,
  lease_until ${big} NOT NULL DEFAULT 0,
  last_status_code INTEGER,
  last_error TEXT,
  created_at ${big} NOT NULL,
  finished_at ${big},
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, order_key, event_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE TABLE webhook_attempts (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  at ${big} NOT NULL,
  status_code INTEGER,
  error TEXT,
  duration_ms INTEGER NOT NULL,
  PRIMARY KEY (delivery_id, attempt)
);
`;
}

// SQLite keeps the rollup clustered by its key: a year of one account is one contiguous range.
export const ALERTS_MIGRATION_SQLITE = schema("INTEGER", "REAL", " WITHOUT ROWID");
export const ALERTS_MIGRATION_POSTGRES = schema("BIGINT", "DOUBLE PRECISION", "");
