import { resolve } from "node:path";
import type { Store } from "./types.ts";
import { SqliteStore } from "./sqlite/store.ts";
import { PostgresStore } from "./postgres/store.ts";

export const DEFAULT_DATABASE_URL = "./data/tally.db";

/**
 * Opens the store named by a database URL: `postgres://…` / `postgresql://…` for PostgreSQL; a file path,
 * `sqlite:path` or `sqlite://path` for SQLite (`:memory:` for a throwaway database).
 */
export async function openStore(
  url: string = DEFAULT_DATABASE_URL,
  opts: { migrate?: boolean } = {},
): Promise<Store> {
  const store = createStore(url);
  if (opts.migrate !== false) await store.migrate();
  return store;
}

export function createStore(url: string): Store {
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresStore(url);
  return new SqliteStore(sqlitePath(url));
}

export function sqlitePath(url: string): string {
  let path = url;
  if (path.startsWith("sqlite://")) path = path.slice("sqlite://".length);
  else if (path.startsWith("sqlite:")) path = path.slice("sqlite:".length);
  if (path === ":memory:") return path;
  return resolve(path);
}
