import { checkAmount } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import { EVENT_LIMITS, EVENT_TYPE_PATTERN, type EventDraft } from "../events/types.ts";
import { GRANT_KINDS, LIMITS, type Command, type Metadata } from "./types.ts";

/** Shape and range checks that need no stored state. Throws a validation error naming the field. */
export function validateCommand(cmd: Command): void {
  if ("input" in cmd && "events" in cmd.input) checkEvents(cmd.input.events);
  switch (cmd.type) {
    case "create_account": {
      const i = cmd.input;
      if (i.id !== undefined) checkId(i.id, "id");
      if (i.overage_policy !== undefined && i.overage_policy !== "block" && i.overage_policy !== "allow")
        throw TallyError.validation("overage_policy", "must be block or allow");
      if (i.overage_limit !== undefined && i.overage_limit !== null)
        checkAmount(i.overage_limit, "overage_limit", { allowZero: true });
      checkMetadata(i.metadata, "metadata");
      return;
    }
    case "grant": {
      const i = cmd.input;
      if (i.id !== undefined) checkId(i.id, "id");
      checkId(i.account_id, "account_id");
      if (!GRANT_KINDS.includes(i.kind))
        throw TallyError.validation("kind", `must be one of ${GRANT_KINDS.join(", ")}`);
      checkAmount(i.amount, "amount");
      if (
        i.priority !== undefined &&
        (!Number.isInteger(i.priority) || i.priority < 0 || i.priority > LIMITS.MAX_PRIORITY)
      )
        throw TallyError.validation("priority", `must be an integer from 0 to ${LIMITS.MAX_PRIORITY}`);
      if (i.effective_at !== undefined) checkTime(i.effective_at, "effective_at");
      if (i.expires_at !== undefined && i.expires_at !== null) {
        checkTime(i.expires_at, "expires_at");
        if (i.effective_at !== undefined && i.expires_at <= i.effective_at)
          throw TallyError.validation("expires_at", "must be after effective_at");
      }
      checkMetadata(i.metadata, "metadata");
      if (i.reference != null) checkText(i.reference, "reference", 256);
      if (i.source != null) checkText(i.source, "source", 256);
      return;
    }
    case "void_grant":
      checkId(cmd.grant_id, "grant_id");
      if (cmd.reason != null) checkText(cmd.reason, "reason", 1024);
      return;
    case "debit": {
      const i = cmd.input;
      checkId(i.id, "id");
      checkId(i.account_id, "account_id");
      checkAmount(i.amount, "amount", { allowZero: true });
      checkText(i.service, "service", LIMITS.MAX_SERVICE_LENGTH);
      if (i.quantity != null) checkText(i.quantity, "quantity", 512);
      if (i.occurred_at !== undefined) checkTime(i.occurred_at, "occurred_at");
      if (i.api_key_id != null) checkId(i.api_key_id, "api_key_id");
      checkMetadata(i.metadata, "metadata");
      return;
    }
    case "hold": {
      const i = cmd.input;
      if (i.id !== undefined) checkId(i.id, "id");
      checkId(i.account_id, "account_id");
      checkAmount(i.amount, "amount");
      if (i.ttl_ms !== undefined) {
        if (!Number.isInteger(i.ttl_ms) || i.ttl_ms <= 0 || i.ttl_ms > LIMITS.MAX_HOLD_TTL_MS)
          throw TallyError.validation("ttl_ms", `must be an integer from 1 to ${LIMITS.MAX_HOLD_TTL_MS}`);
      }
      if (i.expires_at !== undefined) checkTime(i.expires_at, "expires_at");
      checkMetadata(i.metadata, "metadata");
      return;
    }
    case "capture": {
      const i = cmd.input;
      checkId(i.hold_id, "hold_id");
      checkAmount(i.amount, "amount", { allowZero: true });
      if (i.usage_id !== undefined) checkId(i.usage_id, "usage_id");
      checkText(i.service, "service", LIMITS.MAX_SERVICE_LENGTH);
      if (i.quantity != null) checkText(i.quantity, "quantity", 64);
      checkMetadata(i.metadata, "metadata");
      return;
    }
    case "release":
      checkId(cmd.hold_id, "hold_id");
      return;
    case "extend_hold": {
      const i = cmd.input;
      checkId(i.hold_id, "hold_id");
      checkAmount(i.amount, "amount", { allowZero: true });
      if (i.from_amount !== undefined) checkAmount(i.from_amount, "from_amount");
      if (i.expires_at !== undefined) checkTime(i.expires_at, "expires_at");
      return;
    }
    case "capture_part": {
      const i = cmd.input;
      checkId(i.hold_id, "hold_id");
      checkAmount(i.amount, "amount");
      checkId(i.usage_id, "usage_id");
      checkText(i.service, "service", LIMITS.MAX_SERVICE_LENGTH);
      if (i.quantity != null) checkText(i.quantity, "quantity", 64);
      checkMetadata(i.metadata, "metadata");
      if (i.from_captured !== undefined) checkAmount(i.from_captured, "from_captured", { allowZero: true });
      return;
    }
    case "refund": {
      const i = cmd.input;
      if (i.id !== undefined) checkId(i.id, "id");
      checkId(i.usage_id, "usage_id");
      if (i.amount !== undefined) checkAmount(i.amount, "amount");
      if (i.reason != null) checkText(i.reason, "reason", 1024);
      return;
    }
    case "settle":
      checkId(cmd.account_id, "account_id");
      return;
    case "set_account_overage":
      checkId(cmd.account_id, "account_id");
      if (cmd.overage_policy !== "block" && cmd.overage_policy !== "allow")
        throw TallyError.validation("overage_policy", "must be block or allow");
      if (cmd.overage_limit !== null) checkAmount(cmd.overage_limit, "overage_limit", { allowZero: true });
      return;
    case "reclassify_grant":
      checkId(cmd.grant_id, "grant_id");
      if (!GRANT_KINDS.includes(cmd.kind))
        throw TallyError.validation("kind", `must be one of ${GRANT_KINDS.join(", ")}`);
      if (!Number.isInteger(cmd.priority) || cmd.priority < 0 || cmd.priority > LIMITS.MAX_PRIORITY)
        throw TallyError.validation("priority", `must be an integer from 0 to ${LIMITS.MAX_PRIORITY}`);
      return;
    case "set_account_status":
      checkId(cmd.account_id, "account_id");
      if (!["active", "suspended", "closed"].includes(cmd.status))
        throw TallyError.validation("status", "must be active, suspended or closed");
      return;
  }
}

