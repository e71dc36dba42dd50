import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe, inject } from "vitest";
import { openStore } from "../../src/store/open.ts";
import type { Store } from "../../src/store/types.ts";

export const STORE_KINDS = ["sqlite", "postgres"] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export interface TestDatabase {
  kind: StoreKind;
  /** DATABASE_URL of this database, for child processes. */
  url: string;
  /** Opens (and migrates) a new store on this database. */
  open(): Promise<Store>;
  /** Removes the database. */
  destroy(): Promise<void>;
}

let counter = 0;

/** A fresh, empty database of the given kind. */
export async function freshDatabase(kind: StoreKind): Promise<TestDatabase> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "tally-test-"));
    const url = join(dir, "tally.db");
    return {
      kind,
      url,
      open: () => openStore(url),
      destroy: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const adminUrl = inject("pgAdminUrl");
  const name = `${inject("pgPrefix")}_${process.pid}_${++counter}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  return {
    kind,
    url,
    open: () => openStore(url),
    destroy: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

/** The conformance pattern: the same describe block runs once per store. */
export function describeEachStore(title: string, body: (kind: StoreKind) => void): void {
  for (const kind of STORE_KINDS) describe(`${title} [${kind}]`, () => body(kind));
}
