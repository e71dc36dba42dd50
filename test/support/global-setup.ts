import pg from "pg";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgPrefix: string;
  }
}

export const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * The PostgreSQL run: every store a test opens gets a fresh database named with this run's prefix on the
 * server named by TEST_DATABASE_URL; all of them are dropped when the run ends.
 */
export default async function setup(project: TestProject) {
  const adminUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL;
  const prefix = `tally_t${Date.now().toString(36)}_${process.pid}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect(); // fails the run loudly when the server is not there: CI always runs PostgreSQL
  await client.end();
  project.provide("pgAdminUrl", adminUrl);
  project.provide("pgPrefix", prefix);
  return async () => {
    await dropDatabases(adminUrl, prefix);
  };
}

export async function dropDatabases(adminUrl: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE $1",
      [`${prefix}%`],
    );
    for (const r of rows) await client.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
