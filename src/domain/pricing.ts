/**
 * The pricing domain (DESIGN.md §1 "Pricing"): rate cards, versions, and the exact price of a usage event.
 * Pure: no I/O. The order in which modifiers apply is documented in ./pricing/price.ts.
 */
export * from "./pricing/types.ts";
export {
  MAX_QUANTITY,
  QTY_SCALE,
  formatRatioCredits,
  formatScaled as formatQuantity,
  parseQuantity,
  type Ratio,
} from "./pricing/decimal.ts";
export {
  UnknownServiceError,
  billedQuantity,
  estimate,
  priceEvent,
  priceUsage,
  pricedToJSON,
  rateCardAt,
  serviceRate,
} from "./pricing/price.ts";
export { checkNextVersion, parseRateCard, parseServiceRate, parseServices } from "./pricing/card.ts";
export { rateCardToJSON, seedMultipliers } from "./pricing/to-json.ts";
