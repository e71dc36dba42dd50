/** API JSON lives in the domain so the ledger's events use the very same shapes as the API. */
export { toApi } from "../domain/api-json.ts";
