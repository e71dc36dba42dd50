import { useState, type FormEvent } from "react";
import type { ApiKey, CustomerApi } from "../api.ts";
import { fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

const SCOPES = [
  ["read", "read: balance, usage, prices"],
  ["usage", "usage: report usage"],
  ["manage", "manage: buy credits, manage keys"],
] as const;

/** API keys: create (the secret is shown once), list, revoke. */
export function Keys({ api }: { api: CustomerApi }) {
  const [keys, reload] = useLoad(() => api.keys(), [api]);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["read", "usage"]);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setCopied(false);
    try {
      setCreated(await api.createKey(name.trim() || "dashboard key", scopes));
      setName("");
      await reload();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (k: ApiKey) => {
    if (!window.confirm(`Revoke the key ${k.name ?? k.prefix}? Anything using it stops working at once.`))
      return;
    setError(null);
    try {
      await api.revokeKey(k.id);
      if (created?.id === k.id) setCreated(null);
      await reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <h1>API keys</h1>
      <Card title="Create a key">
        <form onSubmit={create} className="inline-form">
          <Field label="Name" hint="What uses it, e.g. production backend.">
            {(p) => <input {...p} value={name} maxLength={128} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <fieldset>
            <legend>Scopes</legend>
            {SCOPES.map(([s, label]) => (
              <label key={s} className="check">
                <input
                  type="checkbox"
                  checked={scopes.includes(s)}
                  onChange={(e) =>
                    setScopes((cur) => (e.target.checked ? [...cur, s] : cur.filter((x) => x !== s)))
                  }
                />
                {label}
              </label>
            ))}
          </fieldset>
          <button type="submit" className="primary" disabled={busy || scopes.length === 0}>
            Create key
          </button>
        </form>
        {scopes.length === 0 && <p className="field-error">Choose at least one scope.</p>}
        {created?.secret && (
          <div className="note note-ok secret" role="status" data-testid="new-key">
            <strong>Copy your new key now: it is shown only once.</strong>
            <code className="mono" data-testid="new-key-secret">
              {created.secret}
            </code>
            <button
              type="button"
              onClick={() => {
                void navigator.clipboard?.writeText(created.secret!).then(() => setCopied(true));
              }}
            >
              {copied ? "Copied" : "Copy"}
            </button>
          </div>
        )}
        {error && <ErrorNote error={error} />}
      </Card>
      <Card title="Your keys">
        <Show value={keys} what="keys" retry={() => void reload()}>
          {(page) =>
            page.data.length === 0 ? (
              <Empty>No keys yet. Create one above to call the API from your application.</Empty>
            ) : (
              <div className="table-wrap">
                <table data-testid="keys-table">
                  <caption className="sr-only">API keys</caption>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Key</th>
                      <th scope="col">Scopes</th>
                      <th scope="col">Created</th>
                      <th scope="col">Last used</th>
                      <th scope="col">Status</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((k) => (
                      <tr key={k.id} data-key-id={k.id}>
                        <td>{k.name ?? "—"}</td>
                        <td className="mono">{k.prefix}…</td>
                        <td>{k.scopes.join(", ")}</td>
                        <td>{fmtDate(k.created_at)}</td>
                        <td>{k.last_used_at ? fmtDate(k.last_used_at) : "never"}</td>
                        <td>
                          {k.revoked_at ? (
                            <span className="tag tag-off">revoked {fmtDate(k.revoked_at)}</span>
                          ) : (
                            <button
                              type="button"
                              className="danger"
                              onClick={() => void revoke(k)}
                              aria-label={`Revoke ${k.name ?? k.prefix}`}
                            >
                              Revoke
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Show>
      </Card>
    </>
  );
}
