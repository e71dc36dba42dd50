import { Worker } from "node:worker_threads";
import type { BatchExecutor, BatchOutcome } from "./execute-batch.ts";
import type { Command } from "./types.ts";
import {
  CHECKPOINT_INTERVAL_MS,
  fromWire,
  walRestartPagesSetting,
  type FromWriter,
  type ToWriter,
} from "./writer-wire.ts";
import type { SqlMode, SqlResult } from "../store/sqlite/store.ts";

/** A message sent and not yet answered: a batch (answered with a BatchOutcome) or a statement (SqlResult). */
interface Waiting {
  resolve: (answer: never) => void;
  reject: (e: unknown) => void;
}

const BOOTSTRAP = new URL("./writer-bootstrap.js", import.meta.url);

/** How long close() waits for the writer to finish and close its connection before terminating it. */
const CLOSE_TIMEOUT_MS = 10_000;

/**
 * Runs ledger batches on a SQLite writer thread (src/ledger/writer-worker.ts) with its own connection to
 * the same file. better-sqlite3 is synchronous: inline, every commit's fsync would stop the event loop.
 * The thread starts with the first batch and holds the process open only while batches are in flight.
 */
export class ThreadExecutor implements BatchExecutor {
  /** The thread runs batches one at a time in arrival order; one more waits there, ready to start. */
  readonly pipeline = 2;
  private worker: Worker | null = null;
  /** Checkpoints the WAL off the commit path (see checkpoint-worker.ts); started with the writer. */
  private checkpointer: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private readonly walRestartPages = walRestartPagesSetting();
  private closed = false;

  constructor(private readonly path: string) {}

  execute(cmds: Command[], now: number): Promise<BatchOutcome> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<BatchOutcome>((resolve, reject) => {
      if (this.waiting.size === 0) worker.ref();
      this.waiting.set(id, { resolve, reject });
      const msg: ToWriter = { type: "batch", id, cmds, now };
      worker.postMessage(msg);
    });
  }

  /**
   * One write statement run by the writer thread for the main thread. On the main connection a write
   * waits, blocking the event loop, for the writer's transaction to end (SQLite's busy handler sleeps),
   * and pays an fsync of its own; here statements that arrive together share one transaction and one
   * fsync, in order with the ledger's batches.
   */
  sql(sql: string, params: unknown[], mode: SqlMode): Promise<SqlResult> {
    if (this.closed) return Promise.reject(new Error("the SQLite writer thread is closed"));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<SqlResult>((resolveSql, reject) => {
      if (this.waiting.size === 0) worker.ref();
      this.waiting.set(id, { resolve: resolveSql, reject });
      worker.postMessage({ type: "sql", id, sql, params, mode } satisfies ToWriter);
    });
  }

  private start(): Worker {
    this.checkpointer ??= this.startCheckpointer();
    const worker = new Worker(BOOTSTRAP, { workerData: { role: "writer", path: this.path } });
    worker.unref();
    worker.on("message", (m: FromWriter) => this.onMessage(m));
    worker.on("error", (err) => this.failAll(err));
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = null;
      this.failAll(new Error(`the SQLite writer thread exited (code ${code})`));
    });
    this.worker = worker;
    return worker;
  }

  private startCheckpointer(): Worker {
    const checkpointer = new Worker(BOOTSTRAP, {
      workerData: {
        role: "checkpoint",
        path: this.path,
        interval_ms: CHECKPOINT_INTERVAL_MS,
        restart_pages: this.walRestartPages,
      },
    });
    checkpointer.unref();
    // A checkpointer that fails is not fatal: the connections' own threshold takes over.
    checkpointer.on("error", () => {});
    // The log is long: the writer starts it over between batches. Idle, nothing to do: once the passive
    // checkpoints have copied everything, the next commit starts the log over by itself.
    checkpointer.on("message", (m: unknown) => {
      if (m === "restart-log" && this.worker)
        this.worker.postMessage({ type: "restart-log" } satisfies ToWriter);
    });
    checkpointer.on("exit", () => {
      if (this.checkpointer === checkpointer) this.checkpointer = null;
    });
    return checkpointer;
  }

  private onMessage(m: FromWriter): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (this.waiting.size === 0) this.worker?.unref();
    if (m.type === "failed") return w.reject(fromWire(m.error));
    if (m.type === "sql-done") return (w.resolve as (r: SqlResult) => void)(m.result);
    (w.resolve as (o: BatchOutcome) => void)({
      outcomes: m.outcomes.map((o) => (o.ok ? o : { ok: false, error: fromWire(o.error) })),
      info: m.info,
    });
  }

  /** The thread failed or exited: whatever it had not answered may or may not have committed. */
  private failAll(err: unknown): void {
    const pending = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of pending) w.reject(err);
  }

  /** Called once nothing is in flight (the committer drains first): closes both threads' connections. */
  async close(): Promise<void> {
    this.closed = true;
    const { checkpointer, worker } = this;
    this.checkpointer = null;
    this.worker = null;
    if (checkpointer) await stop(checkpointer, "close");
    if (worker) await stop(worker, { type: "close" } satisfies ToWriter);
  }
}

/** Asks a thread to close its connection and end; terminates it if it has not gone within the timeout. */
async function stop(worker: Worker, closeMessage: unknown): Promise<void> {
  // Held open until it has gone: an unreferenced thread would let the process exit mid-close.
  worker.ref();
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  worker.postMessage(closeMessage);
  const timer = setTimeout(() => void worker.terminate(), CLOSE_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
