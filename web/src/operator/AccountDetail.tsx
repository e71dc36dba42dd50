import { useMemo, useState, type FormEvent } from "react";
import type { Account, ApiKey, Entry, Grant, OperatorApi, OperatorUsage, Page } from "../api.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Meter, Show } from "../ui.tsx";
import { AccountBilling } from "./AccountBilling.tsx";

const KINDS = ["subscription", "purchase", "promotional", "carryover", "adjustment"];

/** One account for the operator: balance, grants, adjustments, usage and refunds, holds, journal, keys. */
export function AccountDetail({ api, id }: { api: OperatorApi; id: string }) {
  const [account, reloadAccount] = useLoad(() => api.account(id), [api, id]);
  const [grants, reloadGrants] = useLoad(() => api.grants(id), [api, id]);
  const [entries, reloadEntries] = useLoad(() => api.entries(id), [api, id]);
  const reloadAll = () => {
    void reloadAccount();
    void reloadGrants();
    void reloadEntries();
  };
  return (
    <>
      <p>
        <a href="#/">← All accounts</a>
      </p>
      <Show value={account} what="the account" retry={() => void reloadAccount()}>
        {(a) => <Header api={api} account={a} onChange={reloadAll} />}
      </Show>
      <AccountBilling api={api} id={id} onChange={reloadAll} />
      <Card title="Grants">
        <Show value={grants} what="grants" retry={() => void reloadGrants()}>
          {(g) => <GrantTable api={api} grants={g.data} onChange={reloadAll} />}
        </Show>
        <AddCredits api={api} accountId={id} onDone={reloadAll} />
      </Card>
      <UsageSection api={api} accountId={id} onChange={reloadAll} />
      <Show value={entries} what="the journal" retry={() => void reloadEntries()}>
        {(e) => <HoldsAndRefunds api={api} entries={e} />}
      </Show>
      <Keys api={api} accountId={id} />
    </>
  );
}

