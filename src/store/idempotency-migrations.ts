/**
 * Idempotency records for `Idempotency-Key` on POST requests (see src/http/idempotency.ts). One row per
 * (caller, method, route, key): the request's fingerprint, the first answer (or `pending` while the first
 * request runs, under a lease until `locked_until`), and when the record may be forgotten (`expires_at`).
 * `caller` is "operator" or "account:<id>", so the account id is in the key of every customer record;
 * `scopes` are those of the customer credential that made the first request (a replay needs them all).
 * An answer that carried a secret is kept sealed (`body_encoding` = 'sealed'), never in clear.
 * Times are epoch ms, as everywhere else. Applied as migration version 4 (`idempotency`) on both stores.
 */
export const IDEMPOTENCY_MIGRATION_SQLITE = `
CREATE TABLE idempotency_keys (
  caller TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
  owner TEXT NOT NULL,
  scopes TEXT,
  status INTEGER,
  headers TEXT,
  body TEXT,
  body_encoding TEXT CHECK (body_encoding IN ('utf8', 'base64', 'sealed')),
  created_at INTEGER NOT NULL,
  locked_until INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (caller, method, route, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
`;

export const IDEMPOTENCY_MIGRATION_POSTGRES = `
CREATE TABLE idempotency_keys (
  caller TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
  owner TEXT NOT NULL,
  scopes TEXT,
  status INTEGER,
  headers TEXT,
  body TEXT,
  body_encoding TEXT CHECK (body_encoding IN ('utf8', 'base64', 'sealed')),
  created_at BIGINT NOT NULL,
  locked_until BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (caller, method, route, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
`;
