import { useMemo, useState } from "react";
import type { CustomerApi, CustomerUsage } from "../api.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";
import { sum, usageCsv } from "./aggregate.ts";

const PAGE = 1000;
const SHOWN = 100;

/** Every usage event, newest first, with filters and a CSV export of what the filters keep. */
export function UsageHistory({ api }: { api: CustomerApi }) {
  const [extra, setExtra] = useState<CustomerUsage[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [moreError, setMoreError] = useState<Error | null>(null);
  const [first, reload] = useLoad(async () => {
    const page = await api.usagePage(PAGE);
    setExtra([]);
    setCursor(page.next);
    return page.rows;
  }, [api]);
  const [service, setService] = useState("");
  const [source, setSource] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [shown, setShown] = useState(SHOWN);

  const all = useMemo(() => (first.state === "ok" ? [...first.value, ...extra] : []), [first, extra]);
  const services = useMemo(() => [...new Set(all.map((r) => r.service_type))].sort(), [all]);
  const sources = useMemo(() => [...new Set(all.map((r) => r.credit_source))].sort(), [all]);
  const filtered = useMemo(() => {
    const fromT = from ? new Date(from + "T00:00:00").getTime() : -Infinity;
    const toT = to ? new Date(to + "T00:00:00").getTime() + 86_400_000 : Infinity;
    return all.filter((r) => {
      const t = Date.parse(r.created_at);
      return (
        (!service || r.service_type === service) &&
        (!source || r.credit_source === source) &&
        t >= fromT &&
        t < toT
      );
    });
  }, [all, service, source, from, to]);

  const loadMore = async () => {
    if (!cursor) return;
    setMoreError(null);
    try {
      const page = await api.usagePage(PAGE, cursor);
      setExtra((e) => [...e, ...page.rows]);
      setCursor(page.next);
    } catch (err) {
      setMoreError(err as Error);
    }
  };

  const exportCsv = () => {
    const blob = new Blob([usageCsv(filtered)], { type: "text/csv;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `tally-usage-${new Date().toISOString().slice(0, 10)}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <>
      <h1>Usage history</h1>
      <Card
        title="Filters"
        actions={
          <button type="button" onClick={exportCsv} disabled={filtered.length === 0}>
            Export CSV ({filtered.length})
          </button>
        }
      >
        <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter usage">
          <Field label="Service">
            {(p) => (
              <select {...p} value={service} onChange={(e) => setService(e.target.value)}>
                <option value="">All services</option>
                {services.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Paid from">
            {(p) => (
              <select {...p} value={source} onChange={(e) => setSource(e.target.value)}>
                <option value="">Any source</option>
                {sources.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label="From (day)">
            {(p) => <input {...p} type="date" value={from} onChange={(e) => setFrom(e.target.value)} />}
          </Field>
          <Field label="To (day, included)">
            {(p) => <input {...p} type="date" value={to} onChange={(e) => setTo(e.target.value)} />}
          </Field>
        </form>
        <p className="muted" role="status" aria-live="polite">
          {filtered.length} of {all.length} events loaded, {fmtCredits(sum(filtered))} credits.
          {cursor && " Older events are not loaded yet."}
        </p>
      </Card>
      <Show value={first} what="usage" retry={() => void reload()}>
        {() =>
          all.length === 0 ? (
            <Empty>No usage yet. Each call your application reports appears here, newest first.</Empty>
          ) : filtered.length === 0 ? (
            <Empty>No event matches these filters. Clear a filter to see more.</Empty>
          ) : (
            <div className="table-wrap">
              <table data-testid="usage-table">
                <caption className="sr-only">Usage events, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Service</th>
                    <th scope="col" className="num">
                      Credits
                    </th>
                    <th scope="col">Paid from</th>
                    <th scope="col" className="num">
                      Audio (s)
                    </th>
                    <th scope="col">Event id</th>
                  </tr>
                </thead>
                <tbody>
                  {filtered.slice(0, shown).map((r) => (
                    <tr key={r.id}>
                      <td>{fmtDate(r.created_at)}</td>
                      <td>{r.service_type}</td>
                      <td className="num">{fmtCredits(r.credits_used)}</td>
                      <td>{r.credit_source}</td>
                      <td className="num">{r.audio_duration || "—"}</td>
                      <td className="mono">{r.id}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
      <div className="row">
        {filtered.length > shown && (
          <button type="button" onClick={() => setShown((s) => s + SHOWN)}>
            Show {Math.min(SHOWN, filtered.length - shown)} more rows
          </button>
        )}
        {cursor && (
          <button type="button" onClick={() => void loadMore()}>
            Load older events
          </button>
        )}
      </div>
      {moreError && <ErrorNote error={moreError} onRetry={() => void loadMore()} />}
    </>
  );
}
