/**
 * The SQLite checkpoint thread: copies committed WAL pages back into the database file every interval
 * (PASSIVE: never waits for, nor blocks, the writer). Left to the writer, a checkpoint of thousands of
 * pages would run inside whichever commit crossed the threshold and hold up every request waiting on it.
 *
 * A PASSIVE checkpoint alone never lets the WAL start over under steady load: SQLite rewinds the log only
 * when a writer begins after every frame was copied and no reader still reads from the log, and with
 * commits every few milliseconds and the server reading all the time, that moment never comes (measured:
 * 250 MB of WAL after 20 s at 1,000 debits/s, growing until the load stops). Nor can this thread force it:
 * a RESTART checkpoint must first take the write lock, which a busy writer thread takes again the moment it
 * lets go. So once the log passes `restart_pages`, this thread tells the main thread, which asks the writer
 * thread to run the RESTART itself between two batches (writer-worker.ts).
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort;
if (!port) throw new Error("checkpoint-worker runs only as a worker thread");
const { path, interval_ms, restart_pages } = workerData as {
  path: string;
  interval_ms: number;
  restart_pages: number;
};
const db = new Database(path);
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 1000");

const timer = setInterval(() => {
  try {
    const [result] = db.pragma("wal_checkpoint(PASSIVE)") as { log: number }[];
    if (result && result.log >= restart_pages) port.postMessage("restart-log");
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
