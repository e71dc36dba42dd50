/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function, by file.
 * Time inside native better-sqlite3 / pg calls is counted as self time of the JS function that called them.
 *
 *   npx tsx bench/cpuprofile-summary.ts <file.cpuprofile> [rows] [from_s] [to_s]
 *
 * `from_s`/`to_s`: only the samples taken that many seconds after the profile started (the bench logs
 * print when each line ran), so a profile of a whole bench run can be read one line at a time.
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, rowsArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: npx tsx bench/cpuprofile-summary.ts <file.cpuprofile> [rows]");
  process.exit(2);
}
const rows = Number(rowsArg ?? 30);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const name = (n: Node) =>
  `${n.callFrame.functionName || "(anonymous)"}  ${n.callFrame.url.replace(/^.*?\/(src|bench|node_modules)\//, "$1/").replace(/^file:\/\//, "")}`;

const fromUs = fromArg === undefined ? -Infinity : Number(fromArg) * 1e6;
const toUs = toArg === undefined ? Infinity : Number(toArg) * 1e6;
const sampled = new Map<number, number>();
let total = 0;
let at = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  at += dt;
  if (at < fromUs || at > toUs) return;
  sampled.set(id, (sampled.get(id) ?? 0) + dt);
  total += dt;
});

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, t] of sampled) {
  const k = name(byId.get(id)!);
  self.set(k, (self.get(k) ?? 0) + t);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const kk = name(byId.get(cur)!);
    if (seen.has(kk)) continue;
    seen.add(kk);
    inclusive.set(kk, (inclusive.get(kk) ?? 0) + t);
  }
}

function show(title: string, m: Map<string, number>) {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms sampled)`);
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, rows))
    console.log(
      `${((t / total) * 100).toFixed(1).padStart(6)}%  ${(t / 1000).toFixed(0).padStart(7)} ms  ${k}`,
    );
}
show("self time", self);
show("inclusive time", inclusive);
