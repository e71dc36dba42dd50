/**
 * `npm run sdk`: builds Tally's OpenAPI document from the app itself (an in-memory SQLite store, no server,
 * no network) and generates the SDK's TypeScript types from it with openapi-typescript.
 *
 *   npm run sdk                       # writes sdk/schema.d.ts
 *   npm run sdk -- --out FILE         # writes FILE instead (the SDK test regenerates to a temp file)
 *   npm run sdk -- --check            # exits 1 if sdk/schema.d.ts is not what the app generates now
 *   npm run sdk -- --openapi FILE     # also writes the OpenAPI document itself, as JSON
 *
 * The output is formatted with the repository's Prettier settings, so it is byte-for-byte reproducible and
 * passes `npm run lint`.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import openapiTS, { astToString, type OpenAPI3 } from "openapi-typescript";
import * as prettier from "prettier";
import { buildApp } from "../src/http/app.ts";
import { OperatorAuth } from "../src/http/auth.ts";
import { CustomerAuth } from "../src/http/customer-auth.ts";
import { Engine } from "../src/ledger/engine.ts";
import { openStore } from "../src/store/open.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const SCHEMA_PATH = join(ROOT, "sdk", "schema.d.ts");

const HEADER = `/**
 * Tally's HTTP API as TypeScript types, generated from the OpenAPI document the app serves at /openapi.json.
 * Do not edit: run \`npm run sdk\` (scripts/generate-sdk.ts) after changing a route.
 */
`;

/** The OpenAPI 3.1 document, exactly as the app builds it from its route schemas. */
export async function buildOpenApiDocument(): Promise<OpenAPI3> {
  const store = await openStore(":memory:");
  const engine = new Engine(store);
  try {
    // Any keys and settings will do: the document does not depend on them, and no request is made. They
    // are given here so that the environment (TALLY_JWT_SECRET, TALLY_RATE_LIMIT, …) plays no part.
    const { auth } = await OperatorAuth.setup(store, randomBytes(24).toString("hex"));
    const customerAuth = await CustomerAuth.setup(store, { jwtSecret: randomBytes(32).toString("hex") });
    const app = await buildApp({
      engine,
      operator: auth,
      customerAuth,
      logLevel: "silent",
      rateLimit: { backend: "off" },
    });
    try {
      await app.ready();
      return structuredClone(app.swagger()) as unknown as OpenAPI3;
    } finally {
      await app.close();
    }
  } finally {
    await engine.close();
  }
}

/** The text of sdk/schema.d.ts for a document: openapi-typescript's output, formatted like the repository. */
export async function renderSchema(doc: OpenAPI3): Promise<string> {
  const ast = await openapiTS(doc, { alphabetize: false });
  const text = HEADER + astToString(ast).replace(/^\/\*\*[\s\S]*?\*\/\s*/, "");
  const config = (await prettier.resolveConfig(SCHEMA_PATH)) ?? {};
  return prettier.format(text, { ...config, filepath: SCHEMA_PATH });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      check: { type: "boolean", default: false },
      openapi: { type: "string" },
    },
  });
  const doc = await buildOpenApiDocument();
  const text = await renderSchema(doc);
  if (values.openapi) await writeFile(resolve(values.openapi), JSON.stringify(doc, null, 2) + "\n");
  if (values.check) {
    const committed = await readFile(SCHEMA_PATH, "utf8").catch(() => "");
    if (committed !== text) {
      console.error("sdk/schema.d.ts is out of date with the app's routes: run `npm run sdk`");
      process.exit(1);
    }
    console.log("sdk/schema.d.ts is up to date");
    return;
  }
  const out = resolve(values.out ?? SCHEMA_PATH);
  await writeFile(out, text);
  const operations = Object.values(doc.paths ?? {}).reduce(
    (n, item) => n + Object.keys(item).filter((k) => k !== "parameters").length,
    0,
  );
  console.log(`wrote ${out} (${operations} operations)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
