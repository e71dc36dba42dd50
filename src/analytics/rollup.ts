/**
 * The hourly usage rollup, kept in the same transaction as the usage it sums (so analytics never lag and
 * never double count): what a batch's changes add to each (account, hour, service) row. Usage counts in the
 * hour it was recorded; a refund is taken off the hour of the usage it refunds.
 */
import { hourStart } from "../domain/analytics.ts";
import type { UsageRecord } from "../ledger/types.ts";
import type { ChangeSet } from "../ledger/working.ts";

export interface HourlyDelta {
  account_id: string;
  hour: number;
  service: string;
  credits: bigint;
  refunded: bigint;
  events: number;
  quantity: number;
}

export function hourlyDeltas(c: ChangeSet): HourlyDelta[] {
  const rows = new Map<string, HourlyDelta>();
  const row = (u: UsageRecord): HourlyDelta => {
    const hour = hourStart(u.recorded_at);
    const key = `${u.account_id}\u0000${hour}\u0000${u.service}`;
    let r = rows.get(key);
    if (!r) {
      r = {
        account_id: u.account_id,
        hour,
        service: u.service,
        credits: 0n,
        refunded: 0n,
        events: 0,
        quantity: 0,
      };
      rows.set(key, r);
    }
    return r;
  };
  for (const u of c.usages.inserted) {
    const r = row(u);
    r.credits += u.cost;
    r.events += 1;
    const q = u.quantity === null ? 0 : Number(u.quantity);
    if (Number.isFinite(q)) r.quantity += q;
  }
  if (c.refunds.inserted.length > 0) {
    const byId = new Map<string, UsageRecord>();
    for (const u of c.usages.updated) byId.set(u.id, u);
    for (const u of c.usages.inserted) byId.set(u.id, u);
    for (const f of c.refunds.inserted) {
      const u = byId.get(f.usage_id);
      if (u) row(u).refunded += f.amount;
    }
  }
  return [...rows.values()];
}
