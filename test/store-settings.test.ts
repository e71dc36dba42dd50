import { afterAll, expect, it } from "vitest";
import { SQLITE_MIGRATIONS } from "../src/store/sqlite/migrations.ts";
import { POSTGRES_MIGRATIONS } from "../src/store/postgres/migrations.ts";
import { SqliteStore } from "../src/store/sqlite/store.ts";
import { freshDatabase, type TestDatabase } from "./support/stores.ts";

const dbs: TestDatabase[] = [];
afterAll(async () => {
  for (const d of dbs) await d.destroy();
});

it("SQLite commits durably: WAL with synchronous=FULL, migrations applied at open", async () => {
  const db = await freshDatabase("sqlite");
  dbs.push(db);
  const store = (await db.open()) as SqliteStore;
  expect(String(store.db.pragma("journal_mode", { simple: true }))).toBe("wal");
  expect(Number(store.db.pragma("synchronous", { simple: true }))).toBe(2); // FULL
  const versions = store.db.prepare("SELECT version FROM schema_migrations ORDER BY version").all() as {
    version: bigint;
  }[];
  // Every version applied, in increasing order; both dialects list the same versions.
  const all = SQLITE_MIGRATIONS.map((m) => m.version);
  expect(all[0]).toBe(1);
  expect(all.every((v, i) => i === 0 || v > all[i - 1]!)).toBe(true);
  expect(POSTGRES_MIGRATIONS.map((m) => m.version)).toEqual(all);
  expect(versions.map((v) => Number(v.version))).toEqual(all);
  // Migrating again runs nothing.
  expect(await store.migrate()).toBe(0);
  await store.close();
});

it("PostgreSQL: migrations applied at open, once, by concurrent openers", async () => {
  const db = await freshDatabase("postgres");
  dbs.push(db);
  const stores = await Promise.all([db.open(), db.open(), db.open()]);
  for (const s of stores) expect(await s.migrate()).toBe(0);
  await Promise.all(stores.map((s) => s.close()));
});
