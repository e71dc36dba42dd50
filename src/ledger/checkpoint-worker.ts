/**
 * The SQLite checkpoint thread: copies committed WAL pages back into the database file every interval
 * (PASSIVE: never waits for, nor blocks, the writer). Left to the writer, a checkpoint of thousands of
 * pages would run inside whichever commit crossed the threshold and hold up every request waiting on it.
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort;
if (!port) throw new Error("checkpoint-worker runs only as a worker thread");
const { path, interval_ms } = workerData as { path: string; interval_ms: number };
const db = new Database(path);
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 1000");

const timer = setInterval(() => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // Busy or I/O trouble: the next interval tries again, and the writers' own threshold is the backstop.
  }
}, interval_ms);

port.on("message", (msg: unknown) => {
  if (msg !== "close") return;
  clearInterval(timer);
  db.close();
  port.close();
});
