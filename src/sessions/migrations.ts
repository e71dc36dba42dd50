/**
 * Live sessions (migration version 8 on both stores). The queried fields are columns; the rest of the
 * record is one JSON document (`data`), written whole on every conditional update.
 */
export const SESSIONS_MIGRATION_SQLITE = `
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  status TEXT NOT NULL CHECK (status IN ('active', 'ended', 'abandoned')),
  valid_until INTEGER NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id, id);
CREATE INDEX sessions_active ON sessions (account_id) WHERE status = 'active';
CREATE INDEX sessions_due ON sessions (valid_until) WHERE status = 'active';
`;

export const SESSIONS_MIGRATION_POSTGRES = `
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  status TEXT NOT NULL CHECK (status IN ('active', 'ended', 'abandoned')),
  valid_until BIGINT NOT NULL,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id, id);
CREATE INDEX sessions_active ON sessions (account_id) WHERE status = 'active';
CREATE INDEX sessions_due ON sessions (valid_until) WHERE status = 'active';
`;
