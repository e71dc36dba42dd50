import type { Metadata, Part, UsagePart } from "../ledger/types.ts";

/**
 * Parts are stored as JSON text with amounts as strings, identically on both stores. Built by hand (it runs
 * for every usage and hold written): the same text as `JSON.stringify` of `[[grant_id, kind, "amount"
 * (, "refunded")], …]`, with the two strings still escaped by `JSON.stringify`.
 */
export function encodeParts(parts: readonly (Part | UsagePart)[]): string {
  let out = "[";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i > 0) out += ",";
    out += `[${JSON.stringify(p.grant_id)},${JSON.stringify(p.kind)},"${p.amount}"`;
    out += "refunded" in p ? `,"${p.refunded}"]` : "]";
  }
  return out + "]";
}

/** Metadata as stored: `{}` without a trip through `JSON.stringify` for the common empty object. */
export function encodeMetadata(m: Metadata): string {
  if (m === null || typeof m !== "object" || Array.isArray(m)) return JSON.stringify(m);
  for (const key in m) if (Object.hasOwn(m, key)) return JSON.stringify(m);
  return "{}";
}

export function decodeParts(text: string): Part[] {
  return (JSON.parse(text) as [string, Part["kind"], string][]).map(([grant_id, kind, amount]) => ({
    grant_id,
    kind,
    amount: BigInt(amount),
  }));
}

export function decodeUsageParts(text: string): UsagePart[] {
  return (JSON.parse(text) as [string, Part["kind"], string, string][]).map(
    ([grant_id, kind, amount, refunded]) => ({
      grant_id,
      kind,
      amount: BigInt(amount),
      refunded: BigInt(refunded ?? "0"),
    }),
  );
}

export function decodeMetadata(value: unknown): Metadata {
  if (value === null || value === undefined) return {};
  if (typeof value === "string") return JSON.parse(value) as Metadata;
  return value as Metadata;
}

export function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

export function big(v: unknown): bigint {
  return typeof v === "bigint" ? v : BigInt(v as string | number);
}

export function bigOrNull(v: unknown): bigint | null {
  return v === null || v === undefined ? null : big(v);
}
