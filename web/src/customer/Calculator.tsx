import { useCallback } from "react";
import type { CustomerApi, Estimate, RateCardJson } from "../api.ts";
import { fmtCredits } from "../format.ts";
import { useLoad } from "../hooks.ts";
import { EstimateForm } from "../shared/EstimateForm.tsx";
import { Card, Show } from "../ui.tsx";

/** The credit calculator over the rate card; on a server without it, the published multipliers. */
export function Calculator({ api }: { api: CustomerApi }) {
  const [card, reload] = useLoad(() => api.raw<RateCardJson>("GET", "/api/v1/credits/rate-card"), [api]);
  const estimate = useCallback(
    (body: Record<string, unknown>) => api.raw<Estimate>("POST", "/api/v1/credits/estimate", body),
    [api],
  );
  return (
    <>
      <h1>Credit calculator</h1>
      <Card title="What a call costs">
        {card.state === "missing" ? (
          <Multipliers api={api} />
        ) : (
          <Show value={card} what="the rate card" retry={() => void reload()}>
            {(c) => <EstimateForm card={c} estimate={estimate} testId="customer-estimate" />}
          </Show>
        )}
      </Card>
    </>
  );
}

function Multipliers({ api }: { api: CustomerApi }) {
  const [m, reload] = useLoad(() => api.multipliers(), [api]);
  return (
    <Show value={m} what="prices" retry={() => void reload()}>
      {(rates) => (
        <>
          <p className="muted">
            This server publishes credits per service (per minute for audio, per 30 seconds for music, per
            request otherwise) but no calculator.
          </p>
          <table>
            <caption className="sr-only">Credits per service</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col" className="num">
                  Credits
                </th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(rates).map(([s, v]) => (
                <tr key={s}>
                  <td>{s}</td>
                  <td className="num">{fmtCredits(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </Show>
  );
}
