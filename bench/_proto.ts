import { openStore } from "/work/main/src/store/open.ts";
import { Engine } from "/work/main/src/ledger/engine.ts";
import { rmSync } from "node:fs";
const path = `/tmp/bp/p-${process.pid}.db`;
const store = await openStore(path);
const engine = new Engine(store);
const NA = Number(process.env.NA ?? 1000);
const accts: string[] = [];
await Promise.all(Array.from({ length: NA }, (_, i) => engine.createAccount({ id: `a${i}` }).then(r => accts.push(r.account.id))));
await Promise.all(accts.map((a) => engine.grant({ account_id: a, kind: "purchase", amount: 10n ** 15n })));
console.log("setup done");
let seq = 0;
const N = 100_000;
const K = Number(process.env.K ?? 4000);
let t0 = performance.now();
async function worker() { while (seq < N) { const i = seq++; await engine.debit({ id: `d${i}`, account_id: accts[i % NA]!, amount: 1000n, service: "llm" }); } }
await Promise.all(Array.from({ length: K }, worker));
let dt = (performance.now() - t0) / 1000;
console.log("concurrent", N / dt, engine.committer.stats);
t0 = performance.now();
for (let b = 0; b < 100; b++) {
  const items = Array.from({ length: 1000 }, (_, j) => ({ id: `b${b}_${j}`, account_id: accts[(b * 1000 + j) % NA]!, amount: 1000n, service: "llm" }));
  const r = await engine.debitBatch(items);
  if (r.some((x) => !x.ok)) throw new Error("fail");
}
dt = (performance.now() - t0) / 1000;
console.log("batch", 100_000 / dt, engine.committer.stats);
t0 = performance.now();
const rep = await engine.audit();
console.log("audit", rep.ok, rep.counts, rep.totals, (performance.now() - t0) / 1000);
await engine.close();
rmSync(path, { force: true }); rmSync(path + "-wal", { force: true }); rmSync(path + "-shm", { force: true });
