import { TallyError } from "../domain/errors.ts";

/** Canonical JSON (sorted keys, bigint as string) so that equal requests have equal text. */
export function canonical(value: unknown): string {
  return JSON.stringify(normalize(value));
}

function normalize(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value === undefined) return null;
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      out[key] = normalize((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** The request fields that identify a command, kept with the record it created. */
export function requestText(fields: Record<string, unknown>): string {
  return canonical(fields);
}

/**
 * Compares a new request to the stored one. Returns normally when they are the same;
 * throws idempotency_conflict naming the first differing field otherwise.
 */
export function assertSameRequest(
  what: string,
  id: string,
  stored: string,
  fields: Record<string, unknown>,
): void {
  assertSameFields(what, id, JSON.parse(stored) as Record<string, unknown>, fields);
}

/** Like assertSameRequest, against fields read back from the stored record. */
export function assertSameFields(
  what: string,
  id: string,
  stored: Record<string, unknown>,
  fields: Record<string, unknown>,
): void {
  const before = JSON.parse(canonical(stored)) as Record<string, unknown>;
  const now = JSON.parse(canonical(fields)) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].sort();
  for (const key of keys) {
    if (canonical(before[key]) !== canonical(now[key])) {
      throw new TallyError("idempotency_conflict", `${what} ${id} already exists with a different ${key}`, {
        field: key,
        id,
      });
    }
  }
}
