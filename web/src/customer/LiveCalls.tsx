import { useEffect } from "react";
import type { CustomerApi } from "../api.ts";
import { fmtCredits, fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import type { LiveEvent, LiveStatus } from "../live.ts";
import { Card, Empty, Show } from "../ui.tsx";

/** A live session (voice call) as the sessions API answers it; fields beyond these are ignored. */
interface LiveSession {
  id: string;
  service?: string;
  status?: string;
  started_at?: string;
  answered_at?: string | null;
  reported_seconds?: number | string;
  used_seconds?: number | string;
  granted_seconds?: number | string;
  max_seconds?: number | string;
  held?: number | string;
  [k: string]: unknown;
}

export const SESSIONS_PATH = "/api/v1/sessions?status=active";

function rowsOf(body: unknown): LiveSession[] {
  if (Array.isArray(body)) return body as LiveSession[];
  if (body && typeof body === "object" && Array.isArray((body as { data?: unknown }).data))
    return (body as { data: LiveSession[] }).data;
  return [];
}

/** Calls in progress, refreshed on every live event (and every few seconds while calls are running). */
export function LiveCalls({
  api,
  lastEvent,
  liveStatus,
}: {
  api: CustomerApi;
  lastEvent: LiveEvent | null;
  liveStatus: LiveStatus;
}) {
  const [sessions, reload] = useLoad(async () => rowsOf(await api.raw("GET", SESSIONS_PATH)), [api]);
  useEffect(() => {
    if (lastEvent) void reload();
  }, [lastEvent, reload]);
  const running = sessions.state === "ok" && sessions.value.length > 0;
  useEffect(() => {
    if (!running || liveStatus === "live") return;
    const t = setInterval(() => void reload(), 5000);
    return () => clearInterval(t);
  }, [running, liveStatus, reload]);
  return (
    <Card title="Live calls in progress">
      <Show value={sessions} what="live calls" feature="Live call metering" retry={() => void reload()}>
        {(rows) =>
          rows.length === 0 ? (
            <Empty>
              No calls in progress. A call appears here while it runs, with the seconds used so far.
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
                    <th scope="col">Seconds so far</th>
                    <th scope="col">Longest it can last</th>
                    <th scope="col">Credits set aside</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((s) => (
                    <tr key={s.id}>
                      <td className="mono">{s.id}</td>
                      <td>{s.service ?? "—"}</td>
                      <td>{fmtDate(s.answered_at ?? s.started_at ?? null)}</td>
                      <td>{String(s.reported_seconds ?? s.used_seconds ?? 0)}</td>
                      <td>{s.max_seconds !== undefined ? `${String(s.max_seconds)} s` : "—"}</td>
                      <td>{s.held !== undefined ? fmtCredits(s.held) : "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
    </Card>
  );
}
