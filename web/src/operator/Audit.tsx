import type { OperatorApi } from "../api.ts";
import { fmtDate } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { Card, Show } from "../ui.tsx";

/** The audit: every balance recomputed from the journal. */
export function Audit({ api }: { api: OperatorApi }) {
  const [audit, reload] = useLoad(() => api.audit(), [api]);
  return (
    <>
      <h1>Audit</h1>
      <Card
        title="Ledger audit"
        actions={
          <button type="button" onClick={() => void reload()}>
            Run again
          </button>
        }
      >
        <Show value={audit} what="the audit (it recomputes every balance)" retry={() => void reload()}>
          {(a) => (
            <>
              <p
                className={a.ok ? "note note-ok" : "note note-error"}
                role="status"
                data-testid="audit-status"
              >
                {a.ok
                  ? `The books balance: every grant equals its journal postings and no credit was created or lost (checked ${fmtDate(a.checked_at)}).`
                  : `${a.discrepancies.length} discrepancies found (checked ${fmtDate(a.checked_at)}). Keep the server running and report them with this page.`}
              </p>
              <div className="grid2">
                <dl className="kv">
                  {Object.entries(a.counts).map(([k, v]) => (
                    <div key={k}>
                      <dt>{k.replace(/_/g, " ")}</dt>
                      <dd>{String(v)}</dd>
                    </div>
                  ))}
                </dl>
                <dl className="kv">
                  {Object.entries(a.totals).map(([k, v]) => (
                    <div key={k}>
                      <dt>{k.replace(/_/g, " ")}</dt>
                      <dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
                    </div>
                  ))}
                </dl>
              </div>
              {a.discrepancies.length > 0 && (
                <pre className="pre">{JSON.stringify(a.discrepancies, null, 2)}</pre>
              )}
            </>
          )}
        </Show>
      </Card>
    </>
  );
}
