import type { Store } from "../src/store/types.ts";

/**
 * Where a store's batch time goes, measured by wrapping the store object (nothing in src/ changes):
 * - `apply`: the engine's in-memory work (burn-down, journal legs, records), the callback of `runBatch`;
 * - `load` / `write`: the store's reads and writes, when the store has such methods (SQLite does);
 * - the rest of `runBatch`: BEGIN and COMMIT — for SQLite the WAL append, checkpoints and fsync.
 * With several batches in flight (PostgreSQL) the sums overlap and exceed wall time.
 */
export interface PhaseTimes {
  batches: number;
  runBatch: number;
  apply: number;
  load: number | null;
  write: number | null;
}

type Fn = (...args: unknown[]) => unknown;

export function instrumentStore(store: Store): PhaseTimes {
  const t: PhaseTimes = { batches: 0, runBatch: 0, apply: 0, load: null, write: null };
  const original = store.runBatch.bind(store);
  store.runBatch = async (keys, now, apply) => {
    const t0 = performance.now();
    try {
      return await original(keys, now, (snap) => {
        const a0 = performance.now();
        try {
          return apply(snap);
        } finally {
          t.apply += performance.now() - a0;
        }
      });
    } finally {
      t.runBatch += performance.now() - t0;
      t.batches++;
    }
  };
  const methods = store as unknown as Record<string, unknown>;
  for (const name of ["load", "write"] as const) {
    const fn = methods[name];
    if (typeof fn !== "function") continue;
    t[name] = 0;
    const bound = (fn as Fn).bind(store);
    const add = (s0: number) => (t[name]! += performance.now() - s0);
    methods[name] = (...args: unknown[]) => {
      const s0 = performance.now();
      let result: unknown;
      try {
        result = bound(...args);
      } catch (err) {
        add(s0);
        throw err;
      }
      // An async store's load/write: count the time until it settles.
      if (result instanceof Promise) return result.finally(() => add(s0));
      add(s0);
      return result;
    };
  }
  return t;
}
