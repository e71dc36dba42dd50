import { TallyError } from "../domain/errors.ts";
import { Type } from "@sinclair/typebox";

/** Credits as a decimal string ("12.5") or a JSON number; parsed exactly by parseCredits. */
export const Credits = Type.Union([Type.String({ maxLength: 32 }), Type.Number()], {
  description: "credits, up to 6 decimals: a decimal string (exact) or a number",
});
export const Id = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_\\-.:]+$" });
export const Time = Type.String({ format: "date-time", description: "ISO 8601 time" });
export const Metadata = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 64 });
export const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: 100 });
export const Cursor = Type.String({ maxLength: 128 });

/** Parses an ISO time field into epoch ms, or a validation error naming it. */
export function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw TallyError.validation(field, "must be an ISO 8601 time");
  return t;
}
