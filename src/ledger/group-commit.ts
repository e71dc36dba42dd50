import type { Store } from "../store/types.ts";
import type { Clock } from "../domain/clock.ts";
import type { CommitInfo } from "../events/types.ts";
import type { Command } from "./types.ts";
import { StoreExecutor, type BatchExecutor, type Outcome } from "./execute-batch.ts";

export interface GroupCommitOptions {
  /** Most commands in one transaction. */
  maxBatch: number;
  /** Longest a command waits for batch-mates before its batch starts (when a slot is free). */
  maxWaitMs: number;
  /**
   * Independent lanes, each committing one batch at a time. Commands are routed by account, so batches in
   * flight at once touch different accounts and never wait for each other's locks (1 for SQLite: one
   * connection; several for PostgreSQL).
   */
  lanes: number;
  /** Retries of a single command after a transient store error (deadlock, serialization, unique race). */
  retries: number;
  /** Told after each durable commit what it changed (listeners must not throw; errors are swallowed). */
  onCommit?: (info: CommitInfo) => void;
  /** Runs each batch's transaction; by default in this thread, on `store`. */
  executor?: BatchExecutor;
}

interface Pending {
  cmd: Command;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Groups concurrent commands into one transaction and one durable commit. A command refused by a domain
 * rule fails alone; if the batch's transaction itself fails (a store error), each command is re-run in a
 * transaction of its own so that only the culprit fails.
 */
export class GroupCommitter {
  private readonly lanes: Lane[];
  private readonly executor: BatchExecutor;
  readonly stats = { batches: 0, commands: 0, splits: 0, retries: 0 };

  constructor(
    store: Store,
    clock: Clock,
    readonly opts: GroupCommitOptions,
  ) {
    const n = Math.max(1, Math.floor(opts.lanes));
    this.executor = opts.executor ?? new StoreExecutor(store);
    this.lanes = Array.from({ length: n }, () => new Lane(this.executor, clock, opts, this.stats));
  }

  submit(cmd: Command): Promise<unknown> {
    const lane =
      this.lanes.length === 1 ? this.lanes[0]! : this.lanes[hash(laneKey(cmd)) % this.lanes.length]!;
    return lane.submit(cmd);
  }

  async drain(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.drain()));
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.close()));
    await this.executor.close();
  }
}

/** The key a command is routed by: its account when it names one, else the object it names. */
function laneKey(cmd: Command): string {
  switch (cmd.type) {
    case "create_account":
      return cmd.input.id ?? "";
    case "grant":
    case "debit":
    case "hold":
      return cmd.input.account_id;
    case "settle":
    case "set_account_status":
    case "set_account_overage":
      return cmd.account_id;
    case "void_grant":
    case "reclassify_grant":
      return cmd.grant_id;
    case "capture":
    case "extend_hold":
    case "capture_part":
      return cmd.input.hold_id;
    case "release":
      return cmd.hold_id;
    case "refund":
      return cmd.input.usage_id;
  }
}

/** FNV-1a: cheap and stable. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One queue that commits one batch at a time. */
class Lane {
  private queue: Pending[] = [];
  private inFlight = 0;
  /** Batches handed to the executor and not yet answered (see BatchExecutor.pipeline). */
  private readonly depth: number;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly executor: BatchExecutor,
    private readonly clock: Clock,
    private readonly opts: GroupCommitOptions,
    /** Counters shared by all lanes, for metrics and benchmarks. */
    private readonly stats: GroupCommitter["stats"],
  ) {
    this.depth = Math.max(1, executor.pipeline ?? 1);
  }

  submit(cmd: Command): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("engine is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ cmd, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.inFlight >= this.depth || this.queue.length === 0) return;
    if (this.queue.length >= this.opts.maxBatch) {
      // A full batch goes at the next turn of the event loop, never inside the caller's stack.
      if (!this.immediate) this.immediate = setImmediate(() => this.flush());
      return;
    }
    if (!this.immediate) this.immediate = setImmediate(() => this.flush());
    if (!this.timer && this.opts.maxWaitMs > 0)
      this.timer = setTimeout(() => this.flush(), this.opts.maxWaitMs);
  }

  private flush(): void {
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.inFlight < this.depth && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.inFlight++;
      void this.runBatch(batch).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.schedule();
        else if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    this.stats.batches++;
    this.stats.commands += batch.length;
    try {
      const outcomes = await this.execute(batch.map((p) => p.cmd));
      outcomes.forEach((o, i) => (o.ok ? batch[i]!.resolve(o.value) : batch[i]!.reject(o.error)));
    } catch (err) {
      if (batch.length > 1) {
        this.stats.splits++;
        for (const p of batch) await this.runAlone(p);
      } else {
        await this.runAlone(batch[0]!, err);
      }
    }
  }

  private async runAlone(p: Pending, firstError?: unknown): Promise<void> {
    let lastError = firstError;
    const attempts = firstError === undefined ? this.opts.retries + 1 : this.opts.retries;
    for (let i = 0; i < attempts; i++) {
      if (lastError !== undefined && !isTransient(lastError)) break;
      try {
        const [o] = await this.execute([p.cmd]);
        if (o!.ok) p.resolve(o!.value);
        else p.reject(o!.error);
        return;
      } catch (err) {
        this.stats.retries++;
        lastError = err;
      }
    }
    p.reject(lastError);
  }

  private async execute(cmds: Command[]): Promise<Outcome[]> {
    const { outcomes, info } = await this.executor.execute(cmds, this.clock.now());
    if (info && this.opts.onCommit) {
      try {
        this.opts.onCommit(info);
      } catch {
        // A listener's failure must never fail a commit that already happened.
      }
    }
    return outcomes;
  }

  /** Resolves when nothing is queued or in flight. */
  async drain(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.queue.length > 0 || this.inFlight > 0) await this.drain();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
  }
}

/** Store errors worth one more try: unique races between processes, deadlocks, serialization, busy. */
function isTransient(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return (
    code === "23505" ||
    code === "40001" ||
    code === "40P01" ||
    code === "SQLITE_BUSY" ||
    code === "SQLITE_BUSY_SNAPSHOT" ||
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}
