/**
 * The SDK in one run: create an account, grant it credits, price and report usage, read the balance and the
 * history, then look at the same account as the customer does, with an API key of its own.
 *
 *   npm start                                                  # in another terminal
 *   TALLY_URL=http://localhost:8080 TALLY_ADMIN_KEY=<operator key> npx tsx sdk/example.ts
 *
 * TALLY_URL defaults to http://localhost:8080. The operator key is the one `npm start` printed at first
 * start, or the TALLY_ADMIN_KEY the server was started with. Each run makes a new account.
 */
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createCustomerClient, createOperatorClient, TallyApiError } from "./client.ts";

export interface ExampleOptions {
  baseUrl: string;
  operatorKey: string;
  /** Where the narration goes (default console.log). */
  log?: (line: string) => void;
}

export async function runExample({ baseUrl, operatorKey, log = console.log }: ExampleOptions) {
  const tally = createOperatorClient({ baseUrl, operatorKey });
  const run = randomUUID().slice(0, 8);

  // 1. An account for one of your customers (the id is yours to choose, or leave it out).
  const account = await tally.post("/v1/accounts", {
    body: { id: `acct_example_${run}`, metadata: { name: "Example Co" } },
  });
  log(`account ${account.id} (${account.status}, overage ${account.overage_policy})`);

  // 2. Credits: 10,000 promotional credits. Amounts are decimal strings of credits.
  //    The Idempotency-Key makes a retry of this request (after a timeout, say) a replay, not a second grant.
  const grant = await tally.post("/v1/accounts/{id}/grants", {
    params: { id: account.id },
    body: { kind: "promotional", amount: "10000", reference: "welcome credits" },
    idempotencyKey: `grant-welcome-${run}`,
  });
  log(`granted ${grant.amount} ${grant.kind} credits (grant ${grant.id})`);

  // 3. What will 90 seconds of transcription cost? The estimate records nothing.
  const estimate = await tally.post("/v1/estimate", { body: { service: "transcription", quantity: 90 } });
  log(`estimate: transcription of 90 s costs ${estimate.cost} credits (rate card v${estimate.version})`);

  // 4. Report usage. The event id is the idempotency key: sending it again changes nothing.
  const transcription = await tally.post("/v1/usage", {
    body: {
      id: `evt_${run}_1`,
      account_id: account.id,
      service: "transcription",
      quantity: 90,
      metadata: { file: "interview.mp3" },
    },
  });
  log(
    `usage ${transcription.id}: ${transcription.service} ${transcription.quantity} s → ${transcription.cost} credits`,
  );

  //    A service priced by several dimensions: an LLM call's input and output tokens.
  const llm = await tally.post("/v1/usage", {
    body: {
      id: `evt_${run}_2`,
      account_id: account.id,
      service: "llm_chat",
      quantities: { input_tokens: 1200, output_tokens: 350 },
    },
  });
  log(`usage ${llm.id}: llm_chat 1,200 in / 350 out tokens → ${llm.cost} credits`);

  //    The same event again is a replay: same answer, charged once.
  const again = await tally.post("/v1/usage", {
    body: {
      id: `evt_${run}_1`,
      account_id: account.id,
      service: "transcription",
      quantity: 90,
      metadata: { file: "interview.mp3" },
    },
  });
  log(`sent ${again.id} again: replay=${again.replay}, still ${again.cost} credits once`);

  // 5. The balance.
  const balance = await tally.get("/v1/accounts/{id}/balance", { params: { id: account.id } });
  log(`balance: ${balance.available} available, ${balance.held} held`);

  // 6. The history, newest first (cursor pagination: paginate() follows next_cursor).
  const history = [];
  for await (const usage of tally.paginate("/v1/accounts/{id}/usage", {
    params: { id: account.id },
    query: { limit: 100 },
  }))
    history.push(usage);
  for (const u of history) log(`  ${u.recorded_at}  ${u.service.padEnd(14)} ${u.cost.padStart(8)} credits`);

  // 7. The customer's side: a read-only API key for the account (its secret is shown only in this answer),
  //    then the seed's Credits API with it.
  const key = await tally.post("/v1/accounts/{id}/keys", {
    params: { id: account.id },
    body: { name: "example", scopes: ["read"] },
  });
  const customer = createCustomerClient({ baseUrl, credential: key.secret });
  const credits = await customer.get("/api/v1/credits");
  log(
    `customer view: ${credits.total_available_credits} credits available, ${credits.total_credits_used} used`,
  );
  const rows = await customer.get("/api/v1/credits/usage", { query: { limit: 10 } });
  for (const r of rows)
    log(`  ${r.created_at}  ${r.service_type.padEnd(14)} ${r.credits_used} (${r.credit_source})`);

  //    A read-only key cannot buy credits: every error is a TallyApiError with the API's error code.
  let refusal: TallyApiError | null = null;
  try {
    await customer.post("/api/v1/credits/payg/create-checkout-session", { body: { amount_usd: 10 } });
  } catch (err) {
    if (!(err instanceof TallyApiError)) throw err;
    refusal = err;
    log(`a read-only key buying credits: ${err.status} ${err.code} (${err.message})`);
  }

  // Tidy up: revoke the example's key.
  await tally.post("/v1/keys/{key_id}/revoke", { params: { key_id: key.id } });

  return {
    account,
    grant,
    estimate,
    transcription,
    llm,
    again,
    balance,
    history,
    key,
    credits,
    rows,
    refusal,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const baseUrl = process.env.TALLY_URL ?? "http://localhost:8080";
  const operatorKey = process.env.TALLY_ADMIN_KEY;
  if (!operatorKey) {
    console.error("Set TALLY_ADMIN_KEY to the operator key (and TALLY_URL if not http://localhost:8080).");
    process.exit(2);
  }
  runExample({ baseUrl, operatorKey }).catch((err: unknown) => {
    if (err instanceof TallyApiError) console.error(`${err.status} ${err.code}: ${err.message}`);
    else console.error(err);
    process.exit(1);
  });
}
