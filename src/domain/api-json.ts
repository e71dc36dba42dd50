import { formatCredits } from "./amount.ts";

/**
 * API JSON: amounts as exact decimal strings of credits ("12.5"), times as ISO 8601, no internal fields.
 * Numbers would lose micro-credits beyond 2^53; strings never do.
 *
 * Every answer passes through here (and every ledger event), so it is written for speed: a switch on the
 * type, indexed loops, no Object.entries arrays. What it returns is unchanged: a key ending in `_at` (or
 * `at`) turns a number into an ISO time at any depth, undefined becomes null, `request` and `order_key` are
 * dropped at any depth, and array holes become null.
 */
export function toApi(value: unknown, key = ""): unknown {
  switch (typeof value) {
    case "bigint":
      return formatCredits(value);
    case "number":
      return key.endsWith("_at") || key === "at" ? isoTime(value) : value;
    case "undefined":
      return null;
    case "object": {
      if (value === null) return null;
      if (Array.isArray(value)) {
        const n = value.length;
        const arr = new Array<unknown>(n);
        for (let i = 0; i < n; i++) arr[i] = toApi(value[i]);
        return arr;
      }
      const obj = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      const keys = Object.keys(obj);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (k === "request" || k === "order_key") continue;
        out[k] = toApi(obj[k], k);
      }
      return out;
    }
    default:
      return value;
  }
}

/**
 * The last two times formatted: a batch answer repeats the same recorded_at (and often occurred_at) a
 * thousand times, and toISOString costs ~0.4 µs. An invalid time is never kept, so it throws as before.
 */
let ms0 = NaN;
let iso0 = "";
let ms1 = NaN;
let iso1 = "";
function isoTime(ms: number): string {
  if (ms === ms0) return iso0;
  if (ms === ms1) return iso1;
  const iso = new Date(ms).toISOString();
  ms1 = ms0;
  iso1 = iso0;
  ms0 = ms;
  iso0 = iso;
  return iso;
}
