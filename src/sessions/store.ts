import type { PostgresStore } from "../store/postgres/store.ts";
import type { SqliteStore } from "../store/sqlite/store.ts";
import type { Store } from "../store/types.ts";
import { PostgresSessionStore } from "./postgres-store.ts";
import { SqliteSessionStore } from "./sqlite-store.ts";
import type { SessionStore } from "./types.ts";

const cache = new WeakMap<Store, SessionStore>();

/** The session table on the same database (and connection or pool) as the ledger store. */
export function sessionStoreFor(store: Store): SessionStore {
  let s = cache.get(store);
  if (!s) {
    s =
      store.dialect === "sqlite"
        ? new SqliteSessionStore(store as SqliteStore)
        : new PostgresSessionStore((store as PostgresStore).pool);
    cache.set(store, s);
  }
  return s;
}
