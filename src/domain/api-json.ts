import { formatCredits } from "./amount.ts";

/**
 * API JSON: amounts as exact decimal strings of credits ("12.5"), times as ISO 8601, no internal fields.
 * Numbers would lose micro-credits beyond 2^53; strings never do.
 */
export function toApi(value: unknown, key = ""): unknown {
  if (typeof value === "bigint") return formatCredits(value);
  if (typeof value === "number" && (key.endsWith("_at") || key === "at"))
    return new Date(value).toISOString();
  if (value === null || value === undefined) return value ?? null;
  if (Array.isArray(value)) return value.map((v) => toApi(v));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (HIDDEN.has(k)) continue;
      out[k] = toApi(v, k);
    }
    return out;
  }
  return value;
}

const HIDDEN = new Set(["request", "order_key"]);
