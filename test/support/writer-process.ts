/** Parent side of test/support/writer.ts: spawns writer processes, reads their lines, kills them. */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { WriterSpec } from "./writer.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WRITER = fileURLToPath(new URL("./writer.ts", import.meta.url));

export interface Ack {
  id: string;
  replay: boolean;
  txn: string;
}

export interface Refusal {
  id: string;
  code: string;
  message: string;
}

export interface WriterOptions {
  maxBatch?: number;
  maxWaitMs?: number;
  /** Hard time limit of the child (default 45 s). */
  maxMs?: number;
}

const live = new Set<ChildProcess>();

export class Writer {
  readonly child: ChildProcess;
  readonly acks: Ack[] = [];
  readonly refusals: Refusal[] = [];
  stderr = "";
  done = false;
  /** `sent` lines seen (interactive mode). */
  sent = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private isReady = false;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private waiters: (() => void)[] = [];

  constructor(url: string, spec: WriterSpec, opts: WriterOptions = {}) {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: url,
      WRITER_SPEC: JSON.stringify(spec),
      WRITER_MAX_MS: String(opts.maxMs ?? 45_000),
    };
    if (opts.maxBatch !== undefined) env.WRITER_MAX_BATCH = String(opts.maxBatch);
    if (opts.maxWaitMs !== undefined) env.WRITER_MAX_WAIT_MS = String(opts.maxWaitMs);
    this.child = spawn(process.execPath, ["--import", "tsx", WRITER], {
      cwd: ROOT,
      env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      // "close", not "exit": stdout is read to its end, so every line printed before a kill is seen.
      this.child.once("close", (code, signal) => {
        live.delete(this.child);
        this.exitInfo = { code, signal };
        this.wake();
        resolve({ code, signal });
      });
    });
    // A write to the stdin of a killed child must not crash the test run.
    this.child.stdin!.on("error", () => {});
    this.child.stderr!.on("data", (d: Buffer) => {
      if (this.stderr.length < 20_000) this.stderr += d.toString();
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => this.onLine(line));
  }

  private onLine(line: string): void {
    const [tag, id, a, ...rest] = line.split(" ");
    if (tag === "ack") this.acks.push({ id: id!, replay: a === "1", txn: rest[0] ?? "" });
    else if (tag === "err") this.refusals.push({ id: id!, code: a!, message: rest.join(" ") });
    else if (tag === "ready") this.isReady = true;
    else if (tag === "done") this.done = true;
    else if (tag === "sent") this.sent++;
    else this.stderr += `unexpected stdout line: ${line}\n`;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `cond` holds; fails with the child's stderr if it exits first or time runs out. */
  async until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.exitInfo)
        throw new Error(
          `writer exited (${JSON.stringify(this.exitInfo)}) before ${what}; stderr:\n${this.stderr}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ready(): Promise<void> {
    return this.until("ready", () => this.isReady);
  }

  /** Releases a gated writer; it starts writing at `startAt` (epoch ms), or at once. */
  go(startAt = 0): void {
    this.child.stdin!.write(`go ${startAt}\n`);
  }

  /** Interactive mode: sends these debits at once and waits until all are answered. */
  async send(ids: readonly string[]): Promise<void> {
    const target = this.sent + 1;
    this.child.stdin!.write(`send ${ids.join(" ")}\n`);
    await this.until(`answers to ${ids.join(" ")}`, () => this.sent >= target);
  }

  /** Interactive mode: lets the writer finish. */
  end(): void {
    this.child.stdin!.write("end\n");
  }

  /** Waits for `done` and a clean exit. */
  async finish(timeoutMs = 30_000): Promise<void> {
    await this.until("done", () => this.done, timeoutMs);
    const { code, signal } = await this.exited;
    if (code !== 0) throw new Error(`writer exited with ${code ?? signal}; stderr:\n${this.stderr}`);
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    if (this.exitInfo) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** Starts writers, waits until all are ready, then releases them at once (their specs must set gate). */
export async function startTogether(writers: Writer[]): Promise<void> {
  await Promise.all(writers.map((w) => w.ready()));
  const startAt = Date.now() + 100;
  for (const w of writers) w.go(startAt);
}

/** Kills every writer still running (for afterEach/afterAll). */
export async function killAllWriters(): Promise<void> {
  const exits = [...live].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once("close", () => resolve());
        c.kill("SIGKILL");
      }),
  );
  await Promise.all(exits);
}
