import { useEffect, useMemo, useState } from "react";
import type { Estimate, RateCardJson, ServiceRate } from "../api.ts";
import { fmtCredits } from "../format.ts";
import { ErrorNote, Field } from "../ui.tsx";

interface Modifier {
  key: string;
  value: unknown;
  description?: string;
}

function modifiersOf(rate: ServiceRate): Modifier[] {
  return Array.isArray(rate.modifiers) ? (rate.modifiers as Modifier[]) : [];
}

/** What one unit costs, in words: "660 credits per 60 second". */
export function describeRate(rate: ServiceRate): string {
  if (rate.dimensions)
    return Object.entries(rate.dimensions)
      .map(([d, r]) => `${d}: ${fmtCredits(r.price)} per ${fmtCredits(r.per ?? "1")}`)
      .join("; ");
  if (rate.price !== undefined) {
    const fee = rate.fee && rate.fee !== "0" ? ` + ${fmtCredits(rate.fee)} per event` : "";
    return `${fmtCredits(rate.price)} per ${fmtCredits(rate.per ?? "1")} ${rate.unit}${rate.per === "1" ? "" : "s"}${fee}`;
  }
  return `${fmtCredits(rate.fee ?? "0")} per ${rate.unit}`;
}

/**
 * The credit calculator: pick a service, give quantities and options, and see the exact cost the server
 * computes (the estimate operation: the same pricing as a real call, recording nothing), as you type.
 */
export function EstimateForm({
  card,
  estimate,
  testId,
}: {
  card: RateCardJson;
  estimate: (body: Record<string, unknown>) => Promise<Estimate>;
  testId?: string;
}) {
  const names = useMemo(() => Object.keys(card.services).sort(), [card]);
  const [service, setService] = useState(names[0] ?? "");
  const [quantity, setQuantity] = useState("60");
  const [quantities, setQuantities] = useState<Record<string, string>>({});
  const [mods, setMods] = useState<Record<string, boolean>>({});
  const [result, setResult] = useState<Estimate | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const rate = card.services[service];

  const body = useMemo(() => {
    if (!rate) return null;
    const metadata: Record<string, unknown> = {};
    for (const m of modifiersOf(rate)) if (mods[`${m.key}=${String(m.value)}`]) metadata[m.key] = m.value;
    const b: Record<string, unknown> = { service, metadata };
    if (rate.dimensions) {
      const q: Record<string, string> = {};
      for (const d of Object.keys(rate.dimensions)) if (quantities[d]?.trim()) q[d] = quantities[d]!.trim();
      b.quantities = q;
    } else if (rate.price !== undefined) b.quantity = quantity.trim();
    return b;
  }, [rate, service, quantity, quantities, mods]);

  // Ask the server as the inputs change (debounced); the last answer wins.
  useEffect(() => {
    if (!body) return;
    let live = true;
    const t = setTimeout(() => {
      estimate(body)
        .then((r) => {
          if (!live) return;
          setResult(r);
          setError(null);
        })
        .catch((err: Error) => {
          if (!live) return;
          setResult(null);
          setError(err);
        });
    }, 200);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [body, estimate, card]);

  if (names.length === 0) return <p>The rate card has no services.</p>;
  return (
    <form className="estimate" onSubmit={(e) => e.preventDefault()} aria-label="Credit calculator">
      <Field
        label="Service"
        hint={rate ? `${(rate.description as string | undefined) ?? ""} ${describeRate(rate)}`.trim() : ""}
      >
        {(p) => (
          <select
            {...p}
            value={service}
            onChange={(e) => {
              setService(e.target.value);
              setMods({});
            }}
          >
            {names.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        )}
      </Field>
      {rate?.dimensions ? (
        Object.entries(rate.dimensions).map(([d, r]) => (
          <Field key={d} label={`${d} (${(r as { unit?: string }).unit ?? rate.unit}s)`}>
            {(p) => (
              <input
                {...p}
                inputMode="decimal"
                value={quantities[d] ?? ""}
                onChange={(e) => setQuantities((q) => ({ ...q, [d]: e.target.value }))}
              />
            )}
          </Field>
        ))
      ) : rate?.price !== undefined ? (
        <Field
          label={`Quantity (${rate.unit}s)`}
          hint={
            rate.unit === "second" && Number(quantity) > 0
              ? `${Math.round((Number(quantity) / 60) * 100) / 100} minutes`
              : undefined
          }
          error={
            error && "field" in error && (error as { field?: string }).field === "quantity"
              ? error.message
              : undefined
          }
        >
          {(p) => (
            <input
              {...p}
              inputMode="decimal"
              value={quantity}
              onChange={(e) => setQuantity(e.target.value)}
            />
          )}
        </Field>
      ) : (
        <p className="muted">A fixed price per {rate?.unit}: no quantity to give.</p>
      )}
      {rate &&
        modifiersOf(rate).map((m) => {
          const k = `${m.key}=${String(m.value)}`;
          return (
            <label key={k} className="check">
              <input
                type="checkbox"
                checked={!!mods[k]}
                onChange={(e) => setMods((x) => ({ ...x, [k]: e.target.checked }))}
              />
              {m.key} = {String(m.value)}
              {m.description ? ` (${m.description})` : ""}
            </label>
          );
        })}
      <output className="estimate-result" aria-live="polite" data-testid={testId}>
        {result ? (
          <>
            Costs{" "}
            <strong data-testid={testId ? `${testId}-cost` : undefined}>{fmtCredits(result.cost)}</strong>{" "}
            credits <span className="muted">(rate card version {result.version})</span>
          </>
        ) : error ? null : (
          "Calculating…"
        )}
      </output>
      {error && <ErrorNote error={error} />}
    </form>
  );
}
