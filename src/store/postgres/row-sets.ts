/**
 * Several tables' rows from one statement (one round trip, one snapshot): a UNION ALL of branches, each
 * tagged with its kind and every column cast to text (what the text protocol sends anyway), padded to a
 * common width. Read with `rowMode: "array"` and split back into rows by kind; the row mappers take the
 * text of 64-bit and JSON columns as they take PostgreSQL's own values.
 */
type Row = Record<string, unknown>;

export const COLUMNS = {
  account: [
    "id",
    "overage_policy",
    "overage_limit",
    "overage_balance",
    "granted_total",
    "status",
    "metadata",
    "created_at",
    "request",
  ],
  grant: [
    "id",
    "account_id",
    "kind",
    "amount",
    "remaining",
    "priority",
    "effective_at",
    "expires_at",
    "created_at",
    "order_key",
    "status",
    "closed_at",
    "source",
    "reference",
    "metadata",
    "request",
  ],
  hold: [
    "id",
    "account_id",
    "amount",
    "parts",
    "status",
    "expires_at",
    "created_at",
    "closed_at",
    "captured_amount",
    "usage_id",
    "metadata",
    "request",
  ],
  usage: [
    "id",
    "account_id",
    "service",
    "quantity",
    "cost",
    "overage",
    "overage_refunded",
    "refunded",
    "parts",
    "hold_id",
    "occurred_at",
    "recorded_at",
    "metadata",
    "txn_id",
  ],
  refund: ["id", "usage_id", "account_id", "amount", "reason", "created_at", "txn_id", "request"],
  budget: ["id", "account_id", "api_key_id", "limit_amount", "spent"],
} as const;

export type Kind = keyof typeof COLUMNS;
const WIDTH = Math.max(...Object.values(COLUMNS).map((c) => c.length));

/** `SELECT 'kind', alias.col::text, …, NULL, … FROM <from>`: one branch of the union. */
export function branch(kind: Kind, alias: string, from: string, exprs: Record<string, string> = {}): string {
  const cols = COLUMNS[kind].map((c) => `(${exprs[c] ?? `${alias}.${c}`})::text`);
  while (cols.length < WIDTH) cols.push("NULL::text");
  return `SELECT '${kind}'::text AS k, ${cols.join(", ")} FROM ${from}`;
}

/** Rows of a `rowMode: "array"` result of branches, by kind, as objects named by COLUMNS. */
export function split(rows: readonly unknown[][]): Record<Kind, Row[]> {
  const out: Record<Kind, Row[]> = { account: [], grant: [], hold: [], usage: [], refund: [], budget: [] };
  for (const r of rows) {
    const kind = r[0] as Kind;
    const names = COLUMNS[kind];
    const o: Row = {};
    for (let i = 0; i < names.length; i++) o[names[i]!] = r[i + 1];
    out[kind].push(o);
  }
  return out;
}
