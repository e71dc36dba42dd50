/**
 * The SQLite writer thread: runs the engine's ledger transactions on a connection of its own, so the
 * main thread keeps serving requests while a commit waits for its fsync. Batches arrive one at a time
 * per lane; the main thread does the grouping.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqliteStore, type StatementResult } from "../store/sqlite/store.ts";
import { executeBatch } from "./execute-batch.ts";
import {
  BACKSTOP_CHECKPOINT_PAGES,
  RESTART_WAIT_MS,
  toWire,
  type FromWriter,
  type ToWriter,
  type WireOutcome,
} from "./writer-wire.ts";

const port = parentPort;
if (!port) throw new Error("writer-worker runs only as a worker thread");
const store = new SqliteStore((workerData as { path: string }).path);
// The checkpoint thread keeps the WAL short; this threshold is only the backstop should it fall behind.
store.db.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);

// Batches are run strictly one after another, in arrival order.
let chain: Promise<void> = Promise.resolve();
/** Statements for the main thread not yet run (see runSql). */
let sqlQueue: Extract<ToWriter, { type: "sql" }>[] = [];
/** Batches received and not yet started: the next one takes the queued statements into its transaction. */
let batchesWaiting = 0;
/** Messages received and not yet handled. */
let pending = 0;
let closed = false;

port.on("message", (msg: ToWriter) => {
  pending++;
  // Statements that arrive while a batch runs wait for it, then run together (runSql).
  if (msg.type === "sql") sqlQueue.push(msg);
  if (msg.type === "batch") batchesWaiting++;
  chain = chain
    .then(() => handle(msg))
    .finally(() => {
      pending--;
      if (pending === 0 && store.indexWanted) whenIdle();
    });
});

/**
 * Per-account index steps (store/sqlite/account-index.ts) run here, one small transaction at a time,
 * only while no batch waits: a message that arrives meanwhile is handled first (messages are delivered
 * before `setImmediate` callbacks run). A writer that never idles leaves them to its commits.
 */
function whenIdle(): void {
  setImmediate(() => {
    if (pending > 0 || closed) return;
    let more = false;
    try {
      more = store.indexStep();
    } catch {
      // An I/O or other trouble: the commits' own steps are the backstop; try again after the next batch.
    }
    if (more) whenIdle();
  });
}

async function handle(msg: ToWriter): Promise<void> {
  if (msg.type === "close") {
    closed = true;
    await store.close();
    port!.close();
    return;
  }
  if (msg.type === "restart-log") return store.restartLog(RESTART_WAIT_MS);
  if (msg.type === "sql") return runSql(msg);
  batchesWaiting--;
  // The main thread's statements queued meanwhile ride along in this batch's transaction.
  const statements = takeStatements();
  store.preStatements = statements.length > 0 ? statements : null;
  try {
    const { outcomes, info } = await executeBatch(store, msg.cmds, msg.now);
    const wire: WireOutcome[] = outcomes.map((o) =>
      o.ok ? { ok: true, value: o.value } : { ok: false, error: toWire(o.error) },
    );
    post({ type: "done", id: msg.id, outcomes: wire, info });
  } catch (err) {
    post({ type: "failed", id: msg.id, error: toWire(err) });
  } finally {
    store.preStatements = null;
    if (statements.length > 0) {
      // Not committed with the batch (it failed, or never reached its transaction): on their own, then.
      answer(statements, store.preResults ?? store.runStatements(statements));
      store.preResults = null;
    }
  }
}

function post(m: FromWriter): void {
  port!.postMessage(m);
}

/** The statements queued for the main thread, oldest first, leaving the queue empty. */
function takeStatements(): Extract<ToWriter, { type: "sql" }>[] {
  const taken = sqlQueue;
  sqlQueue = [];
  return taken;
}

/**
 * Runs every queued statement (this one and those that arrived since) in one transaction: one fsync for
 * all (SqliteStore.runStatements). Nothing to do when this one already ran, with earlier ones or a batch.
 */
async function runSql(msg: Extract<ToWriter, { type: "sql" }>): Promise<void> {
  if (!sqlQueue.includes(msg)) return;
  // One turn of the event loop first: the statements (and batches) already sent arrive meanwhile; when a
  // batch is among them, it takes the statements into its own transaction.
  await new Promise((resolve) => setImmediate(resolve));
  if (!sqlQueue.includes(msg) || batchesWaiting > 0) return;
  const group = takeStatements();
  answer(group, store.runStatements(group));
}

function answer(group: Extract<ToWriter, { type: "sql" }>[], results: StatementResult[]): void {
  group.forEach((m, i) => {
    const r = results[i]!;
    post(
      r.ok
        ? { type: "sql-done", id: m.id, result: r.result }
        : { type: "failed", id: m.id, error: toWire(r.error) },
    );
  });
}
