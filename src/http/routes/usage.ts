import { Type, type FastifyPluginAsyncTypebox, type Static } from "@fastify/type-provider-typebox";
import { TallyError, isTallyError } from "../../domain/errors.ts";
import {
  UnknownServiceError,
  priceUsage,
  pricedToJSON,
  rateCardAt,
  rateCardToJSON,
  type PricedUsage,
  type RateCard,
} from "../../domain/pricing.ts";
import type { Engine } from "../../ledger/engine.ts";
import { assertSameFields, canonical } from "../../ledger/request.ts";
import { LIMITS, type DebitInput, type Metadata, type UsageRecord } from "../../ledger/types.ts";
import type { RateCards } from "../../pricing/rate-cards.ts";
import { errorJson } from "../errors.ts";
import { toApi } from "../serialize.ts";
import { Id, Metadata as MetadataSchema, Time, parseTime } from "../schemas.ts";

export interface UsageDeps {
  engine: Engine;
  rateCards: RateCards;
}

const Quantity = Type.Union([Type.String({ maxLength: 40 }), Type.Number()]);
const UsageEvent = Type.Object(
  {
    id: Id,
    account_id: Id,
    service: Type.String({ minLength: 1, maxLength: 64 }),
    quantity: Type.Optional(Type.Union([Quantity, Type.Null()])),
    quantities: Type.Optional(
      Type.Union([Type.Record(Type.String({ maxLength: 64 }), Quantity), Type.Null()]),
    ),
    metadata: Type.Optional(MetadataSchema),
    occurred_at: Type.Optional(Time),
    /** The API key the usage came through: that key's budget applies as well as the account's. */
    api_key_id: Type.Optional(Id),
  },
  { additionalProperties: false },
);
type UsageEvent = Static<typeof UsageEvent>;

/** Unknown services are a fault of the event (400), not a missing resource. */
function asEventError(err: unknown): unknown {
  if (err instanceof UnknownServiceError)
    return new TallyError("validation_error", err.message, { field: "service" });
  return err;
}

/** The event's quantity as stored on the usage: the number given, or the canonical JSON of the dimensions. */
function quantityText(e: UsageEvent): string | null {
  if (e.quantities != null) return canonical(e.quantities);
  if (e.quantity != null) return String(e.quantity);
  return null;
}

interface Prepared {
  debit: DebitInput;
  priced: PricedUsage;
}

/**
 * Prices an event by the rate card in force at its occurred_at (among `cards`, every version) and turns it
 * into a debit. Synchronous: the caller reads the versions once, for one event or a whole batch.
 */
function toDebit(deps: UsageDeps, e: UsageEvent, cards: readonly RateCard[]): Prepared {
  const occurredAt = parseTime(e.occurred_at, "occurred_at");
  const quantity = quantityText(e);
  let priced: PricedUsage;
  try {
    const card = rateCardAt(cards, occurredAt ?? deps.engine.clock.now(), "occurred_at");
    priced = priceUsage(card, {
      service: e.service,
      quantity: e.quantity,
      quantities: e.quantities,
      metadata: e.metadata,
    });
  } catch (err) {
    throw asEventError(err);
  }
  return {
    debit: {
      id: e.id,
      account_id: e.account_id,
      amount: priced.cost,
      service: e.service,
      quantity,
      metadata: (e.metadata ?? {}) as Metadata,
      ...(occurredAt !== undefined ? { occurred_at: occurredAt } : {}),
      ...(e.api_key_id !== undefined ? { api_key_id: e.api_key_id } : {}),
    },
    priced,
  };
}

/** A retry must describe the same event as the record (its price may differ if the rate card changed since). */
function assertSameEvent(e: UsageEvent, existing: UsageRecord): void {
  const occurredAt = parseTime(e.occurred_at, "occurred_at");
  assertSameFields(
    "usage",
    e.id,
    {
      account_id: existing.account_id,
      service: existing.service,
      quantity: existing.quantity,
      metadata: existing.metadata,
      ...(occurredAt !== undefined ? { occurred_at: existing.occurred_at } : {}),
    },
    {
      account_id: e.account_id,
      service: e.service,
      quantity: quantityText(e),
      metadata: e.metadata ?? {},
      ...(occurredAt !== undefined ? { occurred_at: occurredAt } : {}),
    },
  );
}

function usageAnswer(usage: UsageRecord, replay: boolean, priced: PricedUsage | null) {
  // Fields added to the fresh object toApi returns (the same keys, in the same order, as spreading it).
  const out = toApi(usage) as Record<string, unknown>;
  out.replay = replay;
  if (priced) out.pricing = pricedToJSON(priced);
  return out;
}

