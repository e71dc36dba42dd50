import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

export const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** Scratch databases for one benchmark run, all removed by `cleanup()` (also on Ctrl-C). */
export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), "tally-bench-"));
  readonly prefix = `tally_bench_${Date.now().toString(36)}_${process.pid}`;
  private readonly pgNames: string[] = [];

  constructor(readonly adminUrl: string) {}

  /** A path for a fresh SQLite file inside the run's temp directory. */
  sqlitePath(name: string): string {
    return join(this.dir, `${name}.db`);
  }

  /** Creates a fresh PostgreSQL database on the admin server and returns its URL. */
  async postgres(name: string): Promise<string> {
    const db = `${this.prefix}_${name}`;
    await this.admin(`CREATE DATABASE "${db}"`);
    this.pgNames.push(db);
    const u = new URL(this.adminUrl);
    u.pathname = `/${db}`;
    return u.toString();
  }

  async dropPostgres(url: string): Promise<void> {
    const db = new URL(url).pathname.slice(1);
    await this.admin(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    this.pgNames.splice(this.pgNames.indexOf(db), 1);
  }

  async serverVersion(): Promise<string> {
    const rows = await this.admin("SHOW server_version");
    return String(rows[0]?.server_version ?? "?");
  }

  async setting(name: string): Promise<string> {
    const rows = await this.admin(`SELECT current_setting('${name}') AS v`);
    return String(rows[0]?.v ?? "?");
  }

  private async admin(sql: string): Promise<Record<string, unknown>[]> {
    const c = new pg.Client({ connectionString: this.adminUrl });
    await c.connect();
    try {
      return (await c.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  }

  async cleanup(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    for (const db of [...this.pgNames]) {
      try {
        await this.admin(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      } catch (err) {
        console.error(`could not drop database ${db}: ${String(err)}`);
      }
    }
    this.pgNames.length = 0;
  }
}
