import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  sqlite: string;
  postgres: string;
  /** File system of the temp directory the SQLite files live in. */
  disk: string;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  loadAverage: number;
}

export function describeMachine(postgres: string): Machine {
  const cpus = os.cpus();
  const db = new Database(":memory:");
  const sqlite = String((db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v);
  db.close();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    sqlite,
    postgres,
    disk: tempFileSystem(),
    loadAverage: os.loadavg()[0] ?? 0,
  };
}

/** "ext4 on /dev/vda" for the mount that holds os.tmpdir(), when /proc/mounts says. */
function tempFileSystem(): string {
  try {
    const dir = os.tmpdir();
    let best: { mount: string; text: string } | null = null;
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [dev, mount, type] = line.split(" ");
      if (!dev || !mount || !type) continue;
      if (
        (dir === mount || dir.startsWith(mount.endsWith("/") ? mount : mount + "/")) &&
        (!best || mount.length > best.mount.length)
      )
        best = { mount, text: `${type} on ${dev}` };
    }
    return best ? `${dir}: ${best.text}` : dir;
  } catch {
    return "unknown";
  }
}
