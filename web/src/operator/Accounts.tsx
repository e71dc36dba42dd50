import { useMemo, useState, type FormEvent } from "react";
import type { Account, OperatorApi } from "../api.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { go, useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

const MAX_PAGES = 20;

/** Every account (up to 20,000), searchable by id, name or any metadata value. */
export function Accounts({ api, query }: { api: OperatorApi; query: string }) {
  const [accounts, reload] = useLoad(async () => {
    const out: Account[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await api.accounts(cursor);
      out.push(...page.data);
      if (!page.next_cursor) return { rows: out, truncated: false };
      cursor = page.next_cursor;
    }
    return { rows: out, truncated: true };
  }, [api]);
  const [q, setQ] = useState(query);
  const filtered = useMemo(() => {
    if (accounts.state !== "ok") return [];
    const needle = q.trim().toLowerCase();
    if (!needle) return accounts.value.rows;
    return accounts.value.rows.filter(
      (a) => a.id.toLowerCase().includes(needle) || JSON.stringify(a.metadata).toLowerCase().includes(needle),
    );
  }, [accounts, q]);

  return (
    <>
      <h1>Accounts</h1>
      <Card title="Find an account">
        <form role="search" onSubmit={(e) => e.preventDefault()}>
          <Field label="Search" hint="Part of an account id, a name or any metadata value.">
            {(p) => <input {...p} type="search" value={q} onChange={(e) => setQ(e.target.value)} />}
          </Field>
        </form>
        <Show value={accounts} what="accounts" retry={() => void reload()}>
          {(v) =>
            v.rows.length === 0 ? (
              <Empty>
                No accounts yet. Create the first one below, or with POST /v1/accounts from your backend.
              </Empty>
            ) : filtered.length === 0 ? (
              <Empty>No account matches “{q}”. Check the spelling or search for part of the id.</Empty>
            ) : (
              <>
                <p className="muted" role="status" aria-live="polite">
                  {filtered.length} of {v.rows.length} accounts{v.truncated && " (the first 20,000)"}.
                </p>
                <div className="table-wrap">
                  <table data-testid="accounts-table">
                    <caption className="sr-only">Accounts</caption>
                    <thead>
                      <tr>
                        <th scope="col">Account</th>
                        <th scope="col">Name</th>
                        <th scope="col">Status</th>
                        <th scope="col">Overage</th>
                        <th scope="col">Created</th>
                      </tr>
                    </thead>
                    <tbody>
                      {filtered.slice(0, 500).map((a) => (
                        <tr key={a.id}>
                          <td>
                            <a href={`#/accounts/${encodeURIComponent(a.id)}`} className="mono">
                              {a.id}
                            </a>
                          </td>
                          <td>{typeof a.metadata.name === "string" ? a.metadata.name : "—"}</td>
                          <td>
                            <span className={`tag tag-${a.status}`}>{a.status}</span>
                          </td>
                          <td>
                            {a.overage_policy}
                            {a.overage_limit ? ` up to ${fmtCredits(a.overage_limit)}` : ""}
                          </td>
                          <td>{fmtDate(a.created_at)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </>
            )
          }
        </Show>
      </Card>
      <CreateAccount api={api} />
    </>
  );
}

function CreateAccount({ api }: { api: OperatorApi }) {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const a = await api.raw<Account>("POST", "/v1/accounts", {
        ...(id.trim() ? { id: id.trim() } : {}),
        metadata: name.trim() ? { name: name.trim() } : {},
      });
      go(`/accounts/${encodeURIComponent(a.id)}`);
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Card title="Create an account">
      <form onSubmit={submit} className="inline-form">
        <Field label="Account id" hint="Optional: letters, digits and _ - . : (a new acct_… id otherwise).">
          {(p) => <input {...p} value={id} onChange={(e) => setId(e.target.value)} />}
        </Field>
        <Field label="Name">
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <button type="submit" className="primary">
          Create
        </button>
      </form>
      {error && <ErrorNote error={error} />}
    </Card>
  );
}
