import type { CustomerUsage } from "../api.ts";

const DAY_MS = 86_400_000;

function dayStart(t: number): number {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** Credits per local day for the last `days` days (oldest first), x in unix seconds for uPlot. */
export function dailySeries(rows: CustomerUsage[], days: number, now = Date.now()) {
  const first = dayStart(now - (days - 1) * DAY_MS);
  const x: number[] = [];
  const y: number[] = [];
  const index = new Map<number, number>();
  for (let t = first, i = 0; i < days; i++) {
    index.set(t, i);
    x.push(t / 1000);
    y.push(0);
    // Step by calendar day (DST-safe): the next local midnight.
    const n = new Date(t);
    n.setDate(n.getDate() + 1);
    t = n.getTime();
  }
  for (const r of rows) {
    const i = index.get(dayStart(Date.parse(r.created_at)));
    if (i !== undefined) y[i] = (y[i] ?? 0) + r.credits_used;
  }
  return { x, y };
}

/** Credits and event count per service, largest first. */
export function byService(rows: CustomerUsage[]) {
  const m = new Map<string, { credits: number; count: number }>();
  for (const r of rows) {
    const s = m.get(r.service_type) ?? { credits: 0, count: 0 };
    s.credits += r.credits_used;
    s.count += 1;
    m.set(r.service_type, s);
  }
  return [...m.entries()]
    .map(([service, v]) => ({ service, ...v }))
    .sort((a, b) => b.credits - a.credits || a.service.localeCompare(b.service));
}

export function sum(rows: CustomerUsage[], since = 0): number {
  let s = 0;
  for (const r of rows) if (Date.parse(r.created_at) >= since) s += r.credits_used;
  // Round away float noise from adding micro-credit decimals.
  return Math.round(s * 1e6) / 1e6;
}

/** RFC 4180 CSV of usage rows. */
export function usageCsv(rows: CustomerUsage[]): string {
  const cols = [
    "id",
    "created_at",
    "service_type",
    "credits_used",
    "credit_source",
    "audio_duration",
    "usage_metadata",
  ];
  const cell = (v: unknown) => {
    const s = typeof v === "string" ? v : JSON.stringify(v ?? "");
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [cols.join(",")];
  for (const r of rows) lines.push(cols.map((c) => cell(r[c as keyof CustomerUsage])).join(","));
  return lines.join("\r\n") + "\r\n";
}
