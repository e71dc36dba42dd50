import { useState, type FormEvent } from "react";
import { ApiError, type CustomerApi, type Pack, type Page } from "../api.ts";
import { fmtCredits, fmtDate, fmtMoney } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

/** An alert rule as GET /api/v1/alerts answers it. */
interface AlertRule {
  id: string;
  kind: string;
  amount?: string;
  percent?: number;
  days?: number;
  hours?: number;
  multiple?: number;
  severity?: string;
  state?: string;
  state_changed_at?: string;
  crossings?: number;
}

interface AutoRechargeRule {
  enabled: boolean;
  threshold: string;
  pack_id: string | null;
  amount_usd: number | null;
  payment_method_id: string;
  max_per_period: number;
  recharges_in_period: number;
  last_success_at: string | null;
  last_failure_at: string | null;
  last_failure_reason: string | null;
}

interface PaymentMethod {
  id: string;
  label: string | null;
  provider: string;
}

/** Each alert kind: its words and the one parameter it takes. */
const KINDS: {
  kind: string;
  label: string;
  param?: "amount" | "percent" | "days" | "hours" | "multiple";
  unit?: string;
}[] = [
  { kind: "balance_below", label: "Balance falls below", param: "amount", unit: "credits" },
  {
    kind: "balance_below_percent",
    label: "Balance falls below a share of the allowance",
    param: "percent",
    unit: "%",
  },
  {
    kind: "usage_above_percent",
    label: "Usage passes a share of the allowance",
    param: "percent",
    unit: "%",
  },
  { kind: "depleted", label: "Credits run out" },
  { kind: "grant_expiring", label: "Credits expire within", param: "days", unit: "days" },
  { kind: "runout_within", label: "Credits are forecast to run out within", param: "hours", unit: "hours" },
  {
    kind: "burn_rate_above",
    label: "Spending rises above the recent average by",
    param: "multiple",
    unit: "×",
  },
];

function describe(r: AlertRule): string {
  const k = KINDS.find((x) => x.kind === r.kind);
  if (!k) return r.kind;
  if (!k.param) return k.label;
  const v = r[k.param];
  return `${k.label} ${k.param === "amount" ? fmtCredits(v as string) : String(v)} ${k.unit}`;
}

export function Alerts({ api }: { api: CustomerApi }) {
  return (
    <>
      <h1>Alerts and auto-recharge</h1>
      <AlertRules api={api} />
      <AutoRechargeSettings api={api} />
    </>
  );
}

