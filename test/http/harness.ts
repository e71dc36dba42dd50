import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll } from "vitest";
import { ManualClock } from "../../src/domain/clock.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { buildApp } from "../../src/http/app.ts";
import { OperatorAuth } from "../../src/http/auth.ts";
import { CustomerAuth } from "../../src/http/customer-auth.ts";
import type { Store } from "../../src/store/types.ts";
import { freshDatabase, type StoreKind, type TestDatabase } from "../support/stores.ts";

export const OPERATOR_KEY = "test-operator-key-0123456789";

export interface HttpCtx {
  base: string;
  app: FastifyInstance;
  engine: Engine;
  store: Store;
  db: TestDatabase;
  clock: ManualClock;
  customerAuth: CustomerAuth;
  /** fetch with the operator key and JSON. */
  op(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A real server on 127.0.0.1 (ephemeral port) over a fresh database of the given kind. */
export function useServer(kind: StoreKind): HttpCtx {
  const ctx = {} as HttpCtx;
  beforeAll(async () => {
    ctx.db = await freshDatabase(kind);
    ctx.store = await ctx.db.open();
    ctx.clock = new ManualClock(Date.now());
    ctx.engine = new Engine(ctx.store, { clock: ctx.clock });
    const { auth } = await OperatorAuth.setup(ctx.store, OPERATOR_KEY);
    ctx.customerAuth = await CustomerAuth.setup(ctx.store, { clock: ctx.clock });
    ctx.app = await buildApp({
      engine: ctx.engine,
      operator: auth,
      customerAuth: ctx.customerAuth,
      logLevel: "silent",
    });
    await ctx.app.listen({ port: 0, host: "127.0.0.1" });
    const addr = ctx.app.server.address();
    ctx.base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    ctx.op = async (method, path, body, headers = {}) => {
      const res = await fetch(ctx.base + path, {
        method,
        headers: {
          authorization: `Bearer ${OPERATOR_KEY}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    };
  });
  afterAll(async () => {
    await ctx.app?.close();
    await ctx.engine?.close();
    await ctx.db?.destroy();
  });
  return ctx;
}
