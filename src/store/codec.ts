import type { Metadata, Part, UsagePart } from "../ledger/types.ts";

/** Parts are stored as JSON text with amounts as strings, identically on both stores. */
export function encodeParts(parts: readonly (Part | UsagePart)[]): string {
  return JSON.stringify(
    parts.map((p) =>
      "refunded" in p
        ? [p.grant_id, p.kind, p.amount.toString(), p.refunded.toString()]
        : [p.grant_id, p.kind, p.amount.toString()],
    ),
  );
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