const ID_CHARS = /^[A-Za-z0-9_\-.:]+$/;

export function checkId(value: unknown, field: string): void {
  if (typeof value !== "string" || value.length === 0)
    throw TallyError.validation(field, "must be a non-empty string");
  if (value.length > LIMITS.MAX_ID_LENGTH)
    throw TallyError.validation(field, `must be at most ${LIMITS.MAX_ID_LENGTH} characters`);
  if (!ID_CHARS.test(value))
    throw TallyError.validation(field, "may contain only letters, digits and _ - . :");
}

function checkText(value: unknown, field: string, max: number): void {
  if (typeof value !== "string" || value.length === 0)
    throw TallyError.validation(field, "must be a non-empty string");
  if (value.length > max) throw TallyError.validation(field, `must be at most ${max} characters`);
}

/** Epoch ms within a sane range (year 2000 to 2200). */
export function checkTime(value: unknown, field: string): void {
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < 946_684_800_000 ||
    value > 7_258_118_400_000
  )
    throw TallyError.validation(field, "must be a time between 2000 and 2200");
}

function checkMetadata(value: Metadata | undefined, field: string): void {
  if (value === undefined) return;
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw TallyError.validation(field, "must be an object");
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    throw TallyError.validation(field, "must be JSON");
  }
  if (Buffer.byteLength(text) > LIMITS.MAX_METADATA_BYTES)
    throw TallyError.validation(field, `must be at most ${LIMITS.MAX_METADATA_BYTES} bytes of JSON`);
}

/** Events a command carries: a few, well named, small, each about one account or none. */
export function checkEvents(
  events: readonly EventDraft[] | undefined,
  max: number = EVENT_LIMITS.MAX_EVENTS_PER_COMMAND,
): void {
  if (events === undefined) return;
  if (!Array.isArray(events) || events.length > max)
    throw TallyError.validation("events", `must be a list of at most ${max}`);
  events.forEach((e, i) => {
    if (
      typeof e?.type !== "string" ||
      e.type.length > EVENT_LIMITS.MAX_TYPE_LENGTH ||
      !EVENT_TYPE_PATTERN.test(e.type)
    )
      throw TallyError.validation(`events[${i}].type`, "must look like object.verb (lowercase, dots)");
    if (e.account_id !== null) checkId(e.account_id, `events[${i}].account_id`);
    if (e.data === null || typeof e.data !== "object" || Array.isArray(e.data))
      throw TallyError.validation(`events[${i}].data`, "must be an object");
    let text: string;
    try {
      text = JSON.stringify(e.data);
    } catch {
      throw TallyError.validation(`events[${i}].data`, "must be JSON");
    }
    if (Buffer.byteLength(text) > EVENT_LIMITS.MAX_DATA_BYTES)
      throw TallyError.validation(
        `events[${i}].data`,
        `must be at most ${EVENT_LIMITS.MAX_DATA_BYTES} bytes of JSON`,
      );
  });
}
