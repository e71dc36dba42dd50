import { useState, type FormEvent } from "react";
import type { OperatorApi, PaygInfo } from "../api.ts";
import { useLoad } from "../hooks.ts";
import { GenericTable, listOf } from "../shared/GenericTable.tsx";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

export const PLANS_PATH = "/v1/plans";
export const PACKS_PATH = "/v1/packs";

/** Plans, packs and the pay-as-you-go settings. */
export function Plans({ api }: { api: OperatorApi }) {
  const [plans, reloadPlans] = useLoad(async () => listOf(await api.raw("GET", PLANS_PATH)), [api]);
  const [packs, reloadPacks] = useLoad(async () => listOf(await api.raw("GET", PACKS_PATH)), [api]);
  return (
    <>
      <h1>Plans and purchases</h1>
      <Card title="Plans">
        <Show value={plans} what="plans" feature="Plans" retry={() => void reloadPlans()}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No plans yet. Create plans with POST {PLANS_PATH}.</Empty>
            ) : (
              <GenericTable rows={rows} caption="Plans" testId="plans-table" />
            )
          }
        </Show>
      </Card>
      <Card title="Credit packs">
        <Show value={packs} what="packs" feature="Credit packs" retry={() => void reloadPacks()}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No packs yet.</Empty>
            ) : (
              <GenericTable rows={rows} caption="Credit packs" testId="packs-table" />
            )
          }
        </Show>
      </Card>
      <PaygSettings api={api} />
    </>
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
          <form onSubmit={(e) => void submit(e)} className="inline-form" key={JSON.stringify(i)}>
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
