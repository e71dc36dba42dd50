import type { FastifyReply, FastifyRequest } from "fastify";
import type { Subscriptions } from "../billing/subscriptions.ts";

/** Operator routes that read an account's credits: its subscription is renewed first if a period started. */
const ACCOUNT_READS = new Set([
  "/v1/accounts/:id",
  "/v1/accounts/:id/balance",
  "/v1/accounts/:id/grants",
  "/v1/accounts/:id/cycles",
  "/v1/accounts/:id/statement",
]);

/**
 * Lazy renewal: a read of an account's balance never shows a period that has started but was not granted
 * yet, even when no scheduler has run. A renewal that fails (account closed, subscription busy for too
 * long) does not fail the read; the scheduler retries it.
 */
export function lazyRenewal(subs: Subscriptions) {
  // A callback hook: every /v1 request passes here, and the others then cost no promise.
  return (req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    if (req.method !== "GET" || !ACCOUNT_READS.has(req.routeOptions.url ?? "")) return done();
    const id = (req.params as { id?: unknown }).id;
    if (typeof id !== "string") return done();
    renewQuietly(subs, id, req).then(() => done(), done);
  };
}

/** A read waits at most this long for another process renewing the same subscription. */
const LAZY_WAIT_MS = 2_000;

export async function renewQuietly(
  subs: Subscriptions,
  accountId: string,
  req: FastifyRequest,
): Promise<void> {
  try {
    await subs.renewAccount(accountId, LAZY_WAIT_MS);
  } catch (err) {
    req.log.warn({ err, account_id: accountId }, "lazy renewal failed");
  }
}
