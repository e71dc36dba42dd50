import { ALERTS_MIGRATION_SQLITE } from "../alerts-migrations.ts";
import { AUTH_MIGRATION_SQLITE } from "../auth-migrations.ts";
import { EVENTS_MIGRATION_SQLITE } from "../events-migrations.ts";
import { IDEMPOTENCY_MIGRATION_SQLITE } from "../idempotency-migrations.ts";
import { BILLING_MIGRATION_SQLITE } from "../billing-migrations.ts";
import { PURCHASE_MIGRATION_SQLITE } from "../purchase-migrations.ts";
import { SESSIONS_MIGRATION_SQLITE } from "../../sessions/migrations.ts";
import { ACCOUNT_INDEX_MIGRATION_SQLITE, ACCOUNT_INDEX_STEPS_MIGRATION_SQLITE } from "./account-index.ts";
/** SQLite schema, versioned. Amounts are INTEGER micro-credits (64-bit); times are INTEGER epoch ms. */
export const SQLITE_MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "ledger",
    sql: `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  overage_policy TEXT NOT NULL CHECK (overage_policy IN ('block', 'allow')),
  overage_limit INTEGER CHECK (overage_limit >= 0),
  overage_balance INTEGER NOT NULL DEFAULT 0 CHECK (overage_balance >= 0),
  granted_total INTEGER NOT NULL DEFAULT 0 CHECK (granted_total >= 0),
  status TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  request TEXT NOT NULL
);
CREATE TABLE grants (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  priority INTEGER NOT NULL,
  effective_at INTEGER NOT NULL,
  expires_at INTEGER,
  created_at INTEGER NOT NULL,
  order_key TEXT NOT NULL,
  status TEXT NOT NULL,
  closed_at INTEGER,
  source TEXT,
  reference TEXT,
  metadata TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX grants_live ON grants (account_id) WHERE status = 'active' AND remaining > 0;
CREATE INDEX grants_due ON grants (expires_at) WHERE status = 'active' AND remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX grants_account ON grants (account_id, created_at);
CREATE TABLE holds (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount INTEGER NOT NULL CHECK (amount > 0),
  parts TEXT NOT NULL,
  status TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  closed_at INTEGER,
  captured_amount INTEGER NOT NULL DEFAULT 0,
  usage_id TEXT,
  metadata TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX holds_active ON holds (account_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'active';
CREATE TABLE usages (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  service TEXT NOT NULL,
  quantity TEXT,
  cost INTEGER NOT NULL CHECK (cost >= 0),
  overage INTEGER NOT NULL,
  overage_refunded INTEGER NOT NULL,
  refunded INTEGER NOT NULL CHECK (refunded >= 0 AND refunded <= cost),
  parts TEXT NOT NULL,
  sources TEXT NOT NULL,
  hold_id TEXT,
  occurred_at INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  txn_id TEXT NOT NULL
);
CREATE INDEX usages_account ON usages (account_id, seq);
CREATE TABLE refunds (
  id TEXT PRIMARY KEY,
  usage_id TEXT NOT NULL REFERENCES usages(id),
  account_id TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  reason TEXT,
  created_at INTEGER NOT NULL,
  txn_id TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX refunds_usage ON refunds (usage_id);
CREATE TABLE postings (
  seq INTEGER PRIMARY KEY,
  txn_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  ledger TEXT NOT NULL,
  amount INTEGER NOT NULL,
  kind TEXT NOT NULL,
  ref TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX postings_account ON postings (account_id, seq);
-- The journal is append-only.
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings BEGIN SELECT RAISE(ABORT, 'journal rows are immutable'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings BEGIN SELECT RAISE(ABORT, 'journal rows are immutable'); END;
`,
  },
  {
    version: 2,
    name: "settings",
    sql: `
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE checkout_sessions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  credits INTEGER NOT NULL CHECK (credits > 0),
  status TEXT NOT NULL,
  provider TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX checkout_sessions_account ON checkout_sessions (account_id, created_at);
`,
  },
  { version: 3, name: "customer_auth", sql: AUTH_MIGRATION_SQLITE },
  { version: 4, name: "idempotency", sql: IDEMPOTENCY_MIGRATION_SQLITE },
  { version: 5, name: "events", sql: EVENTS_MIGRATION_SQLITE },
  { version: 6, name: "billing", sql: BILLING_MIGRATION_SQLITE },
  { version: 7, name: "purchases", sql: PURCHASE_MIGRATION_SQLITE },
  { version: 8, name: "sessions", sql: SESSIONS_MIGRATION_SQLITE },
  { version: 9, name: "alerts_webhooks_budgets", sql: ALERTS_MIGRATION_SQLITE },
  { version: 10, name: "deferred_account_indexes", sql: ACCOUNT_INDEX_MIGRATION_SQLITE },
  { version: 11, name: "account_index_steps", sql: ACCOUNT_INDEX_STEPS_MIGRATION_SQLITE },
];
