import { afterAll, expect, it } from "vitest";
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
  expect(versions.map((v) => Number(v.version))).toEqual([1, 2, 3, 4]);
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
