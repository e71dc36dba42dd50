import { useState, type FormEvent } from "react";
import { ApiError, download, type OperatorApi, type Page, type Purchase } from "../api.ts";
import { fmtCredits, fmtDate, fmtMoney } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { GenericTable } from "../shared/GenericTable.tsx";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";
import type { Plan } from "./Plans.tsx";

interface Subscription {
  id: string;
  plan_id: string;
  status: string;
  period_start: string | null;
  period_end: string | null;
  days_until_reset: number | null;
  cancel_at_period_end: boolean;
  pending_plan_id: string | null;
  plan: Plan;
}

interface Adjustment {
  id: string;
  amount: string;
  reason: string;
  created_at: string;
  [k: string]: unknown;
}

const enc = encodeURIComponent;

/** An account's plan, adjustments, purchases and live sessions (each shown when the server has it). */
export function AccountBilling({
  api,
  id,
  onChange,
}: {
  api: OperatorApi;
  id: string;
  onChange: () => void;
}) {
  return (
    <>
      <SubscriptionCard api={api} id={id} onChange={onChange} />
      <Adjustments api={api} id={id} onChange={onChange} />
      <div className="grid2">
        <Purchases api={api} id={id} />
        <Sessions api={api} id={id} />
      </div>
    </>
  );
}

function SubscriptionCard({ api, id, onChange }: { api: OperatorApi; id: string; onChange: () => void }) {
  const [sub, reload] = useLoad(async () => {
    try {
      return await api.raw<Subscription>("GET", `/v1/accounts/${enc(id)}/subscription`);
    } catch (err) {
      // "No active subscription" is a 404 on the account, not a missing feature.
      if (err instanceof ApiError && err.code === "not_found" && !err.isMissingRoute) return null;
      throw err;
    }
  }, [api, id]);
  const [plans] = useLoad(() => api.raw<Page<Plan>>("GET", "/v1/plans"), [api]);
  const [error, setError] = useState<Error | null>(null);
  const [plan, setPlan] = useState("");
  const submit = async (e: FormEvent, current: Subscription | null) => {
    e.preventDefault();
    setError(null);
    try {
      if (current) await api.raw("POST", `/v1/subscriptions/${enc(current.id)}/change`, { plan_id: plan });
      else await api.raw("POST", "/v1/subscriptions", { account_id: id, plan_id: plan });
      await reload();
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Card title="Plan">
      <Show value={sub} what="the subscription" feature="Plans" retry={() => void reload()}>
        {(s) => (
          <>
            {s ? (
              <p data-testid="subscription">
                <strong>{s.plan.name}</strong> ({fmtCredits(s.plan.monthly_allowance)} credits a month,{" "}
                {fmtMoney(s.plan.price, s.plan.currency)}). This period: {fmtDate(s.period_start)} to{" "}
                {fmtDate(s.period_end)}
                {s.days_until_reset !== null && `, resets in ${s.days_until_reset} days`}.
                {s.cancel_at_period_end && " Ends at the end of this period."}
                {s.pending_plan_id && ` Changes to ${s.pending_plan_id} at the end of this period.`}
              </p>
            ) : (
              <Empty>No plan: the account has no monthly supply.</Empty>
            )}
            {plans.state === "ok" && plans.value.data.length > 0 && (
              <form
                onSubmit={(e) => void submit(e, s)}
                className="inline-form"
                aria-label={s ? "Change plan" : "Subscribe"}
              >
                <Field label={s ? "Change to" : "Subscribe to"}>
                  {(p) => (
                    <select {...p} value={plan} onChange={(e) => setPlan(e.target.value)} required>
                      <option value="">Choose a plan</option>
                      {plans.value.data
                        .filter((x) => x.id !== s?.plan_id && x.status !== "archived")
                        .map((x) => (
                          <option key={x.id} value={x.id}>
                            {x.name} ({fmtCredits(x.monthly_allowance)} credits)
                          </option>
                        ))}
                    </select>
                  )}
                </Field>
                <button type="submit" className="primary" disabled={!plan}>
                  {s ? "Change plan" : "Subscribe"}
                </button>
              </form>
            )}
            {s && (
              <button
                type="button"
                onClick={() =>
                  void download(
                    api.credential,
                    `/v1/accounts/${enc(id)}/statement?format=csv`,
                    "statement.csv",
                  ).catch((err: Error) => setError(err))
                }
              >
                Download this period&rsquo;s statement (CSV)
              </button>
            )}
            {error && <ErrorNote error={error} />}
          </>
        )}
      </Show>
    </Card>
  );
}

function Adjustments({ api, id, onChange }: { api: OperatorApi; id: string; onChange: () => void }) {
  const [list, reload] = useLoad(
    () => api.raw<Page<Adjustment>>("GET", `/v1/accounts/${enc(id)}/adjustments`),
    [api, id],
  );
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.raw("POST", `/v1/accounts/${enc(id)}/adjustments`, {
        amount: amount.trim(),
        reason: reason.trim(),
      });
      setAmount("");
      setReason("");
      await reload();
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Card title="Adjustments">
      <Show value={list} what="adjustments" feature="Adjustments" retry={() => void reload()}>
        {(l) => (
          <>
            {l.data.length === 0 ? (
              <Empty>No adjustments. Add or remove credits below; each needs a reason, kept with it.</Empty>
            ) : (
              <GenericTable
                rows={l.data as Record<string, unknown>[]}
                columns={["id", "amount", "reason", "created_at"]}
                caption="Adjustments"
                testId="adjustments-table"
              />
            )}
            <form onSubmit={(e) => void submit(e)} className="inline-form" aria-label="Adjust credits">
              <Field label="Credits" hint="Negative to remove credits (for example -500).">
                {(p) => (
                  <input
                    {...p}
                    required
                    inputMode="decimal"
                    value={amount}
                    onChange={(e) => setAmount(e.target.value)}
                  />
                )}
              </Field>
              <Field label="Reason">
                {(p) => (
                  <input
                    {...p}
                    required
                    value={reason}
                    maxLength={1024}
                    onChange={(e) => setReason(e.target.value)}
                  />
                )}
              </Field>
              <button type="submit" className="primary">
                Adjust
              </button>
            </form>
            {error && <ErrorNote error={error} />}
          </>
        )}
      </Show>
    </Card>
  );
}

