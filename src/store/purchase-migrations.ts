/**
 * Purchases (migration version 7, `purchases`): what a checkout session needs beyond the seed's record
 * (provider reference, checkout page secret, pack, payment), paid purchases, credit packs, saved payment
 * methods, auto-recharge rules with their state, and the local provider's payments. Money is integer cents,
 * credits are micro-credits, times are epoch ms, as everywhere else.
 */
function migration(int: "INTEGER" | "BIGINT"): string {
  return `
ALTER TABLE checkout_sessions ADD COLUMN pack_id TEXT;
ALTER TABLE checkout_sessions ADD COLUMN credits_ttl_ms ${int};
ALTER TABLE checkout_sessions ADD COLUMN provider_ref TEXT;
ALTER TABLE checkout_sessions ADD COLUMN url TEXT;
ALTER TABLE checkout_sessions ADD COLUMN secret_sha256 TEXT;
ALTER TABLE checkout_sessions ADD COLUMN paid_at ${int};
ALTER TABLE checkout_sessions ADD COLUMN payment_ref TEXT;
ALTER TABLE checkout_sessions ADD COLUMN closed_at ${int};
ALTER TABLE checkout_sessions ADD COLUMN save_method INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX checkout_sessions_provider_ref ON checkout_sessions (provider, provider_ref);
CREATE INDEX checkout_sessions_paid ON checkout_sessions (paid_at) WHERE status = 'paid';
CREATE INDEX checkout_sessions_open ON checkout_sessions (expires_at) WHERE status = 'open';
CREATE TABLE purchases (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  source TEXT NOT NULL CHECK (source IN ('checkout', 'auto_recharge')),
  checkout_session_id TEXT UNIQUE,
  pack_id TEXT,
  amount_cents ${int} NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  credits ${int} NOT NULL CHECK (credits > 0),
  credits_expire_at ${int},
  grant_id TEXT NOT NULL UNIQUE,
  provider TEXT NOT NULL,
  payment_method_id TEXT,
  payment_ref TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'refunding', 'refunded')),
  failure_reason TEXT,
  refunded_cents ${int} NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
  refunded_credits ${int} NOT NULL DEFAULT 0 CHECK (refunded_credits >= 0),
  refund_ref TEXT,
  refund_reason TEXT,
  created_at ${int} NOT NULL,
  paid_at ${int},
  refunded_at ${int},
  updated_at ${int} NOT NULL
);
CREATE INDEX purchases_account ON purchases (account_id, id);
CREATE INDEX purchases_pending ON purchases (updated_at) WHERE status IN ('pending', 'refunding');
CREATE TABLE credit_packs (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT,
  credits ${int} NOT NULL CHECK (credits > 0),
  price_cents ${int} NOT NULL CHECK (price_cents > 0),
  currency TEXT NOT NULL,
  expires_after_days INTEGER CHECK (expires_after_days > 0),
  active INTEGER NOT NULL,
  created_at ${int} NOT NULL,
  updated_at ${int} NOT NULL
);
CREATE TABLE payment_methods (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  provider TEXT NOT NULL,
  label TEXT NOT NULL,
  customer_ref TEXT,
  method_ref TEXT NOT NULL,
  created_at ${int} NOT NULL,
  removed_at ${int}
);
CREATE INDEX payment_methods_account ON payment_methods (account_id, id);
CREATE UNIQUE INDEX payment_methods_unique ON payment_methods (account_id, provider, method_ref) WHERE removed_at IS NULL;
CREATE TABLE auto_recharge (
  account_id TEXT PRIMARY KEY REFERENCES accounts(id),
  enabled INTEGER NOT NULL,
  threshold ${int} NOT NULL CHECK (threshold > 0),
  pack_id TEXT,
  amount_cents ${int},
  payment_method_id TEXT NOT NULL,
  max_per_period INTEGER NOT NULL CHECK (max_per_period > 0),
  cooldown_ms ${int} NOT NULL CHECK (cooldown_ms >= 0),
  decline_backoff_ms ${int} NOT NULL CHECK (decline_backoff_ms > 0),
  period_key TEXT NOT NULL DEFAULT '',
  count_in_period INTEGER NOT NULL DEFAULT 0,
  next_attempt_at ${int} NOT NULL DEFAULT 0,
  lease_until ${int} NOT NULL DEFAULT 0,
  consecutive_declines INTEGER NOT NULL DEFAULT 0,
  last_attempt_at ${int},
  last_success_at ${int},
  last_failure_at ${int},
  last_failure_reason TEXT,
  created_at ${int} NOT NULL,
  updated_at ${int} NOT NULL,
  CHECK ((pack_id IS NULL) <> (amount_cents IS NULL))
);
CREATE INDEX auto_recharge_enabled ON auto_recharge (account_id) WHERE enabled = 1;
CREATE TABLE local_payments (
  id TEXT PRIMARY KEY,
  reference TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL,
  amount_cents ${int} NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  refunded_cents ${int} NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
  method TEXT NOT NULL,
  created_at ${int} NOT NULL
);
CREATE TABLE local_refunds (
  id TEXT PRIMARY KEY,
  payment_id TEXT NOT NULL REFERENCES local_payments(id),
  reference TEXT NOT NULL UNIQUE,
  amount_cents ${int} NOT NULL CHECK (amount_cents > 0),
  created_at ${int} NOT NULL
);
`;
}

export const PURCHASE_MIGRATION_SQLITE = migration("INTEGER");
export const PURCHASE_MIGRATION_POSTGRES = migration("BIGINT");
