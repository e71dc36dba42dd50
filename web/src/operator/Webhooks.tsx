import { useState, type FormEvent } from "react";
import type { OperatorApi, Page } from "../api.ts";
import { useLoad } from "../hooks.ts";
import { GenericTable } from "../shared/GenericTable.tsx";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

interface Endpoint {
  id: string;
  url: string;
  event_types: string[];
  status: string;
  account_id: string | null;
  [k: string]: unknown;
}

const enc = encodeURIComponent;

/** Webhook endpoints (create, with the signing secret shown once) and the deliveries of the one chosen. */
export function Webhooks({ api }: { api: OperatorApi }) {
  const [hooks, reload] = useLoad(() => api.raw<Page<Endpoint>>("GET", "/v1/webhooks"), [api]);
  const [selected, setSelected] = useState<string | null>(null);
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState("alert.triggered, purchase.completed");
  const [account, setAccount] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setSecret(null);
    try {
      const r = await api.raw<Endpoint & { secret: string }>("POST", "/v1/webhooks", {
        url: url.trim(),
        event_types: types
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
        ...(account.trim() ? { account_id: account.trim() } : {}),
      });
      setSecret(r.secret);
      setUrl("");
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <h1>Webhooks</h1>
      <Card title="Endpoints">
        <Show value={hooks} what="webhooks" feature="Webhooks" retry={() => void reload()}>
          {(p) => (
            <>
              {p.data.length === 0 ? (
                <Empty>
                  No webhook endpoints. Add one below to receive events, signed per Standard Webhooks.
                </Empty>
              ) : (
                <>
                  <GenericTable
                    rows={p.data}
                    columns={["id", "url", "event_types", "status", "account_id", "created_at"]}
                    caption="Webhook endpoints"
                    testId="webhooks-table"
                  />
                  <div className="row" role="group" aria-label="Show deliveries">
                    {p.data.map((r) => (
                      <button
                        key={r.id}
                        type="button"
                        onClick={() => setSelected(r.id)}
                        aria-pressed={selected === r.id}
                      >
                        Deliveries to {r.url}
                      </button>
                    ))}
                  </div>
                </>
              )}
              <form onSubmit={(e) => void create(e)} className="inline-form" aria-label="Add an endpoint">
                <h3>Add an endpoint</h3>
                <Field label="URL">
                  {(p) => (
                    <input {...p} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} />
                  )}
                </Field>
                <Field label="Event types" hint="Comma-separated, e.g. alert.triggered, purchase.completed">
                  {(p) => <input {...p} required value={types} onChange={(e) => setTypes(e.target.value)} />}
                </Field>
                <Field label="Only for account" hint="Empty: every account">
                  {(p) => <input {...p} value={account} onChange={(e) => setAccount(e.target.value)} />}
                </Field>
                <button type="submit" className="primary">
                  Add endpoint
                </button>
              </form>
              {secret && (
                <div className="note note-ok secret" role="status">
                  <strong>Signing secret (shown once):</strong> <code>{secret}</code>
                </div>
              )}
              {error && <ErrorNote error={error} />}
            </>
          )}
        </Show>
      </Card>
      {selected && <Deliveries api={api} id={selected} />}
    </>
  );
}

function Deliveries({ api, id }: { api: OperatorApi; id: string }) {
  const [rows, reload] = useLoad(
    () => api.raw<Page<Record<string, unknown>>>("GET", `/v1/webhooks/${enc(id)}/deliveries?limit=100`),
    [api, id],
  );
  const [error, setError] = useState<Error | null>(null);
  const redeliver = async (d: Record<string, unknown>) => {
    setError(null);
    try {
      await api.raw("POST", `/v1/webhooks/${enc(id)}/deliveries/${enc(String(d.id))}/redeliver`, {});
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Card
      title={`Deliveries to ${id}`}
      actions={
        <button type="button" onClick={() => void reload()}>
          Refresh
        </button>
      }
    >
      <Show value={rows} what="deliveries" feature="Webhook deliveries" retry={() => void reload()}>
        {(r) =>
          r.data.length === 0 ? (
            <Empty>No deliveries yet: events of the chosen types appear here as they are sent.</Empty>
          ) : (
            <>
              <GenericTable
                rows={r.data}
                columns={[
                  "id",
                  "event_type",
                  "status",
                  "attempts",
                  "response_status",
                  "next_attempt_at",
                  "created_at",
                ]}
                caption="Deliveries"
              />
              <div className="row">
                {r.data
                  .filter((d) => d.status === "failed")
                  .map((d) => (
                    <button key={String(d.id)} type="button" onClick={() => void redeliver(d)}>
                      Redeliver {String(d.id)}
                    </button>
                  ))}
              </div>
            </>
          )
        }
      </Show>
      {error && <ErrorNote error={error} />}
    </Card>
  );
}