function AlertRules({ api }: { api: CustomerApi }) {
  const [rules, reload] = useLoad(() => api.raw<Page<AlertRule>>("GET", "/api/v1/alerts"), [api]);
  const [kind, setKind] = useState("balance_below");
  const [value, setValue] = useState("1000");
  const [error, setError] = useState<Error | null>(null);
  const spec = KINDS.find((k) => k.kind === kind)!;

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const param = spec.param;
      const body: Record<string, unknown> = { kind };
      if (param) body[param] = param === "amount" ? value.trim() : Number(value);
      await api.raw("POST", "/api/v1/alerts", body);
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  const remove = async (r: AlertRule) => {
    setError(null);
    try {
      await api.raw("DELETE", `/api/v1/alerts/${encodeURIComponent(r.id)}`);
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <Card title="Alerts">
      <Show value={rules} what="alerts" feature="Alerts" retry={() => void reload()}>
        {(list) => (
          <>
            <p className="muted">
              Each alert fires once when its condition starts to hold and once more when it stops; your
              operator delivers them to you (email or webhook).
            </p>
            {list.data.length === 0 ? (
              <Empty>No alerts yet. Add one to hear about a low balance before your calls stop.</Empty>
            ) : (
              <ul className="plain-list" data-testid="alert-list">
                {list.data.map((r) => (
                  <li key={r.id}>
                    <strong>{describe(r)}</strong>{" "}
                    <span className={`tag ${r.state === "fired" ? "tag-off" : "tag-active"}`}>
                      {r.state === "fired" ? "firing" : "watching"}
                    </span>
                    {r.crossings ? <span className="muted"> fired {r.crossings} times</span> : null}
                    <button
                      type="button"
                      className="link"
                      onClick={() => void remove(r)}
                      aria-label={`Delete the alert: ${describe(r)}`}
                    >
                      Delete
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <form onSubmit={add} className="inline-form" aria-label="Add an alert">
              <Field label="When">
                {(p) => (
                  <select {...p} value={kind} onChange={(e) => setKind(e.target.value)}>
                    {KINDS.map((k) => (
                      <option key={k.kind} value={k.kind}>
                        {k.label}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              {spec.param && (
                <Field label={`Threshold (${spec.unit})`}>
                  {(p) => (
                    <input
                      {...p}
                      inputMode="decimal"
                      value={value}
                      onChange={(e) => setValue(e.target.value)}
                    />
                  )}
                </Field>
              )}
              <button type="submit" className="primary">
                Add alert
              </button>
            </form>
            {error && <ErrorNote error={error} />}
          </>
        )}
      </Show>
    </Card>
  );
}

function AutoRechargeSettings({ api }: { api: CustomerApi }) {
  // No rule yet is a 404 on the rule, not a missing feature: it shows the empty form.
  const [rule, reload] = useLoad(async () => {
    try {
      return await api.raw<AutoRechargeRule>("GET", "/api/v1/auto-recharge");
    } catch (err) {
      if (err instanceof ApiError && err.code === "not_found" && !err.isMissingRoute) return null;
      throw err;
    }
  }, [api]);
  const [methods] = useLoad(() => api.raw<Page<PaymentMethod>>("GET", "/api/v1/payment-methods"), [api]);
  const [packs] = useLoad(() => api.packs(), [api]);
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const save = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const what = String(f.get("what") ?? "");
    setError(null);
    setSaved(null);
    try {
      await api.raw("PUT", "/api/v1/auto-recharge", {
        enabled: f.get("enabled") === "on",
        threshold: String(f.get("threshold") ?? "").trim(),
        payment_method_id: String(f.get("payment_method_id") ?? ""),
        ...(what.startsWith("pack:")
          ? { pack_id: what.slice(5) }
          : { amount_usd: String(f.get("amount_usd") ?? "").trim() }),
      });
      setSaved("Saved.");
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  const turnOff = async () => {
    setError(null);
    try {
      await api.raw("DELETE", "/api/v1/auto-recharge");
      setSaved("Auto-recharge is off.");
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <Card title="Auto-recharge">
      <Show value={rule} what="auto-recharge" feature="Auto-recharge" retry={() => void reload()}>
        {(r) =>
          methods.state === "ok" && methods.value.data.length === 0 ? (
            <Empty>
              Auto-recharge buys credits with a saved payment method, and none is saved yet. Buy credits once
              with &ldquo;Save my payment method for auto-recharge&rdquo; ticked (or ask your operator to add
              one).
            </Empty>
          ) : (
            <form
              className="inline-form"
              onSubmit={(e) => void save(e)}
              key={JSON.stringify(r)}
              aria-label="Auto-recharge"
            >
              {r && (
                <p className="muted full">
                  {r.enabled ? "On" : "Paused"}: {r.recharges_in_period} of {r.max_per_period} recharges used
                  this month.
                  {r.last_success_at && ` Last recharge ${fmtDate(r.last_success_at)}.`}
                  {r.last_failure_at &&
                    ` Last failure ${fmtDate(r.last_failure_at)}: ${r.last_failure_reason ?? ""}.`}
                </p>
              )}
              <label className="check full">
                <input type="checkbox" name="enabled" defaultChecked={r?.enabled ?? true} /> Buy credits
                automatically when the balance is low
              </label>
              <Field label="When the balance falls below (credits)">
                {(p) => (
                  <input
                    {...p}
                    name="threshold"
                    inputMode="decimal"
                    required
                    defaultValue={r?.threshold ?? "1000"}
                  />
                )}
              </Field>
              <Field label="Buy">
                {(p) => (
                  <select {...p} name="what" defaultValue={r?.pack_id ? `pack:${r.pack_id}` : "amount"}>
                    <option value="amount">An amount in dollars</option>
                    {packs.state === "ok" &&
                      packs.value.data.map((pk: Pack) => (
                        <option key={pk.id} value={`pack:${pk.id}`}>
                          {pk.name}: {fmtCredits(pk.credits)} credits for{" "}
                          {fmtMoney(pk.price_usd, pk.currency)}
                        </option>
                      ))}
                  </select>
                )}
              </Field>
              <Field label="Amount (USD, when buying an amount)">
                {(p) => (
                  <input
                    {...p}
                    name="amount_usd"
                    inputMode="decimal"
                    defaultValue={String(r?.amount_usd ?? "25")}
                  />
                )}
              </Field>
              <Field label="Pay with">
                {(p) => (
                  <select {...p} name="payment_method_id" defaultValue={r?.payment_method_id}>
                    {methods.state === "ok" &&
                      methods.value.data.map((m) => (
                        <option key={m.id} value={m.id}>
                          {m.label ?? m.id} ({m.provider})
                        </option>
                      ))}
                  </select>
                )}
              </Field>
              <button type="submit" className="primary">
                Save
              </button>
              {r && (
                <button type="button" onClick={() => void turnOff()}>
                  Turn off
                </button>
              )}
              {saved && (
                <span role="status" className="ok-text">
                  {saved}
                </span>
              )}
              {error && <ErrorNote error={error} />}
            </form>
          )
        }
      </Show>
    </Card>
  );
}
