/** Display helpers: credits, money, dates. Amounts are only displayed here, never computed with. */

const credits = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });
const compact = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

/** A credit amount from either API (a JSON number or an exact decimal string), grouped for reading. */
export function fmtCredits(v: number | string | null | undefined): string {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "string") {
    // Group the integer part of the exact decimal string without going through a float.
    const [int = "0", frac] = v.replace(/^-/, "").split(".");
    const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (v.startsWith("-") ? "-" : "") + grouped + (frac ? "." + frac : "");
  }
  return credits.format(v);
}

export function fmtShort(v: number): string {
  return compact.format(v);
}

export function fmtMoney(v: number | string, currency = "USD"): string {
  const n = typeof v === "string" ? Number(v) : v;
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(n);
  } catch {
    return `${n.toFixed(2)} ${currency}`;
  }
}

export function fmtDate(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toLocaleString("en-GB", {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function fmtDay(v: string | number): string {
  return new Date(v).toLocaleDateString("en-GB", { month: "short", day: "numeric" });
}

/** Whole days from now until `iso` (0 when past), or null without a date. */
export function daysUntil(iso: string | null, now = Date.now()): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  return Math.max(0, Math.ceil((t - now) / 86_400_000));
}

export function pct(part: number, whole: number): number {
  if (!(whole > 0)) return 0;
  return Math.min(100, Math.max(0, (part / whole) * 100));
}
