import type { Metadata } from "../ledger/types.ts";
import type { Store } from "../store/types.ts";

/** An event as the outbox takes it (src/events/types.ts on main: EventDraft). */
export interface BillingEvent {
  type: string;
  account_id: string | null;
  data: Metadata;
}

/**
 * Writes events that change no ledger state (auto_recharge.failed, checkout.canceled) to the outbox.
 * Events caused by a ledger change travel with the grant instead, in the same transaction.
 */
export async function appendEvents(store: Store, events: BillingEvent[], now: number): Promise<void> {
  const s = store as Store & { appendEvents?: (e: BillingEvent[], now: number) => Promise<void> };
  if (events.length > 0 && typeof s.appendEvents === "function") await s.appendEvents(events, now);
}
