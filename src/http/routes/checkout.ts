import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { formatCredits } from "../../domain/amount.ts";
import { TallyError } from "../../domain/errors.ts";
import { formatMoney } from "../../billing/payg.ts";
import type { Purchases } from "../../billing/purchases.ts";
import type { CheckoutRecord } from "../../store/purchase-store.ts";
import { HTTP_STATUS } from "../errors.ts";

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Tally checkout</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
main{border:1px solid #ccc;border-radius:8px;padding:1.5rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}dt{font-weight:600}
form{display:inline}button{font-size:1rem;padding:.6rem 1.2rem;margin:.5rem .5rem 0 0;border-radius:6px;cursor:pointer}
button.pay{background:#0a5;color:#fff;border:1px solid #084}button.cancel{background:#fff;border:1px solid #888}
button:focus-visible{outline:3px solid #36c;outline-offset:2px}
</style></head>
<body><main aria-labelledby="title"><h1 id="title">${esc(title)}</h1>${body}</main></body></html>`;
}

function summary(s: CheckoutRecord): string {
  return `<dl>
<dt>Amount</dt><dd>${esc(formatMoney(s.amount_cents).toFixed(2))} ${esc(s.currency)}</dd>
<dt>Credits</dt><dd>${esc(formatCredits(s.credits))}</dd>
<dt>Session</dt><dd><code>${esc(s.id)}</code></dd>
</dl>`;
}

function payForm(s: CheckoutRecord, token: string): string {
  const hidden = `<input type="hidden" name="token" value="${esc(token)}">`;
  return `${summary(s)}
<p>This is Tally's built-in test checkout: no card is charged.</p>${s.save_method ? "<p>The test card is saved for automatic top-ups (auto-recharge).</p>" : ""}
<form method="post" action="/checkout/${esc(s.id)}/pay">${hidden}<button class="pay" type="submit">Pay ${esc(formatMoney(s.amount_cents).toFixed(2))} ${esc(s.currency)}</button></form>
<form method="post" action="/checkout/${esc(s.id)}/cancel">${hidden}<button class="cancel" type="submit">Cancel</button></form>`;
}

function sendHtml(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .code(status)
    .header("content-type", "text/html; charset=utf-8")
    .header("cache-control", "no-store")
    .send(html);
}

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (!(err instanceof TallyError)) throw err;
  const status = HTTP_STATUS[err.code];
  const title = err.code === "not_found" ? "Checkout not found" : "Checkout unavailable";
  return sendHtml(reply, status, page(title, `<p role="alert">${esc(err.message)}</p>`));
}

/**
 * The local provider's checkout page: GET /checkout/:id?token=… shows the purchase with Pay and Cancel
 * buttons (plain HTML forms, no script); POST /checkout/:id/pay and /cancel complete or cancel it. The token
 * is the session's secret from its checkout_url; without it the session is answered as not found. Also the
 * return pages of hosted checkouts (/checkout/:id/done and /canceled), which show no account data.
 */
export const checkoutPageRoutes: FastifyPluginAsync<{ purchases: Purchases }> = async (
  app,
  { purchases },
) => {
  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string", bodyLimit: 4096 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  const tokenOf = (v: unknown): string | undefined => {
    const t = (v as { token?: unknown } | undefined)?.token;
    return typeof t === "string" && t.length <= 200 ? t : undefined;
  };
  const idOf = (req: { params: unknown }) => String((req.params as { id: string }).id).slice(0, 128);

  app.get("/checkout/:id", { schema: { hide: true } }, async (req, reply) => {
    try {
      const token = tokenOf(req.query);
      const s = await purchases.localSession(idOf(req), token);
      if (s.status === "paid")
        return sendHtml(
          reply,
          200,
          page(
            "Payment complete",
            `${summary(s)}<p role="status">This purchase is paid; the credits are on the account.</p>`,
          ),
        );
      if (s.status !== "open" || s.expires_at <= purchases.engine.clock.now())
        return sendHtml(
          reply,
          409,
          page(
            "Checkout closed",
            `${summary(s)}<p role="alert">This checkout is ${esc(s.status === "open" ? "expired" : s.status)}.</p>`,
          ),
        );
      return sendHtml(reply, 200, page("Buy credits", payForm(s, token!)));
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.post("/checkout/:id/pay", { schema: { hide: true } }, async (req, reply) => {
    try {
      const { purchase, replay } = await purchases.payLocal(idOf(req), tokenOf(req.body));
      const s = await purchases.getSession(idOf(req));
      return sendHtml(
        reply,
        200,
        page(
          "Payment complete",
          `${summary(s)}<p role="status">${replay ? "This purchase was already paid." : "Thank you: the payment is complete."} ${esc(formatCredits(purchase.credits))} credits are on the account (purchase <code>${esc(purchase.id)}</code>).</p>`,
        ),
      );
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.post("/checkout/:id/cancel", { schema: { hide: true } }, async (req, reply) => {
    try {
      const s = await purchases.cancelLocal(idOf(req), tokenOf(req.body));
      return sendHtml(
        reply,
        200,
        page(
          "Checkout canceled",
          `${summary(s)}<p role="status">The checkout is canceled; nothing was paid.</p>`,
        ),
      );
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.get("/checkout/:id/done", { schema: { hide: true } }, async (_req, reply) =>
    sendHtml(
      reply,
      200,
      page(
        "Thank you",
        `<p role="status">Your payment is being confirmed; the credits appear on your account as soon as it is.</p>`,
      ),
    ),
  );
  app.get("/checkout/:id/canceled", { schema: { hide: true } }, async (_req, reply) =>
    sendHtml(reply, 200, page("Checkout canceled", `<p role="status">Nothing was paid.</p>`)),
  );
};
