import { useEffect, useState, type FormEvent } from "react";
import type { CheckoutSession, Credits, CustomerApi, PaygInfo } from "../api.ts";
import { fmtCredits, fmtMoney } from "../format.ts";
import { useLoad, type Loadable } from "../hooks.ts";
import { Card, ErrorNote, Field, Show } from "../ui.tsx";

/** Credits for a dollar amount, as the server's quote computes them: cents × credits per dollar / 100, down to the micro-credit. */
export function previewCredits(amountUsd: number, info: PaygInfo): number {
  const cents = Math.round(amountUsd * 100);
  return Math.floor(Math.round(cents * info.credits_per_dollar * 1e4)) / 1e6;
}

/** Buy credits: a pay-as-you-go amount with a live preview, through the server's checkout flow. */
export function Buy({
  api,
  credits,
  params,
  onBought,
}: {
  api: CustomerApi;
  credits: Loadable<Credits>;
  params: URLSearchParams;
  onBought: () => void;
}) {
  const [info, reloadInfo] = useLoad(() => api.paygInfo(), [api]);
  const returned = params.get("checkout");
  useEffect(() => {
    if (returned) onBought();
  }, [returned, onBought]);
  return (
    <>
      <h1>Buy credits</h1>
      {returned === "success" && (
        <div className="note note-ok" role="status">
          <strong>Payment received.</strong> Your credits are added as soon as the payment is confirmed; the
          pack bar on the overview shows them.
        </div>
      )}
      {returned === "cancel" && (
        <div className="note note-muted" role="status">
          Checkout cancelled: nothing was charged.
        </div>
      )}
      {credits.state === "ok" && (
        <p className="muted">
          You have {fmtCredits(credits.value.payg_balance)} purchased credits and{" "}
          {fmtCredits(credits.value.credits_balance)} from your monthly supply. Purchased credits are used
          after the monthly supply and do not expire.
        </p>
      )}
      <Show value={info} what="prices" feature="Buying credits" retry={() => void reloadInfo()}>
        {(i) => <PayAsYouGo api={api} info={i} />}
      </Show>
    </>
  );
}

function PayAsYouGo({ api, info }: { api: CustomerApi; info: PaygInfo }) {
  const [amount, setAmount] = useState(String(Math.max(info.min_amount_usd, 10)));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [session, setSession] = useState<CheckoutSession | null>(null);
  const value = Number(amount);
  const valid = amount.trim() !== "" && Number.isFinite(value) && /^\d+(\.\d{1,2})?$/.test(amount.trim());
  const inRange = valid && value >= info.min_amount_usd && value <= info.max_amount_usd;
  const fieldError = !valid
    ? "Enter an amount in dollars, with at most 2 decimals (for example 25 or 12.50)."
    : !inRange
      ? `Enter an amount from ${fmtMoney(info.min_amount_usd, info.currency)} to ${fmtMoney(info.max_amount_usd, info.currency)}.`
      : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (fieldError) return;
    setBusy(true);
    setError(null);
    try {
      const s = await api.createCheckout({ amount_usd: value });
      const url = s.checkout_url ?? s.url;
      if (typeof url === "string" && url) {
        window.location.assign(url);
        return;
      }
      setSession(s);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card title="Pay as you go">
      <form onSubmit={submit} className="buy-form">
        <Field
          label={`Amount (${info.currency})`}
          hint={`${fmtCredits(info.credits_per_dollar)} credits per dollar; from ${fmtMoney(info.min_amount_usd, info.currency)} to ${fmtMoney(info.max_amount_usd, info.currency)}.`}
          error={amount.trim() === "" ? undefined : fieldError}
        >
          {(p) => (
            <input
              {...p}
              inputMode="decimal"
              value={amount}
              onChange={(e) => {
                setAmount(e.target.value);
                setSession(null);
              }}
            />
          )}
        </Field>
        <p className="preview" aria-live="polite" data-testid="payg-preview">
          You receive <strong>{valid && inRange ? fmtCredits(previewCredits(value, info)) : "—"}</strong>{" "}
          credits
        </p>
        <button type="submit" className="primary" disabled={busy || !!fieldError}>
          {busy ? "Opening checkout…" : "Continue to checkout"}
        </button>
      </form>
      {error && <ErrorNote error={error} />}
      {session && (
        <div className="note note-muted" role="status">
          <strong>Checkout session {session.session_id} was created</strong> for{" "}
          {fmtCredits(session.credits_to_receive)} credits ({fmtMoney(session.amount_usd, info.currency)}).
          This server has no payment page connected yet, so nothing was charged and no credits were added. Ask
          your operator to enable purchases.
        </div>
      )}
    </Card>
  );
}
