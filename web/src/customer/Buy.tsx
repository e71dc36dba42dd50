import { useEffect, useState, type FormEvent } from "react";
import type { CheckoutSession, CheckoutStatus, Credits, CustomerApi, Pack, PaygInfo } from "../api.ts";
import { fmtCredits, fmtDate, fmtMoney } from "../format.ts";
import { useLoad, type Loadable } from "../hooks.ts";
import { Card, Empty, ErrorNote, Field, Show } from "../ui.tsx";

interface Tier {
  min_amount_usd: number;
  credits_per_dollar: number;
}

/**
 * Credits for a dollar amount, as the server's quote computes them: cents × credits per dollar / 100, down
 * to the micro-credit, at the bulk tier the amount reaches when the server lists its tiers.
 */
export function previewCredits(amountUsd: number, info: PaygInfo): number {
  const cents = Math.round(amountUsd * 100);
  let rate = info.credits_per_dollar;
  let best = -1;
  const tiers = Array.isArray(info.tiers) ? (info.tiers as Tier[]) : [];
  for (const t of tiers)
    if (t.min_amount_usd * 100 <= cents && t.min_amount_usd > best) {
      best = t.min_amount_usd;
      rate = t.credits_per_dollar;
    }
  return Math.floor(Math.round(cents * rate * 1e4)) / 1e6;
}

const POLL_MS = 1000;

