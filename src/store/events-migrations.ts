/**
 * The events outbox (migration version 5, `events`). One row per event, written in the transaction of the
 * change that caused it. `seq` is the reading order: on PostgreSQL the writer takes EVENTS_LOCK_KEY (a
 * transaction-scoped advisory lock) before inserting, so seq order is commit order and a reader tailing
 * by seq can never skip an event that commits late. SQLite has one writer, so it is ordered already.
 */
export const EVENTS_MIGRATION_SQLITE = `
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  account_id TEXT,
  data TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX events_account ON events (account_id, seq);
CREATE INDEX events_type ON events (type, seq);
`;

export const EVENTS_MIGRATION_POSTGRES = `
CREATE TABLE events (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  account_id TEXT,
  data TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX events_account ON events (account_id, seq);
CREATE INDEX events_type ON events (type, seq);
`;

/** Advisory lock key that orders event writers on PostgreSQL ("tallyevt" as a number). */
export const EVENTS_LOCK_KEY = "8386111946574853748";
