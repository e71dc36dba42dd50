/**
 * Plans, subscriptions, billing periods and job leases (issue #4). Amounts are micro-credits, money is
 * integer cents, rates are micro-units of currency per credit, times are epoch ms. Migration version 6
 * (`billing`) on both stores.
 */
function billingSql(int: "INTEGER" | "BIGINT"): string {
  return `
CREATE TABLE plans (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  monthly_allowance ${int} NOT NULL CHECK (monthly_allowance >= 0),
  price_cents ${int} NOT NULL CHECK (price_cents >= 0),
  currency TEXT NOT NULL,
  overage_policy TEXT NOT NULL CHECK (overage_policy IN ('block', 'allow')),
  overage_rate_micros ${int} NOT NULL CHECK (overage_rate_micros >= 0),
  overage_limit ${int} CHECK (overage_limit >= 0),
  rate_limit_tier TEXT,
  rollover_cap ${int} NOT NULL CHECK (rollover_cap >= 0),
  status TEXT NOT NULL CHECK (status IN ('active', 'archived')),
  metadata TEXT NOT NULL,
  created_at ${int} NOT NULL,
  updated_at ${int} NOT NULL
);
CREATE TABLE subscriptions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  plan_id TEXT NOT NULL REFERENCES plans(id),
  status TEXT NOT NULL CHECK (status IN ('active', 'canceled')),
  anchor_at ${int} NOT NULL,
  term INTEGER NOT NULL,
  next_index INTEGER NOT NULL,
  next_renewal_at ${int} NOT NULL,
  period_start ${int},
  period_end ${int},
  cancel_at_period_end INTEGER NOT NULL,
  pending_plan_id TEXT REFERENCES plans(id),
  canceled_at ${int},
  metadata TEXT NOT NULL,
  created_at ${int} NOT NULL,
  updated_at ${int} NOT NULL,
  lock_holder TEXT,
  locked_until ${int}
);
-- One live subscription per account.
CREATE UNIQUE INDEX subscriptions_one_active ON subscriptions (account_id) WHERE status = 'active';
CREATE INDEX subscriptions_due ON subscriptions (next_renewal_at) WHERE status = 'active';
CREATE INDEX subscriptions_account ON subscriptions (account_id, id);
CREATE TABLE billing_periods (
  account_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
  term INTEGER NOT NULL,
  period_index INTEGER NOT NULL,
  plan_id TEXT NOT NULL REFERENCES plans(id),
  start_at ${int} NOT NULL,
  end_at ${int} NOT NULL,
  grant_id TEXT,
  PRIMARY KEY (subscription_id, term, period_index)
);
CREATE INDEX billing_periods_account ON billing_periods (account_id, start_at);
CREATE TABLE job_leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at ${int} NOT NULL
);
`;
}

export const BILLING_MIGRATION_SQLITE = billingSql("INTEGER");
export const BILLING_MIGRATION_POSTGRES = billingSql("BIGINT");
