import { parseArgs } from "node:util";
import { formatCredits, parseCredits } from "../domain/amount.ts";
import { isTallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { Engine } from "../ledger/engine.ts";
import { GRANT_KINDS, type GrantKind, type Metadata, type OveragePolicy } from "../ledger/types.ts";
import { DEFAULT_DATABASE_URL, openStore } from "../store/open.ts";
import { print } from "./format.ts";
import { CustomerAuth, SCOPES, type Scope } from "../http/customer-auth.ts";
import { BILLING_HELP } from "./billing-help.ts";
import { PURCHASES_HELP } from "./purchases-help.ts";

const HELP = `tally — credits ledger

Usage: tally <command> [options]

Commands:
  serve                                   run the server (PORT, DATABASE_URL)
  migrate                                 apply pending database migrations
  accounts create [--id ID] [--overage block|allow] [--overage-limit CREDITS]
  accounts list [--limit N] [--cursor C]
  accounts show ID
  accounts suspend|reactivate|close ID
  keys create ACCOUNT_ID [--name N] [--scopes read,usage,manage]   a customer API key (shown once)
  keys list ACCOUNT_ID
  keys revoke KEY_ID
  grant ACCOUNT_ID AMOUNT [--kind KIND] [--priority N] [--expires ISO] [--effective ISO] [--reference R]
  usage ACCOUNT_ID AMOUNT --service NAME [--id EVENT_ID]   send one usage event (a debit)
  balance ACCOUNT_ID [--at ISO]
  sweep                                   write off expired grants and holds
  audit                                   recompute everything from the journal; exit 1 on any discrepancy
${BILLING_HELP}
${PURCHASES_HELP}

Options: --json (one line of JSON), --database-url URL (default: $DATABASE_URL or ${DEFAULT_DATABASE_URL})
Amounts are in credits (up to 6 decimals).`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      "database-url": { type: "string" },
      id: { type: "string" },
      overage: { type: "string" },
      "overage-limit": { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      kind: { type: "string" },
      priority: { type: "string" },
      expires: { type: "string" },
      effective: { type: "string" },
      reference: { type: "string" },
      service: { type: "string" },
      name: { type: "string" },
      scopes: { type: "string" },
      at: { type: "string" },
      // billing (plans, subscriptions, statements, adjustments)
      allowance: { type: "string" },
      price: { type: "string" },
      currency: { type: "string" },
      "overage-rate": { type: "string" },
      tier: { type: "string" },
      "rollover-cap": { type: "string" },
      plan: { type: "string" },
      anchor: { type: "string" },
      timing: { type: "string" },
      start: { type: "string" },
      end: { type: "string" },
      format: { type: "string" },
      reason: { type: "string" },
      "expires-days": { type: "string" },
    },
  });
  const [command, sub, ...rest] = positionals;
  if (values.help || !command) {
    console.log(HELP);
    return command || values.help ? 0 : 2;
  }
  const url = values["database-url"] ?? process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const json = values.json ?? false;

  if (command === "serve") {
    const { serve } = await import("../http/server.ts");
    await serve({ databaseUrl: url });
    return -1; // keep running
  }

  const store = await openStore(url);
  if (command === "migrate") {
    // openStore already applied them; say so.
    print({ migrated: true, dialect: store.dialect }, json);
    await store.close();
    return 0;
  }
  const engine = new Engine(store);
  try {
    switch (command) {
      case "accounts": {
        if (sub === "create") {
          const r = await engine.createAccount({
            ...(values.id ? { id: values.id } : {}),
            overage_policy: (values.overage ?? "block") as OveragePolicy,
            overage_limit: values["overage-limit"]
              ? parseCredits(values["overage-limit"], "overage-limit")
              : null,
          });
          print(r.account, json);
        } else if (sub === "list") {
          print(
            await engine.listAccounts({ cursor: values.cursor, limit: Number(values.limit ?? 100) }),
            json,
          );
        } else if (sub === "show" && rest[0]) {
          print(
            { account: await engine.getAccount(rest[0]), grants: await engine.listGrants(rest[0]) },
            json,
          );
        } else if ((sub === "suspend" || sub === "reactivate" || sub === "close") && rest[0]) {
          const r =
            sub === "suspend"
              ? await engine.suspendAccount(rest[0])
              : sub === "reactivate"
                ? await engine.reactivateAccount(rest[0])
                : await engine.closeAccount(rest[0]);
          print(r.account, json);
        } else return usage("accounts create|list|show|suspend|reactivate|close ID");
        return 0;
      }
      case "keys": {
        const auth = await CustomerAuth.setup(store, { clock: engine.clock });
        if (sub === "create" && rest[0]) {
          await engine.getAccount(rest[0]);
          const scopes = (values.scopes ?? "read,usage").split(",").map((s) => s.trim()) as Scope[];
          for (const s of scopes)
            if (!SCOPES.includes(s)) return usage(`--scopes takes ${SCOPES.join(", ")}`);
          const r = await auth.createKey(rest[0], { name: values.name ?? "cli", scopes, created_by: "cli" });
          print({ ...r.key, secret: r.secret }, json);
          if (!json) console.error("The secret is shown once: store it now.");
        } else if (sub === "list" && rest[0]) {
          print(await auth.listKeys(rest[0], undefined, 1000), json);
        } else if (sub === "revoke" && rest[0]) {
          print(await auth.revokeKey(rest[0]), json);
        } else return usage("keys create ACCOUNT_ID | keys list ACCOUNT_ID | keys revoke KEY_ID");
        return 0;
      }
      case "grant": {
        const [accountId, amount] = [sub, rest[0]];
        if (!accountId || !amount) return usage("grant ACCOUNT_ID AMOUNT");
        const kind = (values.kind ?? "promotional") as GrantKind;
        if (!GRANT_KINDS.includes(kind)) return usage(`--kind must be one of ${GRANT_KINDS.join(", ")}`);
        const r = await engine.grant({
          account_id: accountId,
          kind,
          amount: parseCredits(amount, "amount"),
          ...(values.priority ? { priority: Number(values.priority) } : {}),
          ...(values.expires ? { expires_at: time(values.expires, "expires") } : {}),
          ...(values.effective ? { effective_at: time(values.effective, "effective") } : {}),
          ...(values.reference ? { reference: values.reference } : {}),
          source: "cli",
        });
        print(r.grant, json);
        return 0;
      }
      case "usage": {
        const [accountId, amount] = [sub, rest[0]];
        if (!accountId || !amount || !values.service) return usage("usage ACCOUNT_ID AMOUNT --service NAME");
        const r = await engine.debit({
          id: values.id ?? newId("use"),
          account_id: accountId,
          amount: parseCredits(amount, "amount", { allowZero: true }),
          service: values.service,
          metadata: {} as Metadata,
        });
        print({ ...r.usage, replay: r.replay }, json);
        return 0;
      }
      case "balance": {
        if (!sub) return usage("balance ACCOUNT_ID");
        print(await engine.balance(sub, values.at ? time(values.at, "at") : undefined), json);
        return 0;
      }
      case "sweep":
        print(await engine.sweep(), json);
        return 0;
      case "audit": {
        const report = await engine.audit();
        print(report, json);
        if (!report.ok && !json) {
          console.error(`audit FAILED: ${report.discrepancies.length} discrepancy(ies); amounts in credits`);
          for (const d of report.discrepancies.slice(0, 50))
            console.error(
              `  ${d.check} ${d.id}: expected ${credits(d.expected)}, journal says ${credits(d.actual)}`,
            );
        }
        return report.ok ? 0 : 1;
      }
      case "packs":
      case "purchases":
      case "auto-recharge": {
        // Loaded on demand: the payment providers (the Stripe SDK) are heavy for every other command.
        const { purchasesCommand } = await import("./purchases.ts");
        const out = await purchasesCommand(engine, command, sub, rest, values);
        if (typeof out === "string") return usage(out);
        print(out, json);
        return 0;
      }
      default: {
        const { runBilling } = await import("./billing.ts");
        const code = await runBilling(engine, command, sub, rest, values, (v) => print(v, json));
        if (code !== null) return code;
        console.error(`unknown command: ${command}\n\n${HELP}`);
        return 2;
      }
    }
  } finally {
    await engine.close();
  }
}

/** Micro-credit strings of the audit report, shown in credits. */
function credits(text: string): string {
  return /^-?\d+$/.test(text) ? formatCredits(BigInt(text)) : text;
}

function usage(text: string): number {
  console.error(`usage: tally ${text}`);
  return 2;
}

function time(text: string, field: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw Object.assign(new Error(`${field} must be an ISO 8601 time`), { code: "validation_error" });
  return t;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const code = (err as { code?: string } | null)?.code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      console.error(`error: ${(err as Error).message}\n\n${HELP}`);
      process.exitCode = 2;
    } else if (isTallyError(err)) {
      console.error(`error: ${err.code}: ${err.message}`);
      process.exitCode = 1;
    } else {
      console.error(err);
      process.exitCode = 1;
    }
  },
);
