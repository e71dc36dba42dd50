import { ALERTS_MIGRATION_POSTGRES } from "../alerts-migrations.ts";
import { AUTH_MIGRATION_POSTGRES } from "../auth-migrations.ts";
import { EVENTS_MIGRATION_POSTGRES } from "../events-migrations.ts";
import { IDEMPOTENCY_MIGRATION_POSTGRES } from "../idempotency-migrations.ts";
import { BILLING_MIGRATION_POSTGRES } from "../billing-migrations.ts";
import { PURCHASE_MIGRATION_POSTGRES } from "../purchase-migrations.ts";
import { SESSIONS_MIGRATION_POSTGRES } from "../../sessions/migrations.ts";
/** PostgreSQL schema, versioned. Amounts are BIGINT micro-credits; times are BIGINT epoch ms. */
export const POSTGRES_MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "ledger",
    sql: `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  overage_policy TEXT NOT NULL CHECK (overage_policy IN ('block', 'allow')),
  overage_limit BIGINT CHECK (overage_limit >= 0),
  overage_balance BIGINT NOT NULL DEFAULT 0 CHECK (overage_balance >= 0),
  granted_total BIGINT NOT NULL DEFAULT 0 CHECK (granted_total >= 0),
  status TEXT NOT NULL,
  metadata JSONB NOT NULL,
  created_at BIGINT NOT NULL,
  request TEXT NOT NULL
);
CREATE TABLE grants (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount > 0),
  remaining BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  priority INTEGER NOT NULL,
  effective_at BIGINT NOT NULL,
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  order_key TEXT NOT NULL,
  status TEXT NOT NULL,
  closed_at BIGINT,
  source TEXT,
  reference TEXT,
  metadata JSONB NOT NULL,
  request TEXT NOT NULL
) WITH (fillfactor = 50);
-- No index mentions remaining: a debit's UPDATE of remaining is then a HOT update (no index writes),
-- and fillfactor leaves room on the page for it.
CREATE INDEX grants_live ON grants (account_id) WHERE status = 'active';
CREATE INDEX grants_due ON grants (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
CREATE INDEX grants_account ON grants (account_id, created_at);
CREATE TABLE holds (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount BIGINT NOT NULL CHECK (amount > 0),
  parts TEXT NOT NULL,
  status TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  closed_at BIGINT,
  captured_amount BIGINT NOT NULL DEFAULT 0,
  usage_id TEXT,
  metadata JSONB NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX holds_active ON holds (account_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'active';
CREATE TABLE usages (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  service TEXT NOT NULL,
  quantity TEXT,
  cost BIGINT NOT NULL CHECK (cost >= 0),
  overage BIGINT NOT NULL,
  overage_refunded BIGINT NOT NULL,
  refunded BIGINT NOT NULL CHECK (refunded >= 0 AND refunded <= cost),
  parts TEXT NOT NULL,
  sources TEXT NOT NULL,
  hold_id TEXT,
  occurred_at BIGINT NOT NULL,
  recorded_at BIGINT NOT NULL,
  metadata JSONB NOT NULL,
  txn_id TEXT NOT NULL
);
CREATE INDEX usages_account ON usages (account_id, seq);
CREATE TABLE refunds (
  id TEXT PRIMARY KEY,
  usage_id TEXT NOT NULL REFERENCES usages(id),
  account_id TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount > 0),
  reason TEXT,
  created_at BIGINT NOT NULL,
  txn_id TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX refunds_usage ON refunds (usage_id);
CREATE TABLE postings (
  seq BIGSERIAL PRIMARY KEY,
  txn_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  ledger TEXT NOT NULL,
  amount BIGINT NOT NULL,
  kind TEXT NOT NULL,
  ref TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE INDEX postings_account ON postings (account_id, seq);
-- The journal is append-only.
CREATE FUNCTION postings_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'journal rows are immutable'; END $$;
CREATE TRIGGER postings_no_change BEFORE UPDATE OR DELETE ON postings
  FOR EACH ROW EXECUTE FUNCTION postings_immutable();
`,
  },
  {
    version: 2,
    name: "settings",
    sql: `
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE checkout_sessions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  credits BIGINT NOT NULL CHECK (credits > 0),
  status TEXT NOT NULL,
  provider TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_account ON checkout_sessions (account_id, created_at);
`,
  },
  { version: 3, name: "customer_auth", sql: AUTH_MIGRATION_POSTGRES },
  { version: 4, name: "idempotency", sql: IDEMPOTENCY_MIGRATION_POSTGRES },
  { version: 5, name: "events", sql: EVENTS_MIGRATION_POSTGRES },
  { version: 6, name: "billing", sql: BILLING_MIGRATION_POSTGRES },
  { version: 7, name: "purchases", sql: PURCHASE_MIGRATION_POSTGRES },
  { version: 8, name: "sessions", sql: SESSIONS_MIGRATION_POSTGRES },
  { version: 9, name: "alerts_webhooks_budgets", sql: ALERTS_MIGRATION_POSTGRES },
  // SQLite's per-account indexes moved off its commit path (sqlite/account-index.ts); PostgreSQL keeps
  // its indexes. The version exists so both dialects list the same versions.
  { version: 10, name: "deferred_account_indexes", sql: "SELECT 1" },
  { version: 11, name: "account_index_steps", sql: "SELECT 1" },
];
