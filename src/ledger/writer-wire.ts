import { TallyError, isTallyError, type ErrorCode, type ErrorDetails } from "../domain/errors.ts";
import { intSetting } from "../domain/env-setting.ts";
import type { CommitInfo } from "../events/types.ts";
import type { SqlMode, SqlResult } from "../store/sqlite/store.ts";
import type { Command } from "./types.ts";

/**
 * Messages between the engine and its SQLite writer thread. Values cross by structured clone (bigints
 * included); errors are sent as plain data and rebuilt, since a clone would lose their class and code.
 */
/**
 * WAL pages after which a committing connection checkpoints by itself (SQLite's default is 1,000). With a
 * checkpoint thread running, only a backstop should it fall behind (~400 MB of WAL at 4 kB pages).
 */
export const BACKSTOP_CHECKPOINT_PAGES = 100_000;

/** How often the checkpoint thread copies committed WAL pages into the database file. */
export const CHECKPOINT_INTERVAL_MS = 250;

/** WAL pages after which the log is made to start over (checkpoint-worker.ts): 64 MB at 4 kB pages. */
export const DEFAULT_WAL_RESTART_PAGES = 16_384;
const MAX_WAL_RESTART_PAGES = 1_000_000;

/** `TALLY_SQLITE_WAL_RESTART_PAGES`, validated. */
export function walRestartPagesSetting(env: NodeJS.ProcessEnv = process.env): number {
  return intSetting(
    env,
    "TALLY_SQLITE_WAL_RESTART_PAGES",
    DEFAULT_WAL_RESTART_PAGES,
    1,
    MAX_WAL_RESTART_PAGES,
  );
}

export type ToWriter =
  | { type: "batch"; id: number; cmds: Command[]; now: number }
  /** From the checkpoint thread, by way of the main thread: the WAL is long, start it over. */
  | { type: "restart-log" }
  /** One write statement for the main thread (see SqliteStore.writeSql). */
  | { type: "sql"; id: number; sql: string; params: unknown[]; mode: SqlMode }
  | { type: "close" };

/** How long the writer's RESTART checkpoint may wait for readers to leave the log before giving up. */
export const RESTART_WAIT_MS = 20;

export type FromWriter =
  | { type: "done"; id: number; outcomes: WireOutcome[]; info: CommitInfo | null }
  | { type: "sql-done"; id: number; result: SqlResult }
  | { type: "failed"; id: number; error: WireError };

export type WireOutcome = { ok: true; value: unknown } | { ok: false; error: WireError };

export type WireError =
  | { tally: true; code: ErrorCode; message: string; details: ErrorDetails }
  | { tally: false; name: string; message: string; code?: string; stack?: string };

export function toWire(err: unknown): WireError {
  if (isTallyError(err)) return { tally: true, code: err.code, message: err.message, details: err.details };
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  return {
    tally: false,
    name: e.name,
    message: e.message,
    ...(typeof code === "string" ? { code } : {}),
    ...(e.stack !== undefined ? { stack: e.stack } : {}),
  };
}

export function fromWire(w: WireError): Error {
  if (w.tally) return new TallyError(w.code, w.message, w.details);
  const e = new Error(w.message) as Error & { code?: string };
  e.name = w.name;
  if (w.code !== undefined) e.code = w.code;
  if (w.stack !== undefined) e.stack = w.stack;
  return e;
}
