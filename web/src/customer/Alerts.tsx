import { useState, type FormEvent } from "react";
import type { CustomerApi } from "../api.ts";
import { fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

/** An alert rule as the alerts API answers it; unknown fields are shown as they are. */
interface AlertRule {
  id: string;
  type: string;
  threshold?: number | string | null;
  status?: string;
  last_triggered_at?: string | null;
  [k: string]: unknown;
}

interface AutoRecharge {
  enabled: boolean;
  threshold?: number | string | null;
  amount_usd?: number | string | null;
  [k: string]: unknown;
}

export const ALERTS_PATH = "/api/v1/alerts";
export const AUTO_RECHARGE_PATH = "/api/v1/auto-recharge";

const ALERT_TYPES: [string, string][] = [
  ["balance_below", "Balance below an amount of credits"],
  ["balance_below_percent", "Balance below a percentage of the allowance"],
  ["usage_above_percent", "Usage past a percentage of the allowance"],
  ["depleted", "Credits run out"],
  ["forecast_runout_hours", "Forecast to run out within N hours"],
];

function listOf<T>(body: unknown): T[] {
  if (Array.isArray(body)) return body as T[];
  const d = (body as { data?: unknown } | null)?.data;
  return Array.isArray(d) ? (d as T[]) : [];
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
  const [rules, reload] = useLoad(async () => listOf<AlertRule>(await api.raw("GET", ALERTS_PATH)), [api]);
  const [type, setType] = useState("balance_below");
  const [threshold, setThreshold] = useState("1000");
  const [error, setError] = useState<Error | null>(null);
  const needsThreshold = type !== "depleted";

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.raw("POST", ALERTS_PATH, needsThreshold ? { type, threshold: threshold.trim() } : { type });
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  const remove = async (r: AlertRule) => {
    setError(null);
    try {
      await api.raw("DELETE", `${ALERTS_PATH}/${encodeURIComponent(r.id)}`);
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
            {list.length === 0 ? (
              <Empty>No alerts yet. Add one to hear about a low balance before your calls stop.</Empty>
            ) : (
              <ul className="plain-list" data-testid="alert-list">
                {list.map((r) => (
                  <li key={r.id}>
                    <strong>{ALERT_TYPES.find(([t]) => t === r.type)?.[1] ?? r.type}</strong>
                    {r.threshold != null && <> at {String(r.threshold)}</>}
                    {r.status && <span className="tag">{r.status}</span>}
                    {r.last_triggered_at && (
                      <span className="muted"> last fired {fmtDate(r.last_triggered_at)}</span>
                    )}
                    <button
                      type="button"
                      className="link"
                      onClick={() => void remove(r)}
                      aria-label={`Delete alert ${r.type}`}
                    >
                      Delete
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <form onSubmit={add} className="inline-form">
              <Field label="When">
                {(p) => (
                  <select {...p} value={type} onChange={(e) => setType(e.target.value)}>
                    {ALERT_TYPES.map(([t, l]) => (
                      <option key={t} value={t}>
                        {l}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              {needsThreshold && (
                <Field label="Threshold">
                  {(p) => (
                    <input
                      {...p}
                      inputMode="decimal"
                      value={threshold}
                      onChange={(e) => setThreshold(e.target.value)}
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
  const [settings, reload, set] = useLoad(() => api.raw<AutoRecharge>("GET", AUTO_RECHARGE_PATH), [api]);
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  return (
    <Card title="Auto-recharge">
      <Show
        value={settings}
        what="auto-recharge settings"
        feature="Auto-recharge"
        retry={() => void reload()}
      >
        {(s) => (
          <form
            className="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              setError(null);
              setSaved(false);
              api
                .raw<AutoRecharge>("PUT", AUTO_RECHARGE_PATH, {
                  enabled: f.get("enabled") === "on",
                  threshold: String(f.get("threshold") ?? ""),
                  amount_usd: String(f.get("amount_usd") ?? ""),
                })
                .then((v) => {
                  set(v);
                  setSaved(true);
                })
                .catch((err: Error) => setError(err));
            }}
          >
            <label className="check">
              <input type="checkbox" name="enabled" defaultChecked={s.enabled} /> Buy credits automatically
              when the balance is low
            </label>
            <Field label="When the balance falls below (credits)">
              {(p) => (
                <input {...p} name="threshold" inputMode="decimal" defaultValue={String(s.threshold ?? "")} />
              )}
            </Field>
            <Field label="Buy (USD)">
              {(p) => (
                <input
                  {...p}
                  name="amount_usd"
                  inputMode="decimal"
                  defaultValue={String(s.amount_usd ?? "")}
                />
              )}
            </Field>
            <button type="submit" className="primary">
              Save
            </button>
            {saved && (
              <span role="status" className="ok-text">
                Saved.
              </span>
            )}
            {error && <ErrorNote error={error} />}
          </form>
        )}
      </Show>
    </Card>
  );
}