function Header({ api, account: a, onChange }: { api: OperatorApi; account: Account; onChange: () => void }) {
  const [error, setError] = useState<Error | null>(null);
  const b = a.balance;
  const act = async (action: "suspend" | "reactivate" | "close") => {
    if (action === "close" && !window.confirm(`Close ${a.id} for good? It can never be used again.`)) return;
    setError(null);
    try {
      await api.setStatus(a.id, action);
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  const total = b ? Number(b.available) : 0;
  return (
    <>
      <h1>
        <span className="mono">{a.id}</span>{" "}
        {typeof a.metadata.name === "string" && <span className="muted">{a.metadata.name}</span>}{" "}
        <span className={`tag tag-${a.status}`}>{a.status}</span>
      </h1>
      <div className="row">
        {a.status === "active" && (
          <button type="button" onClick={() => void act("suspend")}>
            Suspend
          </button>
        )}
        {a.status === "suspended" && (
          <button type="button" onClick={() => void act("reactivate")}>
            Reactivate
          </button>
        )}
        {a.status !== "closed" && (
          <button type="button" className="danger" onClick={() => void act("close")}>
            Close account
          </button>
        )}
      </div>
      {error && <ErrorNote error={error} />}
      {b && (
        <Card title="Balance">
          <div className="stats">
            {(
              [
                ["Available", b.available],
                ["Held", b.held],
                ["Overage", b.overage],
                ["Scheduled", b.scheduled],
              ] as const
            ).map(([l, v]) => (
              <div className="stat" key={l}>
                <span className="stat-label">{l}</span>
                <span className="stat-value" data-testid={`op-${l.toLowerCase()}`}>
                  {fmtCredits(v)}
                </span>
              </div>
            ))}
          </div>
          {Object.entries(b.by_kind)
            .filter(([, v]) => Number(v) > 0)
            .map(([k, v]) => (
              <Meter
                key={k}
                label={k}
                value={Number(v)}
                max={total}
                valueText={`${fmtCredits(v)} credits`}
                tone={k === "purchase" ? "packs" : "supply"}
              />
            ))}
        </Card>
      )}
    </>
  );
}

function GrantTable({ api, grants, onChange }: { api: OperatorApi; grants: Grant[]; onChange: () => void }) {
  const [error, setError] = useState<Error | null>(null);
  const voidGrant = async (g: Grant) => {
    const reason = window.prompt(`Void ${g.id}: ${fmtCredits(g.remaining)} credits are written off. Reason?`);
    if (reason === null) return;
    setError(null);
    try {
      await api.voidGrant(g.id, reason.trim());
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  if (grants.length === 0) return <Empty>No grants: the account has no credits. Add some below.</Empty>;
  return (
    <>
      <div className="table-wrap">
        <table data-testid="grants-table">
          <caption className="sr-only">Grants, in burn-down order</caption>
          <thead>
            <tr>
              <th scope="col">Grant</th>
              <th scope="col">Kind</th>
              <th scope="col" className="num">
                Amount
              </th>
              <th scope="col" className="num">
                Remaining
              </th>
              <th scope="col">Priority</th>
              <th scope="col">Expires</th>
              <th scope="col">Status</th>
              <th scope="col">Reason / reference</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {grants.map((g) => (
              <tr key={g.id}>
                <td className="mono">{g.id}</td>
                <td>{g.kind}</td>
                <td className="num">{fmtCredits(g.amount)}</td>
                <td className="num">{fmtCredits(g.remaining)}</td>
                <td>{g.priority}</td>
                <td>{g.expires_at ? fmtDate(g.expires_at) : "never"}</td>
                <td>{g.status ?? "active"}</td>
                <td>{String(g.metadata.reason ?? g.reference ?? "")}</td>
                <td>
                  {(g.status ?? "active") === "active" && g.remaining !== "0" && (
                    <button
                      type="button"
                      className="link"
                      onClick={() => void voidGrant(g)}
                      aria-label={`Void grant ${g.id}`}
                    >
                      Void
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {error && <ErrorNote error={error} />}
    </>
  );
}

function AddCredits({ api, accountId, onDone }: { api: OperatorApi; accountId: string; onDone: () => void }) {
  const [kind, setKind] = useState("adjustment");
  const [amount, setAmount] = useState("");
  const [expires, setExpires] = useState("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    if (kind === "adjustment" && !reason.trim()) {
      setError(new Error("An adjustment needs a reason: say why the credits are added."));
      return;
    }
    try {
      const g = await api.grant(accountId, {
        kind,
        amount: amount.trim(),
        ...(expires ? { expires_at: new Date(expires + "T00:00:00Z").toISOString() } : {}),
        ...(reason.trim() ? { metadata: { reason: reason.trim() } } : {}),
      });
      setDone(`Granted ${fmtCredits(g.amount)} credits (${g.id}).`);
      setAmount("");
      setReason("");
      onDone();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <form onSubmit={submit} className="inline-form" aria-label="Add credits">
      <h3>Add credits or an adjustment</h3>
      <Field label="Kind">
        {(p) => (
          <select {...p} value={kind} onChange={(e) => setKind(e.target.value)}>
            {KINDS.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Credits">
        {(p) => (
          <input
            {...p}
            inputMode="decimal"
            required
            value={amount}
            onChange={(e) => setAmount(e.target.value)}
          />
        )}
      </Field>
      <Field label="Expires (optional)">
        {(p) => <input {...p} type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />}
      </Field>
      <Field label="Reason">
        {(p) => <input {...p} value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} />}
      </Field>
      <button type="submit" className="primary">
        Grant
      </button>
      {done && (
        <span role="status" className="ok-text">
          {done}
        </span>
      )}
      {error && <ErrorNote error={error} />}
      <p className="hint">
        To remove credits, void the grant they are in (what remains is written off, with your reason).
      </p>
    </form>
  );
}

function UsageSection({
  api,
  accountId,
  onChange,
}: {
  api: OperatorApi;
  accountId: string;
  onChange: () => void;
}) {
  const [filters, setFilters] = useState({ service: "", credit_source: "", from: "", to: "" });
  const [applied, setApplied] = useState(filters);
  const [usage, reload] = useLoad(
    () =>
      api.usage(accountId, {
        ...(applied.service ? { service: applied.service } : {}),
        ...(applied.credit_source ? { credit_source: applied.credit_source } : {}),
        ...(applied.from ? { from: new Date(applied.from + "T00:00:00").toISOString() } : {}),
        // "To" is a whole day, included: up to the next midnight.
        ...(applied.to
          ? { to: new Date(Date.parse(applied.to + "T00:00:00") + 86_400_000).toISOString() }
          : {}),
      }),
    [api, accountId, applied],
  );
  return (
    <Card title="Usage and refunds">
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filters);
        }}
        aria-label="Filter usage"
      >
        <Field label="Service">
          {(p) => (
            <input
              {...p}
              value={filters.service}
              onChange={(e) => setFilters({ ...filters, service: e.target.value })}
            />
          )}
        </Field>
        <Field label="Paid from">
          {(p) => (
            <select
              {...p}
              value={filters.credit_source}
              onChange={(e) => setFilters({ ...filters, credit_source: e.target.value })}
            >
              <option value="">Any</option>
              {[...KINDS, "overage"].map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="From">
          {(p) => (
            <input
              {...p}
              type="date"
              value={filters.from}
              onChange={(e) => setFilters({ ...filters, from: e.target.value })}
            />
          )}
        </Field>
        <Field label="To">
          {(p) => (
            <input
              {...p}
              type="date"
              value={filters.to}
              onChange={(e) => setFilters({ ...filters, to: e.target.value })}
            />
          )}
        </Field>
        <button type="submit">Apply</button>
      </form>
      <Show value={usage} what="usage" retry={() => void reload()}>
        {(page) => <UsageTable api={api} page={page} onChange={() => (void reload(), onChange())} />}
      </Show>
    </Card>
  );
}

function UsageTable({
  api,
  page,
  onChange,
}: {
  api: OperatorApi;
  page: Page<OperatorUsage>;
  onChange: () => void;
}) {
  const [refunding, setRefunding] = useState<string | null>(null);
  const [shown, setShown] = useState(25);
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<Error | null>(null);
  if (page.data.length === 0)
    return <Empty>No usage matches. Usage your backend reports with POST /v1/usage appears here.</Empty>;
  const refund = async (e: FormEvent, u: OperatorUsage) => {
    e.preventDefault();
    setError(null);
    try {
      await api.refund(u.id, {
        ...(amount.trim() ? { amount: amount.trim() } : {}),
        ...(reason.trim() ? { reason: reason.trim() } : {}),
      });
      setRefunding(null);
      setAmount("");
      setReason("");
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <div className="table-wrap">
      <table data-testid="op-usage-table">
        <caption className="sr-only">Usage, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Service</th>
            <th scope="col">Quantity</th>
            <th scope="col" className="num">
              Cost
            </th>
            <th scope="col" className="num">
              Refunded
            </th>
            <th scope="col">From</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {page.data.slice(0, shown).map((u) => (
            <tr key={u.id}>
              <td>{fmtDate(u.recorded_at)}</td>
              <td className="mono">{u.id}</td>
              <td>{u.service}</td>
              <td>{u.quantity ?? "—"}</td>
              <td className="num">{fmtCredits(u.cost)}</td>
              <td className="num">{fmtCredits(u.refunded)}</td>
              <td>{u.parts.map((p) => p.kind).join(", ") || (u.overage !== "0" ? "overage" : "—")}</td>
              <td>
                {refunding === u.id ? (
                  <form
                    onSubmit={(e) => void refund(e, u)}
                    className="inline-form compact"
                    aria-label={`Refund ${u.id}`}
                  >
                    <Field label="Credits" hint="Empty: all that is left">
                      {(p) => (
                        <input
                          {...p}
                          inputMode="decimal"
                          value={amount}
                          onChange={(e) => setAmount(e.target.value)}
                        />
                      )}
                    </Field>
                    <Field label="Reason">
                      {(p) => <input {...p} value={reason} onChange={(e) => setReason(e.target.value)} />}
                    </Field>
                    <button type="submit" className="primary">
                      Refund
                    </button>
                    <button type="button" onClick={() => setRefunding(null)}>
                      Cancel
                    </button>
                    {error && <ErrorNote error={error} />}
                  </form>
                ) : (
                  u.cost !== u.refunded && (
                    <button
                      type="button"
                      className="link"
                      onClick={() => setRefunding(u.id)}
                      aria-label={`Refund ${u.id}`}
                    >
                      Refund
                    </button>
                  )
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.data.length > shown && (
        <button type="button" onClick={() => setShown((n) => n + 25)}>
          Show more ({page.data.length - shown} more loaded)
        </button>
      )}
      {page.next_cursor && (
        <p className="muted">Showing the newest 100; narrow the filters to find older events.</p>
      )}
    </div>
  );
}

/** Holds and refunds, found in the account's journal (the API lists neither per account). */
function HoldsAndRefunds({ api, entries }: { api: OperatorApi; entries: Page<Entry> }) {
  const holdIds = useMemo(
    () =>
      [
        ...new Set(entries.data.filter((e) => e.ledger.startsWith("hold:")).map((e) => e.ledger.slice(5))),
      ].slice(0, 20),
    [entries],
  );
  const [holds, reload] = useLoad(
    () => Promise.all(holdIds.map((h) => api.hold(h))),
    [api, holdIds.join(",")],
  );
  const refunds = entries.data.filter((e) => e.kind === "refund" && e.ledger.startsWith("grant:"));
  return (
    <div className="grid2">
      <Card title="Holds">
        {holdIds.length === 0 ? (
          <Empty>
            No holds in the recent journal. Holds set credits aside for calls and jobs in progress.
          </Empty>
        ) : (
          <Show value={holds} what="holds" retry={() => void reload()}>
            {(hs) => (
              <div className="table-wrap">
                <table data-testid="holds-table">
                  <caption className="sr-only">Recent holds</caption>
                  <thead>
                    <tr>
                      <th scope="col">Hold</th>
                      <th scope="col">Status</th>
                      <th scope="col" className="num">
                        Amount
                      </th>
                      <th scope="col">Expires</th>
                    </tr>
                  </thead>
                  <tbody>
                    {hs.map((h) => (
                      <tr key={String(h.id)}>
                        <td className="mono">{String(h.id)}</td>
                        <td>{String(h.status)}</td>
                        <td className="num">{fmtCredits(String(h.amount))}</td>
                        <td>{fmtDate(String(h.expires_at))}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Show>
        )}
      </Card>
      <Card title="Refunds">
        {refunds.length === 0 ? (
          <Empty>No refunds in the recent journal. Refund a usage from the table above.</Empty>
        ) : (
          <ul className="plain-list">
            {refunds.map((e) => (
              <li key={e.seq}>
                {fmtDate(e.at)}: <strong>{fmtCredits(e.amount)}</strong> credits back to{" "}
                <span className="mono">{e.ledger.slice(6)}</span> (<span className="mono">{e.ref}</span>)
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}

function Keys({ api, accountId }: { api: OperatorApi; accountId: string }) {
  const [keys, reload] = useLoad(
    () => api.raw<Page<ApiKey>>("GET", `/v1/accounts/${encodeURIComponent(accountId)}/keys`),
    [api, accountId],
  );
  return (
    <Card title="API keys">
      <Show value={keys} what="keys" retry={() => void reload()}>
        {(p) =>
          p.data.length === 0 ? (
            <Empty>No API keys. The customer creates keys in their dashboard.</Empty>
          ) : (
            <ul className="plain-list">
              {p.data.map((k) => (
                <li key={k.id}>
                  <span className="mono">{k.prefix}…</span> {k.name ?? ""}{" "}
                  <span className="muted">({k.scopes.join(", ")})</span>{" "}
                  {k.revoked_at ? (
                    <span className="tag tag-off">revoked</span>
                  ) : (
                    <span className="tag">active</span>
                  )}
                </li>
              ))}
            </ul>
          )
        }
      </Show>
    </Card>
  );
}
