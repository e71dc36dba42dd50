import { isTallyError } from "../domain/errors.ts";
import type { CommitInfo } from "../events/types.ts";
import type { Store } from "../store/types.ts";
import { applyCommand, keysOf } from "./apply.ts";
import type { Command } from "./types.ts";
import { Working, type ChangeSet } from "./working.ts";

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** What one batch's transaction produced: a result per command, and what the commit changed (if anything). */
export interface BatchOutcome {
  outcomes: Outcome[];
  info: CommitInfo | null;
}

/**
 * Runs a batch of commands as one transaction. Throws when the transaction itself failed (a store error:
 * nothing was committed); a command refused by a domain rule is an outcome, not a throw.
 */
export interface BatchExecutor {
  execute(cmds: Command[], now: number): Promise<BatchOutcome>;
  /**
   * Batches a lane may hand over before the first is answered (default 1). An executor that runs its
   * batches strictly in arrival order elsewhere (the writer thread) takes 2, so it never waits idle while
   * this thread gets round to answering the last batch and sending the next.
   */
  readonly pipeline?: number;
  close(): Promise<void>;
}

/** Runs each batch in this thread, on the given store (the store is closed by its owner, not here). */
export class StoreExecutor implements BatchExecutor {
  constructor(private readonly store: Store) {}

  execute(cmds: Command[], now: number): Promise<BatchOutcome> {
    return executeBatch(this.store, cmds, now);
  }

  async close(): Promise<void> {}
}

/** One transaction: load what the commands touch, apply them in memory, write the changes, commit. */
export async function executeBatch(store: Store, cmds: Command[], now: number): Promise<BatchOutcome> {
  let written: ChangeSet | null = null;
  const outcomes = await store.runBatch(keysOf(cmds), now, (snap) => {
    const w = new Working(snap);
    const outcomes: Outcome[] = cmds.map((cmd) => {
      try {
        return { ok: true, value: applyCommand(w, cmd, now) };
      } catch (error) {
        // A domain refusal changed nothing; anything else may have left the batch half-applied.
        if (isTallyError(error)) return { ok: false, error };
        throw error;
      }
    });
    written = w.changes();
    return { changes: written, result: outcomes };
  });
  return { outcomes, info: written ? commitInfo(written) : null };
}

/** The accounts a commit touched and the events it wrote, for listeners (null when it changed nothing). */
function commitInfo(c: ChangeSet): CommitInfo | null {
  const accounts = new Set<string>();
  for (const p of c.postings) accounts.add(p.account_id);
  for (const a of c.accounts.inserted) accounts.add(a.id);
  for (const a of c.accounts.updated) accounts.add(a.id);
  if (accounts.size === 0 && c.events.length === 0) return null;
  return { account_ids: [...accounts], events: c.events };
}
