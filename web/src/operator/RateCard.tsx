import { useCallback, useState, type FormEvent } from "react";
import type { OperatorApi, RateCardJson, ServiceRate } from "../api.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { describeRate, EstimateForm } from "../shared/EstimateForm.tsx";
import { Card, ErrorNote, Field, Show } from "../ui.tsx";

/** The rate card in force, editing a service's price (publishes a new version), and an estimate preview. */
export function RateCard({ api }: { api: OperatorApi }) {
  const [card, reload] = useLoad(() => api.rateCard(), [api]);
  const [versions, reloadVersions] = useLoad(() => api.rateCardVersions(), [api]);
  const estimate = useCallback((b: Record<string, unknown>) => api.estimate(b), [api]);
  const published = () => {
    void reload();
    void reloadVersions();
  };
  return (
    <>
      <h1>Rate card</h1>
      <Show value={card} what="the rate card" retry={() => void reload()}>
        {(c) => (
          <>
            <Card title="Estimate preview">
              <p className="muted">
                Prices a call on the card in force, exactly as a real call would be charged; records nothing.
              </p>
              <EstimateForm card={c} estimate={estimate} testId="op-estimate" />
            </Card>
            <Services api={api} card={c} onPublished={published} />
          </>
        )}
      </Show>
      <Card title="Versions">
        <Show value={versions} what="versions" retry={() => void reloadVersions()}>
          {(v) => (
            <ul className="plain-list" data-testid="versions">
              {[...v.data].reverse().map((x) => (
                <li key={x.version}>
                  Version <strong>{x.version}</strong>, in force from {fmtDate(x.effective_at)},{" "}
                  {Object.keys(x.services).length} services
                </li>
              ))}
            </ul>
          )}
        </Show>
      </Card>
    </>
  );
}

function Services({
  api,
  card,
  onPublished,
}: {
  api: OperatorApi;
  card: RateCardJson;
  onPublished: () => void;
}) {
  const [editing, setEditing] = useState<string | null>(null);
  return (
    <Card title={`Services (version ${card.version}, in force since ${fmtDate(card.effective_at)})`}>
      <div className="table-wrap">
        <table data-testid="rate-table">
          <caption className="sr-only">Services and their prices</caption>
          <thead>
            <tr>
              <th scope="col">Service</th>
              <th scope="col">Price</th>
              <th scope="col">Increment</th>
              <th scope="col">Minimum</th>
              <th scope="col">Modifiers</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(card.services)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([name, rate]) => (
                <tr key={name}>
                  <th scope="row" className="mono">
                    {name}
                  </th>
                  <td>
                    {editing === name ? (
                      <EditPrice
                        api={api}
                        card={card}
                        name={name}
                        rate={rate}
                        onDone={(changed) => {
                          setEditing(null);
                          if (changed) onPublished();
                        }}
                      />
                    ) : (
                      describeRate(rate)
                    )}
                  </td>
                  <td>{rate.increment ? `${fmtCredits(rate.increment)} ${rate.unit}` : "—"}</td>
                  <td>{rate.minimum && rate.minimum !== "0" ? fmtCredits(rate.minimum) : "—"}</td>
                  <td>{Array.isArray(rate.modifiers) ? rate.modifiers.length : 0}</td>
                  <td>
                    {editing !== name && rate.dimensions === undefined && (
                      <button
                        type="button"
                        className="link"
                        onClick={() => setEditing(name)}
                        aria-label={`Edit the price of ${name}`}
                      >
                        Edit price
                      </button>
                    )}
                  </td>
                </tr>
              ))}
          </tbody>
        </table>
      </div>
    </Card>
  );
}

/** Change one service's price (or fixed fee) and publish the whole card as a new version, effective now. */
function EditPrice({
  api,
  card,
  name,
  rate,
  onDone,
}: {
  api: OperatorApi;
  card: RateCardJson;
  name: string;
  rate: ServiceRate;
  onDone: (changed: boolean) => void;
}) {
  const field = rate.price !== undefined ? "price" : "fee";
  const [value, setValue] = useState(String(rate[field] ?? ""));
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const services = { ...card.services, [name]: { ...rate, [field]: value.trim() } };
      await api.publishRateCard(services);
      onDone(true);
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="inline-form compact" aria-label={`New price of ${name}`}>
      <Field
        label={
          field === "price"
            ? `Credits per ${fmtCredits(rate.per ?? "1")} ${rate.unit}`
            : `Credits per ${rate.unit}`
        }
      >
        {(p) => (
          <input
            {...p}
            inputMode="decimal"
            value={value}
            autoFocus
            onChange={(e) => setValue(e.target.value)}
          />
        )}
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        Publish
      </button>
      <button type="button" onClick={() => onDone(false)}>
        Cancel
      </button>
      {error && <ErrorNote error={error} />}
    </form>
  );
}
