import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite/store.ts";
import { describeEachStore, freshDatabase, type TestDatabase } from "./support/stores.ts";

const run = promisify(execFile);
const TALLY = new URL("../bin/tally.js", import.meta.url).pathname;

async function tally(
  url: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TALLY, "--database-url", url, ...args], {
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describeEachStore("tally CLI", (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase(kind);
  });
  afterAll(async () => {
    await db.destroy();
  });

  it("creates an account, grants, takes usage (idempotently), shows the balance, and audits clean", async () => {
    const created = await tally(db.url, "accounts", "create", "--json");
    expect(created.code).toBe(0);
    const account = JSON.parse(created.stdout) as { id: string };
    expect(account.id).toMatch(/^acct_/);
    expect((await tally(db.url, "grant", account.id, "100", "--kind", "subscription", "--json")).code).toBe(
      0,
    );
    const first = JSON.parse(
      (await tally(db.url, "usage", account.id, "12.5", "--service", "tts", "--id", "ev-1", "--json")).stdout,
    );
    expect(first).toMatchObject({ id: "ev-1", cost: "12.5", replay: false });
    const again = JSON.parse(
      (await tally(db.url, "usage", account.id, "12.5", "--service", "tts", "--id", "ev-1", "--json")).stdout,
    );
    expect(again.replay).toBe(true);
    const balance = JSON.parse((await tally(db.url, "balance", account.id, "--json")).stdout);
    expect(balance).toMatchObject({ available: "87.5", held: "0", total: "87.5" });
    const audit = await tally(db.url, "audit", "--json");
    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout)).toMatchObject({
      ok: true,
      totals: { issued: "-100", consumed: "12.5", grants: "87.5" },
    });
  });

  it("refuses bad input with a clear error and a non-zero exit", async () => {
    const created = JSON.parse((await tally(db.url, "accounts", "create", "--json")).stdout) as {
      id: string;
    };
    const bad = await tally(db.url, "grant", created.id, "--", "-5");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/validation_error: amount must not be negative/);
    const unknown = await tally(db.url, "grant", created.id, "-5");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '-5'/);
    const broke = await tally(db.url, "usage", created.id, "1", "--service", "tts");
    expect(broke.code).not.toBe(0);
    expect(broke.stderr).toMatch(/insufficient_credits/);
  });

  it("keys: create (secret shown once), list without the secret, revoke; accounts: suspend, close", async () => {
    const acct = JSON.parse((await tally(db.url, "accounts", "create", "--json")).stdout) as { id: string };
    const created = JSON.parse(
      (await tally(db.url, "keys", "create", acct.id, "--scopes", "read,manage", "--json")).stdout,
    );
    expect(created.secret).toMatch(/^tly_live_/);
    expect(created.scopes).toEqual(["read", "manage"]);
    const listed = JSON.parse((await tally(db.url, "keys", "list", acct.id, "--json")).stdout);
    expect(listed.data).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    const revoked = JSON.parse((await tally(db.url, "keys", "revoke", created.id, "--json")).stdout);
    expect(revoked.revoked_at).not.toBeNull();
    expect((await tally(db.url, "keys", "create", acct.id, "--scopes", "root")).code).toBe(2);
    expect(JSON.parse((await tally(db.url, "accounts", "suspend", acct.id, "--json")).stdout).status).toBe(
      "suspended",
    );
    expect(JSON.parse((await tally(db.url, "accounts", "close", acct.id, "--json")).stdout).status).toBe(
      "closed",
    );
    const reopen = await tally(db.url, "accounts", "reactivate", acct.id);
    expect(reopen.code).toBe(1);
    expect(reopen.stderr).toMatch(/account_not_active/);
  });

  it("tally audit exits 1 and prints what differs when the derived state disagrees with the journal", async () => {
    const created = JSON.parse((await tally(db.url, "accounts", "create", "--json")).stdout) as {
      id: string;
    };
    const grant = JSON.parse((await tally(db.url, "grant", created.id, "50", "--json")).stdout) as {
      id: string;
    };
    // Corrupt the derived state behind the engine's back.
    if (kind === "sqlite") {
      const store = new SqliteStore(db.url);
      store.db.prepare("UPDATE grants SET remaining = remaining - 1000000 WHERE id = ?").run(grant.id);
      await store.close();
    } else {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      await c.query("UPDATE grants SET remaining = remaining - 1000000 WHERE id = $1", [grant.id]);
      await c.end();
    }
    const audit = await tally(db.url, "audit");
    expect(audit.code).toBe(1);
    expect(audit.stderr).toContain("audit FAILED");
    expect(audit.stderr).toContain(
      `grant_remaining_matches_journal ${grant.id}: expected 49, journal says 50`,
    );
  });
});

describe("tally serve", () => {
  it("serves health and readiness on PORT and shuts down cleanly on SIGTERM", async () => {
    const db = await freshDatabase("sqlite");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn(process.execPath, [TALLY, "serve"], {
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", DATABASE_URL: db.url, LOG_LEVEL: "warn" },
      stdio: "ignore",
    });
    try {
      let health: Response | null = null;
      for (let i = 0; i < 100 && !health; i++) {
        health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
        if (!health) await new Promise((r) => setTimeout(r, 100));
      }
      expect(health?.status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(await ready.json()).toEqual({ status: "ready", store: "sqlite" });
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      expect(code).toBe(0);
    } finally {
      child.kill("SIGKILL");
      await db.destroy();
    }
  });
});