/** Operator: usage events priced by the rate card, estimates, and the rate card itself. */
export const usageRoutes: FastifyPluginAsyncTypebox<UsageDeps> = async (app, deps) => {
  const { engine, rateCards } = deps;

  app.post(
    "/usage",
    {
      schema: {
        tags: ["usage"],
        summary: "Record one usage event (priced, debited, idempotent by id)",
        body: UsageEvent,
      },
    },
    async (req, reply) => {
      // Debit first; only a conflicting id costs a read (a retry after a price change is still a replay).
      const cards = rateCards.fresh() ?? (await rateCards.versions());
      const { debit, priced } = toDebit(deps, req.body, cards);
      try {
        const r = await engine.debit(debit);
        reply.code(r.replay ? 200 : 201);
        return usageAnswer(r.usage, r.replay, r.replay ? null : priced);
      } catch (err) {
        if (!(err instanceof TallyError) || err.code !== "idempotency_conflict") throw err;
        const existing = await engine.store.getUsage(req.body.id);
        if (!existing) throw err;
        assertSameEvent(req.body, existing);
        return usageAnswer(existing, true, null);
      }
    },
  );

  app.post(
    "/usage/batch",
    {
      schema: {
        tags: ["usage"],
        summary: "Record up to 1,000 usage events; one result per event",
        body: Type.Object(
          { events: Type.Array(UsageEvent, { minItems: 1, maxItems: LIMITS.MAX_BATCH_EVENTS }) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const events = req.body.events;
      // As for one event: debit first; only the events refused as conflicting, or that no longer price,
      // cost a read (a retry after a price change is still a replay). The versions are read once.
      const cards = rateCards.fresh() ?? (await rateCards.versions());
      const prepared = events.map((e) => {
        try {
          return { ok: true as const, p: toDebit(deps, e, cards) };
        } catch (err) {
          return { ok: false as const, err: asEventError(err) };
        }
      });
      const sent = await engine.debitBatch(prepared.flatMap((x) => (x.ok ? [x.p.debit] : [])));
      let k = 0;
      // Retried: refused as conflicting, or no longer priced. Only these are answered from the record (an
      // earlier event of this batch with the same id was recorded fresh, and answers as such).
      const outcomes = prepared.map((x) => {
        const r = x.ok ? sent[k++]! : null;
        const retried =
          !r || (!r.ok && r.error instanceof TallyError && r.error.code === "idempotency_conflict");
        return { x, r, retried };
      });
      const retriedIds = outcomes.flatMap((o, i) => (o.retried ? [events[i]!.id] : []));
      const recorded = new Map(
        retriedIds.length ? (await engine.store.getUsages(retriedIds)).map((u) => [u.id, u]) : [],
      );
      const results = outcomes.map(({ x, r, retried }, i) => {
        const e = events[i]!;
        const existing = retried ? recorded.get(e.id) : undefined;
        if (existing) {
          try {
            assertSameEvent(e, existing);
          } catch (err) {
            return failure(e.id, err, req.id);
          }
          return { id: e.id, ok: true, usage: usageAnswer(existing, true, null) };
        }
        if (!x.ok) return failure(e.id, x.err, req.id);
        if (!r!.ok) return failure(e.id, r!.error, req.id);
        return {
          id: e.id,
          ok: true,
          usage: usageAnswer(r!.value.usage, r!.value.replay, r!.value.replay ? null : x.p.priced),
        };
      });
      return { results };
    },
  );

  app.post(
    "/estimate",
    {
      schema: {
        tags: ["rate card"],
        summary: "Price a hypothetical usage without recording anything (the credit calculator)",
        body: Type.Object(
          {
            service: Type.String({ minLength: 1, maxLength: 64 }),
            quantity: Type.Optional(Type.Union([Quantity, Type.Null()])),
            quantities: Type.Optional(
              Type.Union([Type.Record(Type.String({ maxLength: 64 }), Quantity), Type.Null()]),
            ),
            metadata: Type.Optional(MetadataSchema),
            at: Type.Optional(Time),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const b = req.body;
      try {
        const card = await rateCards.at(parseTime(b.at, "at") ?? engine.clock.now(), "at");
        return pricedToJSON(
          priceUsage(card, {
            service: b.service,
            quantity: b.quantity,
            quantities: b.quantities,
            metadata: b.metadata,
          }),
        );
      } catch (err) {
        throw asEventError(err);
      }
    },
  );

  app.get(
    "/rate-card",
    { schema: { tags: ["rate card"], summary: "The rate card in force now" } },
    async () => cardJson(await rateCards.at(engine.clock.now(), "now")),
  );

  app.get(
    "/rate-card/versions",
    { schema: { tags: ["rate card"], summary: "Every version of the rate card" } },
    async () => ({
      data: (await rateCards.versions()).map(cardJson),
    }),
  );

  app.put(
    "/rate-card",
    {
      schema: {
        tags: ["rate card"],
        summary: "Publish a new version of the rate card (effective now, or at effective_at)",
        body: Type.Object(
          {
            version: Type.Optional(Type.Integer({ minimum: 1 })),
            effective_at: Type.Optional(Time),
            services: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 1000 }),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const card = await rateCards.publish({
        ...(b.version !== undefined ? { version: b.version } : {}),
        ...(b.effective_at !== undefined ? { effective_at: parseTime(b.effective_at, "effective_at")! } : {}),
        services: b.services as never,
      });
      reply.code(201);
      return cardJson(card);
    },
  );
};

function cardJson(card: RateCard) {
  const json = rateCardToJSON(card);
  return { ...json, effective_at: new Date(json.effective_at).toISOString() };
}

function failure(id: string, err: unknown, requestId: string) {
  if (!isTallyError(err)) throw err;
  return { id, ok: false, error: { ...errorJson(err), request_id: requestId } };
}
