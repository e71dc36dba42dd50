import { createHash } from "node:crypto";
import { TallyError } from "../domain/errors.ts";
import type { Engine } from "../ledger/engine.ts";
import type { AccountRecord } from "../ledger/types.ts";
import type { Store } from "../store/types.ts";

/** The one-time promotional grant for new accounts ("free tier credits"). */
export interface SignupGrantSettings {
  /** Micro-credits; 0 = off. */
  amount: bigint;
  /** Lifetime from the account's creation, in days; null = never expires. */
  expires_in_days: number | null;
  /** Accounts created before this instant (when the setting was saved) get nothing. */
  since: number;
}

const KEY = "signup_grant";
const DAY_MS = 86_400_000;
export const MAX_SIGNUP_DAYS = 3650;

export async function loadSignupGrant(store: Store): Promise<SignupGrantSettings | null> {
  const text = await store.getSetting(KEY);
  if (!text) return null;
  const j = JSON.parse(text) as { amount: string; expires_in_days: number | null; since: number };
  return { amount: BigInt(j.amount), expires_in_days: j.expires_in_days, since: j.since };
}

export async function saveSignupGrant(
  store: Store,
  s: { amount: bigint; expires_in_days: number | null },
  now: number,
): Promise<SignupGrantSettings> {
  if (s.amount < 0n) throw TallyError.validation("amount", "must not be negative");
  if (
    s.expires_in_days !== null &&
    (!Number.isInteger(s.expires_in_days) || s.expires_in_days < 1 || s.expires_in_days > MAX_SIGNUP_DAYS)
  )
    throw TallyError.validation(
      "expires_in_days",
      `must be an integer from 1 to ${MAX_SIGNUP_DAYS}, or null`,
    );
  const saved = { amount: s.amount, expires_in_days: s.expires_in_days, since: now };
  await store.putSetting(KEY, JSON.stringify({ ...saved, amount: saved.amount.toString() }));
  return saved;
}

export function signupGrantId(accountId: string): string {
  return `grt_signup_${createHash("sha256").update(accountId).digest("base64url").slice(0, 26)}`;
}

/**
 * Gives a new account its signup grant once (the grant id is derived from the account, so calling this
 * again, from a retried create or another process, is a replay). Nothing when the setting is off, the
 * account predates it, or the grant would already have expired.
 */
export async function applySignupGrant(engine: Engine, account: AccountRecord): Promise<void> {
  const s = await loadSignupGrant(engine.store);
  if (!s || s.amount === 0n || account.created_at < s.since || account.status === "closed") return;
  const expires = s.expires_in_days === null ? null : account.created_at + s.expires_in_days * DAY_MS;
  if (expires !== null && expires <= engine.clock.now()) return;
  try {
    await engine.grant({
      id: signupGrantId(account.id),
      account_id: account.id,
      kind: "promotional",
      amount: s.amount,
      expires_at: expires,
      source: "signup",
      reference: account.id,
      metadata: { reason: "signup" },
    });
  } catch (e) {
    // Granted already under earlier settings: that grant stands.
    if (!(e instanceof TallyError && e.code === "idempotency_conflict")) throw e;
  }
}
