import { useState, type FormEvent, type ReactNode } from "react";
import type { OperatorApi, Pack, Page, PaygInfo } from "../api.ts";
import { fmtCredits, fmtMoney } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { GenericTable } from "../shared/GenericTable.tsx";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

export interface Plan {
  id: string;
  name: string;
  monthly_allowance: string;
  price: string;
  currency: string;
  overage_policy: string;
  overage_rate: string;
  rollover_cap: string;
  status: string;
}

/** Plans, credit packs and the pay-as-you-go settings. */
export function Plans({ api }: { api: OperatorApi }) {
  const [plans, reloadPlans] = useLoad(() => api.raw<Page<Plan>>("GET", "/v1/plans"), [api]);
  const [packs, reloadPacks] = useLoad(
    () => api.raw<Page<Pack>>("GET", "/v1/packs?include_inactive=true"),
    [api],
  );
  return (
    <>
      <h1>Plans and purchases</h1>
      <Card title="Plans">
        <Show value={plans} what="plans" feature="Plans" retry={() => void reloadPlans()}>
          {(p) => (
            <>
              {p.data.length === 0 ? (
                <Empty>No plans yet. Create the first below; then subscribe accounts from their page.</Empty>
              ) : (
                <div className="table-wrap">
                  <table data-testid="plans-table">
                    <caption className="sr-only">Plans</caption>
                    <thead>
                      <tr>
                        <th scope="col">Plan</th>
                        <th scope="col">Name</th>
                        <th scope="col" className="num">
                          Monthly credits
                        </th>
                        <th scope="col" className="num">
                          Price
                        </th>
                        <th scope="col">Overage</th>
                        <th scope="col">Rollover cap</th>
                        <th scope="col">Status</th>
                      </tr>
                    </thead>
                    <tbody>
                      {p.data.map((x) => (
                        <tr key={x.id}>
                          <td className="mono">{x.id}</td>
                          <td>{x.name}</td>
                          <td className="num">{fmtCredits(x.monthly_allowance)}</td>
                          <td className="num">{fmtMoney(x.price, x.currency)}</td>
                          <td>
                            {x.overage_policy}
                            {x.overage_policy === "allow" ? ` at ${x.overage_rate} ${x.currency}/credit` : ""}
                          </td>
                          <td>{x.rollover_cap === "0" ? "none" : fmtCredits(x.rollover_cap)}</td>
                          <td>{x.status}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <CreateForm
                title="Create a plan"
                submitLabel="Create plan"
                onSubmit={async (f) => {
                  await api.raw("POST", "/v1/plans", {
                    id: f.get("id"),
                    name: f.get("name"),
                    monthly_allowance: f.get("monthly_allowance"),
                    price: f.get("price"),
                    currency: String(f.get("currency")).toUpperCase(),
                    overage_policy: f.get("overage_policy"),
                  });
                  await reloadPlans();
                }}
              >
                <Field label="Plan id">{(p) => <input {...p} name="id" required placeholder="pro" />}</Field>
                <Field label="Name">{(p) => <input {...p} name="name" required placeholder="Pro" />}</Field>
                <Field label="Monthly credits">
                  {(p) => <input {...p} name="monthly_allowance" required inputMode="decimal" />}
                </Field>
                <Field label="Price per month">
                  {(p) => <input {...p} name="price" inputMode="decimal" defaultValue="0" />}
                </Field>
                <Field label="Currency">
                  {(p) => <input {...p} name="currency" maxLength={3} defaultValue="USD" />}
                </Field>
                <Field label="When credits run out">
                  {(p) => (
                    <select {...p} name="overage_policy" defaultValue="block">
                      <option value="block">refuse usage</option>
                      <option value="allow">allow overage</option>
                    </select>
                  )}
                </Field>
              </CreateForm>
            </>
          )}
        </Show>
      </Card>
      <Card title="Credit packs">
        <Show value={packs} what="packs" feature="Credit packs" retry={() => void reloadPacks()}>
          {(p) => (
            <>
              {p.data.length === 0 ? (
                <Empty>No packs yet. Packs are bundles of credits customers buy from their dashboard.</Empty>
              ) : (
                <GenericTable
                  rows={p.data as unknown as Record<string, unknown>[]}
                  columns={["id", "name", "credits", "price_usd", "currency", "expires_after_days", "active"]}
                  caption="Credit packs"
                  testId="op-packs-table"
                />
              )}
              <CreateForm
                title="Create a pack"
                submitLabel="Create pack"
                onSubmit={async (f) => {
                  const days = String(f.get("expires_after_days") ?? "").trim();
                  await api.raw("POST", "/v1/packs", {
                    name: f.get("name"),
                    credits: f.get("credits"),
                    price_usd: f.get("price_usd"),
                    ...(days ? { expires_after_days: Number(days) } : {}),
                  });
                  await reloadPacks();
                }}
              >
                <Field label="Name">
                  {(p) => <input {...p} name="name" required placeholder="Starter pack" />}
                </Field>
                <Field label="Credits">
                  {(p) => <input {...p} name="credits" required inputMode="decimal" />}
                </Field>
                <Field label="Price (USD)">
                  {(p) => <input {...p} name="price_usd" required inputMode="decimal" />}
                </Field>
                <Field label="Credits expire after (days)" hint="Empty: never">
                  {(p) => <input {...p} name="expires_after_days" inputMode="numeric" />}
                </Field>
              </CreateForm>
            </>
          )}
        </Show>
      </Card>
      <PaygSettings api={api} />
    </>
  );
}

/** A small create form: runs `onSubmit` with the form's fields and shows the server's error. */
function CreateForm({
  title,
  submitLabel,
  onSubmit,
  children,
}: {
  title: string;
  submitLabel: string;
  onSubmit: (f: FormData) => Promise<void>;
  children: ReactNode;
}) {
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    setBusy(true);
    setError(null);
    try {
      await onSubmit(new FormData(form));
      form.reset();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)} className="inline-form" aria-label={title}>
      <h3>{title}</h3>
      {children}
      <button type="submit" className="primary" disabled={busy}>
        {submitLabel}
      </button>
      {error && <ErrorNote error={error} />}
    </form>
  );
}

function PaygSettings({ api }: { api: OperatorApi }) {
  const [info, reload, set] = useLoad(() => api.payg(), [api]);
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setError(null);
    setSaved(false);
    try {
      set(
        await api.raw<PaygInfo>("PUT", "/v1/payg", {
          credits_per_dollar: String(f.get("credits_per_dollar")),
          min_amount_usd: String(f.get("min_amount_usd")),
          max_amount_usd: String(f.get("max_amount_usd")),
          currency: String(f.get("currency")).toUpperCase(),
        }),
      );
      setSaved(true);
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Card title="Pay as you go">
      <Show value={info} what="pay-as-you-go settings" retry={() => void reload()}>
        {(i) => (
          <form
            onSubmit={(e) => void submit(e)}
            className="inline-form"
            key={JSON.stringify(i)}
            aria-label="Pay as you go"
          >
            <Field label="Credits per dollar">
              {(p) => (
                <input
                  {...p}
                  name="credits_per_dollar"
                  inputMode="decimal"
                  defaultValue={String(i.credits_per_dollar)}
                />
              )}
            </Field>
            <Field label="Smallest purchase">
              {(p) => (
                <input
                  {...p}
                  name="min_amount_usd"
                  inputMode="decimal"
                  defaultValue={String(i.min_amount_usd)}
                />
              )}
            </Field>
            <Field label="Largest purchase">
              {(p) => (
                <input
                  {...p}
                  name="max_amount_usd"
                  inputMode="decimal"
                  defaultValue={String(i.max_amount_usd)}
                />
              )}
            </Field>
            <Field label="Currency">
              {(p) => <input {...p} name="currency" maxLength={3} defaultValue={i.currency} />}
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
