import type { LiveEvent, LiveStatus } from "../live.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { Card, Empty, NotAvailable } from "../ui.tsx";

/** A call in progress, as the stream's session events describe it. */
export interface LiveCall {
  session_id: string;
  service: string;
  direction?: string;
  started_at: string;
  used_seconds: number;
  max_seconds?: number;
  /** Seconds left when the server warned that the balance covers no further grant. */
  seconds_left?: number;
}

type Calls = Record<string, LiveCall>;

/**
 * Folds one stream event into the calls in progress: session.started adds a call, session.final_warning
 * marks it, session.ended and session.abandoned remove it. Other events leave the calls as they are.
 */
export function foldCalls(calls: Calls, e: LiveEvent): Calls {
  const d = (e.data ?? {}) as Record<string, unknown>;
  const id = typeof d.session_id === "string" ? d.session_id : null;
  if (!id) return calls;
  if (e.type === "session.started")
    return {
      ...calls,
      [id]: {
        session_id: id,
        service: String(d.service ?? ""),
        ...(typeof d.direction === "string" ? { direction: d.direction } : {}),
        started_at: typeof d.created_at === "string" ? d.created_at : new Date().toISOString(),
        used_seconds: Number(d.used_seconds ?? 0),
        ...(d.max_seconds !== undefined ? { max_seconds: Number(d.max_seconds) } : {}),
      },
    };
  if (e.type === "session.final_warning" && calls[id])
    return {
      ...calls,
      [id]: {
        ...calls[id],
        used_seconds: Number(d.used_seconds ?? 0),
        seconds_left: Number(d.seconds_left ?? 0),
      },
    };
  if (e.type === "session.ended" || e.type === "session.abandoned") {
    if (!calls[id]) return calls;
    const next = { ...calls };
    delete next[id];
    return next;
  }
  return calls;
}

/** Calls in progress, from the account's live event stream; `held` is what the calls have set aside. */
export function LiveCalls({
  calls,
  held,
  liveStatus,
}: {
  calls: Calls;
  held: string | null;
  liveStatus: LiveStatus;
}) {
  const rows = Object.values(calls).sort((a, b) => a.started_at.localeCompare(b.started_at));
  return (
    <Card title="Live calls in progress">
      {liveStatus === "polling" ? (
        <NotAvailable feature="Live call metering (the event stream)" />
      ) : (
        <>
          {held !== null && Number(held) > 0 && (
            <p data-testid="held">
              <strong>{fmtCredits(held)}</strong> credits are set aside for calls and jobs in progress.
            </p>
          )}
          {rows.length === 0 ? (
            <Empty>
              No calls in progress since you opened this page. A call appears here as it starts and leaves
              when it ends.
            </Empty>
          ) : (
            <div className="table-wrap">
              <table data-testid="live-calls">
                <caption className="sr-only">Calls in progress</caption>
                <thead>
                  <tr>
                    <th scope="col">Call</th>
                    <th scope="col">Service</th>
                    <th scope="col">Started</th>
                    <th scope="col">Longest it can last</th>
                    <th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((c) => (
                    <tr key={c.session_id}>
                      <td className="mono">{c.session_id}</td>
                      <td>
                        {c.service}
                        {c.direction === "outbound" ? " (outbound)" : ""}
                      </td>
                      <td>{fmtDate(c.started_at)}</td>
                      <td>{c.max_seconds !== undefined ? `${c.max_seconds} s` : "—"}</td>
                      <td>
                        {c.seconds_left !== undefined ? (
                          <span className="tag tag-off">credits run out in {c.seconds_left} s</span>
                        ) : (
                          <span className="tag tag-active">in progress</span>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </Card>
  );
}
