import type { Credential } from "./api.ts";

export interface Session extends Credential {
  /** What to show as "signed in as". */
  label: string;
}

// sessionStorage: a tab's sign-in ends with the tab, and is never shared with other sites.
const KEY = "tally.session";

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return (s.kind === "customer" || s.kind === "operator") && typeof s.secret === "string" ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}
