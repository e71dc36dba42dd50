/**
 * The rate card: how usage of each service is priced in credits. Two forms:
 * - the JSON form (`RateCardJSON`): what an operator writes and reads (numbers or decimal strings);
 * - the parsed form (`RateCard`): validated, with every amount an exact bigint (credits in micro-credits,
 *   quantities in micro-units, multipliers in millionths). Only `parseRateCard` makes one from JSON.
 */
import { MICROS_PER_CREDIT } from "../amount.ts";
import { MAX_QUANTITY, type Ratio } from "./decimal.ts";

/** Limits on what an operator may put in a rate card ("put a limit on everything"). */
export const PRICING_LIMITS = {
  MAX_SERVICES: 1000,
  MAX_DIMENSIONS: 16,
  MAX_MODIFIERS: 64,
  /** Same as the ledger's limit on a usage event's `service`. */
  MAX_SERVICE_NAME_LENGTH: 64,
  MAX_NAME_LENGTH: 64,
  MAX_UNIT_LENGTH: 32,
  MAX_VALUE_LENGTH: 256,
  MAX_DESCRIPTION_LENGTH: 512,
  MAX_VERSION: 2_147_483_647,
  /** Largest price, fee or flat amount: one billion credits, in micro-credits. */
  MAX_PRICE: 1_000_000_000n * MICROS_PER_CREDIT,
  /** Largest multiplier (×1000), in millionths. */
  MAX_FACTOR: 1000n * 1_000_000n,
  /** Largest quantity, `per`, increment and minimum, in micro-units. */
  MAX_QUANTITY,
} as const;

/** The name of the only dimension of a single-dimension service (the usage event's `quantity`). */
export const SINGLE_DIMENSION = "quantity";

export type ModifierValue = string | number | boolean;
type Decimal = number | string;

// ---------------------------------------------------------------------------------------------------
// JSON form

export interface RateCardJSON {
  version: number;
  /** Epoch milliseconds from which this version prices usage (inclusive). */
  effective_at: number;
  services: Record<string, ServiceRateJSON>;
}

/**
 * One service. Exactly one pricing shape:
 * - single dimension: `price` credits per `per` units (the event gives `quantity`);
 * - several dimensions: `dimensions` (the event gives `quantities`); `increment` and `minimum` here are
 *   defaults for every dimension;
 * - fixed price per event: neither, only `fee` (the event gives no quantity).
 */
export interface ServiceRateJSON {
  unit: string;
  description?: string;
  price?: Decimal;
  /** Units the price is for (default 1). */
  per?: Decimal;
  /** Billing increment in units: the quantity is rounded up to a whole number of them (default 0.000001: none). */
  increment?: Decimal;
  /** Smallest billable quantity of a used dimension (default 0). */
  minimum?: Decimal;
  dimensions?: Record<string, DimensionJSON>;
  /** Credits charged on every event, whatever the quantity (default 0). */
  fee?: Decimal;
  modifiers?: ModifierJSON[];
}

export interface DimensionJSON {
  /** Defaults to the service's unit. */
  unit?: string;
  price: Decimal;
  per?: Decimal;
  increment?: Decimal;
  minimum?: Decimal;
}

/** Applies when the event's `metadata[key]` equals `value` (compared as text: true matches "true"). */
export interface ModifierJSON {
  key: string;
  value: ModifierValue;
  /** One of: a multiplier of the dimension's usage amount ... */
  multiply?: Decimal;
  /** ... an added price per unit of the dimension's billed quantity (`per` defaults to the dimension's) ... */
  add_per_unit?: { price: Decimal; per?: Decimal };
  /** ... or a flat amount of credits added to the event. */
  add_flat?: Decimal;
  /** The dimension it applies to: required for add_per_unit on a multi-dimension service; multiply without it applies to all. */
  dimension?: string;
  /** Lists this variant's price under this name in the Credits API's `multipliers` (e.g. transcription_with_diarization). */
  multiplier_key?: string;
  description?: string;
}

// ---------------------------------------------------------------------------------------------------
// Parsed form

export interface RateCard {
  version: number;
  effective_at: number;
  services: Record<string, ServiceRate>;
}

export interface ServiceRate {
  unit: string;
  description?: string;
  /** What the usage event gives: `quantity` (one dimension), `quantities` (dimensions) or nothing (fee only). */
  input: "quantity" | "quantities" | "none";
  dimensions: DimensionRate[];
  /** Micro-credits on every event. */
  fee: bigint;
  modifiers: Modifier[];
}

export interface DimensionRate {
  name: string;
  unit: string;
  /** Micro-credits per `per`. */
  price: bigint;
  /** Micro-units (> 0). */
  per: bigint;
  /** Micro-units (> 0). */
  increment: bigint;
  /** Micro-units (≥ 0). */
  minimum: bigint;
}

interface ModifierBase {
  key: string;
  value: ModifierValue;
  multiplier_key?: string;
  description?: string;
}

export type Modifier = ModifierBase &
  (
    | {
        effect: "multiply";
        /** Millionths: 2_000_000n is ×2. */ factor: bigint;
        /** null: every dimension. */ dimension: string | null;
      }
    | {
        effect: "add_per_unit";
        /** Micro-credits per `per` micro-units. */ price: bigint;
        per: bigint;
        dimension: string;
      }
    | { effect: "add_flat"; /** Micro-credits. */ amount: bigint }
  );

// ---------------------------------------------------------------------------------------------------
// Pricing an event

/** What is priced: a usage event (or a hypothetical one, for an estimate). `null` counts as absent. */
export interface UsageQuantities {
  quantity?: unknown;
  quantities?: unknown;
  metadata?: unknown;
}

export interface UsageToPrice extends UsageQuantities {
  service: unknown;
}

export type BreakdownLine =
  | {
      kind: "usage";
      dimension: string;
      unit: string;
      /** As given, micro-units. */
      quantity: bigint;
      /** After increment and minimum, micro-units. */
      billed_quantity: bigint;
      price: bigint;
      per: bigint;
      /** The add_per_unit and multiply modifiers that applied to this dimension, in card order. */
      modifiers: Modifier[];
      /** Product of the multipliers, as a ratio (1/1 when none). */
      multiplier: Ratio;
      /** Exact micro-credits for this dimension, before the event's single rounding. */
      amount: Ratio;
    }
  | { kind: "modifier"; modifier: Modifier; amount: bigint }
  | { kind: "fee"; amount: bigint };

export interface PricedEvent {
  /** Micro-credits to charge: the exact total rounded up to the next micro-credit, once. */
  cost: bigint;
  /** The exact total before rounding, micro-credits. */
  exact: Ratio;
  breakdown: BreakdownLine[];
}

export interface PricedUsage extends PricedEvent {
  service: string;
  /** The rate card version that priced it. */
  version: number;
}