/** Buy credits: a pack or a pay-as-you-go amount, paid on the server's checkout page. */
export function Buy({
  api,
  credits,
  onBought,
}: {
  api: CustomerApi;
  credits: Loadable<Credits>;
  onBought: () => void;
}) {
  const [info, reloadInfo] = useLoad(() => api.paygInfo(), [api]);
  const [packs, reloadPacks] = useLoad(() => api.packs(), [api]);
  const [purchases, reloadPurchases] = useLoad(() => api.purchases(), [api]);
  const [checkout, setCheckout] = useState<CheckoutSession | null>(null);
  // Keep the card for auto-recharge (the checkout saves it once paid).
  const [saveMethod, setSaveMethod] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  /**
   * Opens the checkout in a new tab and follows the session until it is paid, canceled or expired. The tab
   * is opened before the request (a browser lets a click open one, not a later callback); if it cannot be,
   * this tab goes to the checkout instead.
   */
  const startCheckout = async (create: () => Promise<CheckoutSession>) => {
    setError(null);
    const tab = window.open("", "_blank");
    if (tab) tab.opener = null; // the checkout page gets no handle on this one
    try {
      const s = await create();
      setCheckout(s);
      if (s.checkout_url) {
        if (tab) tab.location.href = s.checkout_url;
        else window.location.assign(s.checkout_url);
      } else tab?.close();
    } catch (err) {
      tab?.close();
      setError(err as Error);
    }
  };

  const packName = (id: string) =>
    (packs.state === "ok" ? packs.value.data.find((p) => p.id === id)?.name : undefined) ?? id;

  const done = () => {
    onBought();
    void reloadPurchases();
  };

  return (
    <>
      <h1>Buy credits</h1>
      {credits.state === "ok" && (
        <p className="muted">
          You have {fmtCredits(credits.value.payg_balance)} purchased credits and{" "}
          {fmtCredits(credits.value.credits_balance)} from your monthly supply. Purchased credits are used
          after the monthly supply runs out.
        </p>
      )}
      <label className="check">
        <input type="checkbox" checked={saveMethod} onChange={(e) => setSaveMethod(e.target.checked)} />
        Save my payment method for auto-recharge
      </label>
      {error && <ErrorNote error={error} />}
      {checkout && <CheckoutProgress api={api} session={checkout} onDone={done} />}
      <Card title="Credit packs">
        <Show value={packs} what="packs" feature="Credit packs" retry={() => void reloadPacks()}>
          {(p) =>
            p.data.length === 0 ? (
              <Empty>No packs on sale. Buy any amount below instead.</Empty>
            ) : (
              <ul className="packs" data-testid="packs">
                {p.data.map((pack) => (
                  <PackCard
                    key={pack.id}
                    pack={pack}
                    onBuy={() => void startCheckout(() => api.buyPack(pack.id, saveMethod))}
                  />
                ))}
              </ul>
            )
          }
        </Show>
      </Card>
      <Show value={info} what="prices" feature="Buying credits" retry={() => void reloadInfo()}>
        {(i) => (
          <PayAsYouGo
            info={i}
            onBuy={(amount) =>
              startCheckout(() =>
                api.createCheckout({
                  amount_usd: amount,
                  ...(saveMethod ? { save_payment_method: true } : {}),
                }),
              )
            }
          />
        )}
      </Show>
      <Card title="Your purchases">
        <Show
          value={purchases}
          what="purchases"
          feature="Purchase history"
          retry={() => void reloadPurchases()}
        >
          {(p) =>
            p.data.length === 0 ? (
              <Empty>No purchases yet.</Empty>
            ) : (
              <div className="table-wrap">
                <table data-testid="purchases-table">
                  <caption className="sr-only">Your purchases, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">What</th>
                      <th scope="col" className="num">
                        Credits
                      </th>
                      <th scope="col" className="num">
                        Paid
                      </th>
                      <th scope="col">Status</th>
                      <th scope="col">Credits expire</th>
                    </tr>
                  </thead>
                  <tbody>
                    {[...p.data].reverse().map((x) => (
                      <tr key={x.id}>
                        <td>{fmtDate(x.paid_at ?? x.created_at)}</td>
                        <td>{x.pack_id ? `${packName(x.pack_id)} pack` : x.source.replace(/_/g, " ")}</td>
                        <td className="num">{fmtCredits(x.credits)}</td>
                        <td className="num">{fmtMoney(x.amount_usd, x.currency)}</td>
                        <td>{x.status}</td>
                        <td>{x.credits_expire_at ? fmtDate(x.credits_expire_at) : "never"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Show>
      </Card>
    </>
  );
}

function PackCard({ pack, onBuy }: { pack: Pack; onBuy: () => void }) {
  return (
    <li className="pack">
      <strong>{pack.name}</strong>
      <span className="pack-credits">{fmtCredits(pack.credits)} credits</span>
      <span>{fmtMoney(pack.price_usd, pack.currency)}</span>
      {pack.description && <span className="muted">{pack.description}</span>}
      <span className="muted">
        {pack.expires_after_days
          ? `Credits expire after ${pack.expires_after_days} days`
          : "Credits never expire"}
      </span>
      <button type="button" className="primary" onClick={onBuy} aria-label={`Buy the ${pack.name} pack`}>
        Buy
      </button>
    </li>
  );
}

/** Follows a checkout session: waiting for payment, then paid (credits added), canceled or expired. */
function CheckoutProgress({
  api,
  session,
  onDone,
}: {
  api: CustomerApi;
  session: CheckoutSession;
  onDone: () => void;
}) {
  const [status, setStatus] = useState<CheckoutStatus | null>(null);
  const [missing, setMissing] = useState(!session.checkout_url);
  useEffect(() => {
    if (!session.checkout_url) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      try {
        const s = await api.checkoutStatus(session.session_id);
        if (!live) return;
        setStatus(s);
        if (s.status !== "open") {
          onDone();
          return;
        }
      } catch {
        if (!live) return;
        setMissing(true);
        return;
      }
      timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api, session, onDone]);

  const credits = fmtCredits(session.credits_to_receive);
  if (!session.checkout_url || missing)
    return (
      <div className="note note-muted" role="status">
        <strong>Checkout session {session.session_id} was created</strong> for {credits} credits. This server
        has no payment page, so nothing was charged and no credits were added. Ask your operator to enable
        purchases.
      </div>
    );
  if (status?.status === "paid")
    return (
      <div className="note note-ok" role="status" data-testid="checkout-status">
        <strong>Payment complete: {credits} credits were added.</strong> They show in the purchased packs bar.
      </div>
    );
  if (status && status.status !== "open")
    return (
      <div className="note note-muted" role="status" data-testid="checkout-status">
        The checkout was {status.status}: nothing was charged. You can start a new one.
      </div>
    );
  return (
    <div className="note" role="status" data-testid="checkout-status">
      <strong>Waiting for your payment</strong> of {credits} credits in the checkout tab.{" "}
      <a href={session.checkout_url} target="_blank" rel="noopener">
        Open the checkout again
      </a>
      .
    </div>
  );
}

function PayAsYouGo({ info, onBuy }: { info: PaygInfo; onBuy: (amount: number) => Promise<void> }) {
  const [amount, setAmount] = useState(String(Math.max(info.min_amount_usd, 10)));
  const [busy, setBusy] = useState(false);
  const value = Number(amount);
  const valid = amount.trim() !== "" && Number.isFinite(value) && /^\d+(\.\d{1,2})?$/.test(amount.trim());
  const inRange = valid && value >= info.min_amount_usd && value <= info.max_amount_usd;
  const range = `from ${fmtMoney(info.min_amount_usd, info.currency)} to ${fmtMoney(info.max_amount_usd, info.currency)}`;
  const fieldError = !valid
    ? "Enter an amount in dollars, with at most 2 decimals (for example 25 or 12.50)."
    : !inRange
      ? `Enter an amount ${range}.`
      : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (fieldError) return;
    setBusy(true);
    try {
      await onBuy(value);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card title="Any amount (pay as you go)">
      <form onSubmit={submit} className="buy-form">
        <Field
          label={`Amount (${info.currency})`}
          hint={`${fmtCredits(info.credits_per_dollar)} credits per dollar; ${range}.`}
          error={amount.trim() === "" ? undefined : fieldError}
        >
          {(p) => (
            <input {...p} inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
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
    </Card>
  );
}