function Purchases({ api, id }: { api: OperatorApi; id: string }) {
  const [list, reload] = useLoad(
    () => api.raw<Page<Purchase>>("GET", `/v1/purchases?account_id=${enc(id)}&limit=100`),
    [api, id],
  );
  return (
    <Card title="Purchases">
      <Show value={list} what="purchases" feature="Purchases" retry={() => void reload()}>
        {(l) =>
          l.data.length === 0 ? (
            <Empty>No purchases.</Empty>
          ) : (
            <GenericTable
              rows={[...l.data].reverse() as unknown as Record<string, unknown>[]}
              columns={["id", "status", "credits", "amount_usd", "provider", "paid_at"]}
              caption="Purchases, newest first"
              testId="op-purchases-table"
            />
          )
        }
      </Show>
    </Card>
  );
}

function Sessions({ api, id }: { api: OperatorApi; id: string }) {
  const [list, reload] = useLoad(
    () => api.raw<Page<Record<string, unknown>>>("GET", `/v1/accounts/${enc(id)}/sessions?status=active`),
    [api, id],
  );
  return (
    <Card
      title="Live calls"
      actions={
        <button type="button" onClick={() => void reload()}>
          Refresh
        </button>
      }
    >
      <Show value={list} what="live calls" feature="Live call metering" retry={() => void reload()}>
        {(l) =>
          l.data.length === 0 ? (
            <Empty>No calls in progress.</Empty>
          ) : (
            <GenericTable
              rows={l.data}
              columns={[
                "id",
                "service",
                "direction",
                "used_seconds",
                "authorized_seconds",
                "final",
                "answered_at",
              ]}
              caption="Calls in progress"
            />
          )
        }
      </Show>
    </Card>
  );
}
