import { formatCredits } from "../domain/amount.ts";

/** JSON for people and scripts: bigint amounts become decimal credit strings, times ISO 8601. */
export function toPlain(value: unknown, key = ""): unknown {
  if (typeof value === "bigint") return formatCredits(value);
  if (typeof value === "number" && /(_at|^at)$/.test(key)) return new Date(value).toISOString();
  if (Array.isArray(value)) return value.map((v) => toPlain(v));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "request") continue;
      out[k] = toPlain(v, k);
    }
    return out;
  }
  return value;
}

export function print(value: unknown, json: boolean): void {
  const plain = toPlain(value);
  if (json) {
    console.log(JSON.stringify(plain));
    return;
  }
  console.log(JSON.stringify(plain, null, 2));
}
