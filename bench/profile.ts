/**
 * Where a SQLite engine debit spends its time: phase timings (load / apply / write / commit / outside the
 * store) and, with --statements, time per SQL statement. For experiments, --pragma applies extra PRAGMAs to
 * the store's connection and --drop-index drops an index after migration (both only in this scratch file).
 *
 *   npx tsx bench/profile.ts [--mode concurrent|batch|schema] [--debits 100000] [--accounts 1000] [--statements] [--random-ids] [--postings 2 (schema mode)]
 *                            [--max-batch 1000 (group commit)] [--in-flight 4000]
 *                            [--pragma cache_size=-262144 ...] [--drop-index postings_account ...]
 *                            [--page-size 1024 (set on the empty file, before the schema)]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile.ts   # then:
 *   npx tsx bench/cpuprofile-summary.ts /tmp/prof/*.cpuprofile
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../src/ledger/engine.ts";
import type { DebitInput } from "../src/ledger/types.ts";
import { openStore } from "../src/store/open.ts";
import type { SqliteStore } from "../src/store/sqlite/store.ts";
import { instrumentStore } from "./phases.ts";
import { fmtInt, seededRandom } from "./util.ts";

const { values: args } = parseArgs({
  options: {
    mode: { type: "string", default: "concurrent" },
    debits: { type: "string", default: "100000" },
    accounts: { type: "string", default: "1000" },
    "in-flight": { type: "string", default: "4000" },
    statements: { type: "boolean", default: false },
    "random-ids": { type: "boolean", default: false },
    postings: { type: "string", default: "2" },
    "max-batch": { type: "string", default: "1000" },
    pragma: { type: "string", multiple: true, default: [] },
    "drop-index": { type: "string", multiple: true, default: [] },
    "page-size": { type: "string" },
  },
});
const N = Number(args.debits);
const NA = Number(args.accounts);

const dir = mkdtempSync(join(tmpdir(), "tally-profile-"));
if (args["page-size"]) {
  // page_size only takes effect on an empty file, before WAL mode and the first table.
  const { default: Database } = await import("better-sqlite3");
  const db = new Database(join(dir, "profile.db"));
  db.pragma(`page_size = ${Number(args["page-size"])}`);
  db.exec("CREATE TABLE _init (x INTEGER); DROP TABLE _init;");
  db.close();
}
const store = (await openStore(join(dir, "profile.db"))) as SqliteStore;
for (const p of args.pragma) store.db.pragma(p);
for (const i of args["drop-index"]) store.db.exec(`DROP INDEX ${i}`);

// Per-statement timing: wrap the store's prepared-statement cache (a private method; bench-only).
const statements = new Map<string, { calls: number; ms: number }>();
if (args.statements) {
  const s = store as unknown as { s: (sql: string) => unknown };
  const original = s.s.bind(store);
  const wrapped = new Map<string, unknown>();
  s.s = (sql: string) => {
    let w = wrapped.get(sql);
    if (!w) {
      const real = original(sql) as Record<string, (...a: unknown[]) => unknown>;
      const rec = { calls: 0, ms: 0 };
      statements.set(sql.replace(/\s+/g, " ").trim(), rec);
      const time =
        (name: string) =>
        (...a: unknown[]) => {
          const t = performance.now();
          try {
            return real[name]!.apply(real, a);
          } finally {
            rec.ms += performance.now() - t;
            rec.calls++;
          }
        };
      w = { run: time("run"), get: time("get"), all: time("all") };
      wrapped.set(sql, w);
    }
    return w;
  };
}

// Inline: the timings wrap this store object, which a writer thread would not use.
const engine = new Engine(store, {
  sqliteWriter: "inline",
  groupCommit: { maxBatch: Number(args["max-batch"]) },
});
try {
  const accounts = Array.from({ length: NA }, (_, i) => `acct-${String(i).padStart(6, "0")}`);
  await Promise.all(accounts.map((id) => engine.createAccount({ id })));
  await Promise.all(
    accounts.map((account_id) => engine.grant({ account_id, kind: "purchase", amount: 10n ** 15n })),
  );
  const random = seededRandom(1);
  let next = 0;
  const input = (): DebitInput => ({
    id: args["random-ids"] ? randomUUID() : `evt-${next++}`,
    account_id: accounts[Math.floor(random() * NA)]!,
    amount: 1000n,
    service: "llm",
  });
  await Promise.all(Array.from({ length: 2000 }, () => engine.debit(input())));

  const phases = instrumentStore(store);
  for (const v of statements.values()) Object.assign(v, { calls: 0, ms: 0 });
  const t0 = performance.now();
  let done = 0;
  if (args.mode === "schema") {
    // No engine: the rows a debit batch writes (a usage, two postings, one grant update per account),
    // written with plain prepared statements into the same schema, one durable commit per 1,000.
    const db = store.db;
    const insUsage = db.prepare(
      `INSERT INTO usages (id, account_id, service, quantity, cost, overage, overage_refunded, refunded, parts, sources,
        hold_id, occurred_at, recorded_at, metadata, txn_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    const insPosting = db.prepare(
      "INSERT INTO postings (txn_id, account_id, ledger, amount, kind, ref, at) VALUES (?,?,?,?,?,?,?)",
    );
    const updGrant = db.prepare("UPDATE grants SET remaining = remaining - ? WHERE id = ?");
    const postings = Number(args.postings);
    const batch = db.transaction((items: DebitInput[]) => {
      const now = Date.now();
      const touched = new Map<string, bigint>();
      for (const d of items) {
        const g = `grant-${d.account_id}`;
        const txn = `txn-${d.id}`;
        insUsage.run(
          d.id,
          d.account_id,
          d.service,
          null,
          d.amount,
          0n,
          0n,
          0n,
          JSON.stringify([[g, "purchase", String(d.amount), "0"]]),
          " purchase ",
          null,
          now,
          now,
          "{}",
          txn,
        );
        if (postings > 0) insPosting.run(txn, d.account_id, `grant:${g}`, -d.amount, "debit", d.id, now);
        if (postings > 1) insPosting.run(txn, d.account_id, "consumed", d.amount, "debit", d.id, now);
        touched.set(g, (touched.get(g) ?? 0n) + d.amount);
      }
      for (const [g, amount] of touched) updGrant.run(amount, g);
    });
    for (; done < N; done += 1000) batch.immediate(Array.from({ length: 1000 }, input));
  } else if (args.mode === "concurrent") {
    const client = async () => {
      while (done++ < N) await engine.debit(input());
    };
    await Promise.all(Array.from({ length: Number(args["in-flight"]) }, client));
  } else {
    for (; done < N; done += 1000) {
      const results = await engine.debitBatch(Array.from({ length: 1000 }, input));
      if (results.some((r) => !r.ok)) throw new Error("a debit failed");
    }
  }
  const wall = performance.now() - t0;
  const us = (ms: number) => ((ms * 1000) / N).toFixed(1).padStart(6);
  const commit = phases.runBatch - phases.apply - (phases.load ?? 0) - (phases.write ?? 0);
  console.log(
    `${args.mode}, ${fmtInt(N)} debits over ${fmtInt(NA)} accounts` +
      (args.pragma.length ? `, pragma ${args.pragma.join(", ")}` : "") +
      (args["drop-index"].length ? `, without ${args["drop-index"].join(", ")}` : "") +
      (args["random-ids"] ? ", random UUID event ids" : "") +
      (args["page-size"] ? `, page_size ${args["page-size"]}` : "") +
      (args["max-batch"] !== "1000"
        ? `, maxBatch ${args["max-batch"]}, ${args["in-flight"]} in flight`
        : "") +
      (args.mode === "schema" ? `, ${args.postings} postings per debit` : "") +
      `: ${fmtInt((N / wall) * 1000)} debits/s in ${fmtInt(phases.batches)} batches`,
  );
  console.log(`µs per debit: total ${us(wall)}`);
  if (args.mode !== "schema") {
    console.log(`  load    ${us(phases.load ?? 0)}`);
    console.log(`  apply   ${us(phases.apply)}`);
    console.log(`  write   ${us(phases.write ?? 0)}`);
    console.log(`  commit  ${us(commit)}`);
    console.log(`  outside ${us(wall - phases.runBatch)}`);
  }
  if (args.statements) {
    console.log("statements (µs per debit, calls, µs per call):");
    for (const [sql, v] of [...statements].sort((a, b) => b[1].ms - a[1].ms)) {
      if (v.calls === 0) continue;
      console.log(
        `  ${us(v.ms)} ${String(v.calls).padStart(8)} ${((v.ms * 1000) / v.calls).toFixed(2).padStart(8)}  ${sql.slice(0, 90)}`,
      );
    }
  }
  const report = await engine.audit();
  if (args.mode !== "schema" && (!report.ok || report.counts.usages !== 2000 + N))
    throw new Error(`verification failed: ${JSON.stringify(report.counts)}`);
} finally {
  await engine.close();
  rmSync(dir, { recursive: true, force: true });
}
