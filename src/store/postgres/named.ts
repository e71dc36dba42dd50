import { createHash } from "node:crypto";
import type pg from "pg";

/**
 * A prepared statement: `pg` sends an unnamed statement to be parsed on every call, a named one once per
 * connection. The name is a hash of the text, so two texts never share a name (which `pg` refuses) and a
 * text built at run time (a bounded set of variants) gets one name per variant.
 *
 * After a few calls PostgreSQL may keep one generic plan for a prepared statement, made with the table
 * statistics of that moment and not remade until the table is next analyzed. On a new database the tables
 * are empty then, and a statement looking up an array of ids (`= ANY($1)`, a join with `unnest`) can keep
 * a sequential scan while the table grows: the benchmark's batch load took 300 ms instead of 3. So outside
 * a transaction only lookups of one key of a unique index (whose plan is the index whatever the size) and
 * the balance read (./store.ts) are prepared; inside the store's transactions every statement may be, as
 * they run with `plan_cache_mode = force_custom_plan` (planned for their arguments, parsed once).
 */
export function named(text: string, values: unknown[]): pg.QueryConfig {
  let name = names.get(text);
  if (name === undefined) {
    name = `t_${createHash("sha1").update(text).digest("base64url").slice(0, 20)}`;
    names.set(text, name);
  }
  return { name, text, values };
}

const names = new Map<string, string>();
