import type { Engine } from "../../ledger/engine.ts";

/** What route plugins are given. */
export interface RouteDeps {
  engine: Engine;
}
