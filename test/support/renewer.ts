/**
 * A renewal process for the multi-process billing test:
 *
 *   DATABASE_URL=… RENEWER_ACCOUNTS='["acct_1",…]' node --import tsx test/support/renewer.ts
 *
 * It opens the store, prints `ready`, then for every `step <n> <epoch ms>` line on stdin sets its own
 * (manual) clock to that instant and races everything at once: a scheduler pass (with its database lease)
 * and a lazy renewal of every account, twice. It answers `done <n>` or `err <n> <message>`. `quit` (or
 * stdin closing) closes the engine and exits.
 */
import { createInterface } from "node:readline";
import { RenewalScheduler } from "../../src/billing/scheduler.ts";
import { Subscriptions } from "../../src/billing/subscriptions.ts";
import { ManualClock } from "../../src/domain/clock.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { openStore } from "../../src/store/open.ts";

const store = await openStore(process.env.DATABASE_URL!);
const clock = new ManualClock(0);
const engine = new Engine(store, { clock });
const subs = new Subscriptions(engine);
// A short lease, so the scheduler's holder changes between processes over the run.
const scheduler = new RenewalScheduler(subs, { leaseMs: 150 });
const accounts = JSON.parse(process.env.RENEWER_ACCOUNTS ?? "[]") as string[];
const limit = setTimeout(() => process.exit(3), Number(process.env.RENEWER_MAX_MS ?? 120_000));

let chain = Promise.resolve();
const quit = () => {
  chain = chain.then(async () => {
    clearTimeout(limit);
    await scheduler.stop();
    await engine.close();
    process.exit(0);
  });
};
createInterface({ input: process.stdin })
  .on("line", (line) => {
    const [cmd, n, at] = line.split(" ");
    if (cmd === "quit") return quit();
    if (cmd !== "step") return;
    chain = chain.then(async () => {
      clock.set(Number(at));
      try {
        await Promise.all([
          scheduler.tick(),
          ...accounts.flatMap((a) => [subs.renewAccount(a), subs.renewAccount(a)]),
        ]);
        process.stdout.write(`done ${n}\n`);
      } catch (e) {
        process.stdout.write(`err ${n} ${String(e).replace(/\n/g, " ")}\n`);
      }
    });
  })
  .on("close", quit);
process.stdout.write("ready\n");
