import { useState } from "react";
import type { OperatorApi } from "../api.ts";
import { useLoad } from "../hooks.ts";
import { GenericTable, listOf } from "../shared/GenericTable.tsx";
import { Card, Empty, Show } from "../ui.tsx";

export const WEBHOOKS_PATH = "/v1/webhooks";

/** Webhook endpoints and the deliveries of the one selected. */
export function Webhooks({ api }: { api: OperatorApi }) {
  const [hooks, reload] = useLoad(async () => listOf(await api.raw("GET", WEBHOOKS_PATH)), [api]);
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <>
      <h1>Webhooks</h1>
      <Card title="Endpoints">
        <Show value={hooks} what="webhooks" feature="Webhooks" retry={() => void reload()}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No webhook endpoints. Add one with POST {WEBHOOKS_PATH} to receive events.</Empty>
            ) : (
              <>
                <GenericTable rows={rows} caption="Webhook endpoints" testId="webhooks-table" />
                <div className="row">
                  {rows.map((r) => (
                    <button
                      key={String(r.id)}
                      type="button"
                      onClick={() => setSelected(String(r.id))}
                      aria-pressed={selected === String(r.id)}
                    >
                      Deliveries of {String(r.url ?? r.id)}
                    </button>
                  ))}
                </div>
              </>
            )
          }
        </Show>
      </Card>
      {selected && <Deliveries api={api} id={selected} />}
    </>
  );
}

function Deliveries({ api, id }: { api: OperatorApi; id: string }) {
  const [rows, reload] = useLoad(
    async () => listOf(await api.raw("GET", `${WEBHOOKS_PATH}/${encodeURIComponent(id)}/deliveries`)),
    [api, id],
  );
  return (
    <Card title={`Deliveries of ${id}`}>
      <Show value={rows} what="deliveries" feature="Webhook deliveries" retry={() => void reload()}>
        {(r) =>
          r.length === 0 ? <Empty>No deliveries yet.</Empty> : <GenericTable rows={r} caption="Deliveries" />
        }
      </Show>
    </Card>
  );
}
