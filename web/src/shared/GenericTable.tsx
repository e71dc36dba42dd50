import { fmtDate } from "../format.ts";

/** A table of records whose exact shape comes from a newer server: chosen columns, or the first row's fields. */
export function GenericTable({
  rows,
  columns,
  caption,
  testId,
}: {
  rows: Record<string, unknown>[];
  columns?: string[];
  caption: string;
  testId?: string;
}) {
  const cols = (columns ?? Object.keys(rows[0] ?? {}))
    .filter((c) => rows.some((r) => r[c] !== undefined))
    .slice(0, 9);
  return (
    <div className="table-wrap">
      <table data-testid={testId}>
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            {cols.map((c) => (
              <th scope="col" key={c}>
                {c.replace(/_/g, " ")}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={String(r.id ?? i)}>
              {cols.map((c) => (
                <td key={c} className={c === "id" ? "mono" : undefined}>
                  {cell(c, r[c])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function cell(col: string, v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "string" && col.endsWith("_at")) return fmtDate(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function listOf(body: unknown): Record<string, unknown>[] {
  if (Array.isArray(body)) return body as Record<string, unknown>[];
  const d = (body as { data?: unknown } | null)?.data;
  return Array.isArray(d) ? (d as Record<string, unknown>[]) : [];
}
