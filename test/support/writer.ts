/**
 * A writer process for the concurrency and crash tests:
 *
 *   DATABASE_URL=… WRITER_SPEC='{"mode":"burst",…}' node --import tsx test/support/writer.ts
 *
 * It opens the store named by DATABASE_URL, prints `ready`, optionally waits for a `go <epoch ms>` line on
 * stdin and then for that instant (so several processes start writing together), sends its debits through one Engine, and prints
 * one line per outcome:
 *
 *   ack <id> <replay 0|1> <txn_id>   only after engine.debit() resolved, i.e. after the durable commit
 *   err <id> <code> <message>         a refusal (TallyError code) or `exception` for anything else
 *   sent                              (interactive mode) every debit of a `send` command answered
 *   done                              everything answered; the engine is closed
 *
 * Pipes are written synchronously on Linux, so a line the parent reads was printed before any kill.
 * Settings by env: WRITER_MAX_BATCH / WRITER_MAX_WAIT_MS (group commit), WRITER_MAX_MS (hard time limit;
 * the writer exits with code 3 past it). The writer also exits when its stdin closes (parent gone).
 */
import { realpathSync } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { isTallyError } from "../../src/domain/errors.ts";
import { Engine } from "../../src/ledger/engine.ts";
import type { DebitInput } from "../../src/ledger/types.ts";
import { openStore } from "../../src/store/open.ts";

/** Sends every event at once (each id `copies` times), after `go` when gated. */
export interface BurstSpec {
  mode: "burst";
  account: string;
  ids: string[];
  copies: number;
  /** Micro-credits per debit, as a decimal string. */
  amount: string;
  service?: string;
  gate?: boolean;
  /** Spread the sends evenly over this many ms instead of sending all at once (still concurrent). */
  spreadMs?: number;
}

/**
 * Streams debits `${prefix}${i}` for i = from … to-1, in order, with `concurrency` in flight; the amount
 * of event i is streamAmount(i), so a restarted stream re-sends exactly the same content.
 */
export interface StreamSpec {
  mode: "stream";
  account: string;
  prefix: string;
  from: number;
  to: number;
  concurrency: number;
  gate?: boolean;
}

/**
 * Waits for commands on stdin: `send <id> <id> …` sends those debits concurrently and prints `sent` once
 * all are answered; `end` finishes. Lets a test interleave several processes step by step.
 */
export interface InteractiveSpec {
  mode: "interactive";
  account: string;
  amount: string;
  service?: string;
}

export type WriterSpec = BurstSpec | StreamSpec | InteractiveSpec;

export const STREAM_SERVICE = "stt";

/** Content of stream event i: never the same amount twice in a row, so a mix-up shows in the sums. */
export function streamAmount(i: number): bigint {
  return 1_000n + BigInt(i % 7) * 11n;
}

export function streamEvent(account: string, prefix: string, i: number): DebitInput {
  return {
    id: `${prefix}${i}`,
    account_id: account,
    amount: streamAmount(i),
    service: STREAM_SERVICE,
    quantity: String(i % 60),
    metadata: { i },
  };
}

function out(line: string): void {
  // Synchronous for pipes on Linux: the line is in the pipe before the next statement runs.
  process.stdout.write(line + "\n");
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
}

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  const specText = process.env.WRITER_SPEC;
  if (!url || !specText) throw new Error("DATABASE_URL and WRITER_SPEC are required");
  const spec = JSON.parse(specText) as WriterSpec;

  const limit = setTimeout(
    () => {
      process.stderr.write("writer: time limit reached\n");
      process.exit(3);
    },
    envInt("WRITER_MAX_MS", 60_000),
  );
  limit.unref();

  const lines = createInterface({ input: process.stdin });
  let released: (startAt: number) => void = () => {};
  const goSignal = new Promise<number>((resolve) => (released = resolve));
  const commands: string[][] = [];
  let wakeCommands: () => void = () => {};
  lines.on("line", (l) => {
    const words = l.trim().split(/\s+/);
    if (words[0] === "go") released(Number(words[1] ?? 0) || 0);
    else if (words[0] === "send" || words[0] === "end") {
      commands.push(words);
      wakeCommands();
    }
  });
  // The parent is gone: stop writing rather than run on unattended.
  lines.on("close", () => process.exit(2));

  const store = await openStore(url);
  const groupCommit: { maxBatch?: number; maxWaitMs?: number } = {};
  if (process.env.WRITER_MAX_BATCH) groupCommit.maxBatch = envInt("WRITER_MAX_BATCH", 1000);
  if (process.env.WRITER_MAX_WAIT_MS) groupCommit.maxWaitMs = envInt("WRITER_MAX_WAIT_MS", 2);
  const engine = new Engine(store, { groupCommit });

  out("ready");
  if (spec.mode !== "interactive" && spec.gate) {
    // `go <epoch ms>`: every gated writer starts at the same instant, to within a millisecond.
    const startAt = await goSignal;
    const wait = startAt - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait - 1));
    while (Date.now() < startAt) {
      /* spin the last millisecond */
    }
  }

  const send = async (input: DebitInput): Promise<void> => {
    try {
      const r = await engine.debit(input);
      out(`ack ${input.id} ${r.replay ? 1 : 0} ${r.usage.txn_id}`);
    } catch (e) {
      if (isTallyError(e)) out(`err ${input.id} ${e.code} ${e.message}`);
      else {
        out(`err ${input.id} exception ${String((e as Error)?.message ?? e).replace(/\s+/g, " ")}`);
        process.stderr.write(`writer: ${(e as Error)?.stack ?? String(e)}\n`);
      }
    }
  };

  if (spec.mode === "burst") {
    const amount = BigInt(spec.amount);
    const events = Array.from({ length: spec.copies }, () => spec.ids).flat();
    const spread = spec.spreadMs ?? 0;
    const t0 = Date.now();
    const all: Promise<void>[] = [];
    for (const [k, id] of events.entries()) {
      const due = t0 + Math.floor((k * spread) / events.length);
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      all.push(send({ id, account_id: spec.account, amount, service: spec.service ?? "llm" }));
    }
    await Promise.all(all);
  } else if (spec.mode === "interactive") {
    const amount = BigInt(spec.amount);
    for (let step = 0; step < 100_000; step++) {
      while (commands.length === 0) await new Promise<void>((r) => (wakeCommands = r));
      const [word, ...ids] = commands.shift()!;
      if (word === "end") break;
      await Promise.all(
        ids.map((id) => send({ id, account_id: spec.account, amount, service: spec.service ?? "llm" })),
      );
      out("sent");
    }
  } else {
    let next = spec.from;
    const worker = async () => {
      while (next < spec.to) {
        const i = next++;
        await send(streamEvent(spec.account, spec.prefix, i));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, spec.concurrency) }, worker));
  }

  await engine.close();
  out("done");
  lines.removeAllListeners("close");
  lines.close();
  clearTimeout(limit);
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (invokedDirectly) {
  main().catch((e) => {
    process.stderr.write(`writer: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
