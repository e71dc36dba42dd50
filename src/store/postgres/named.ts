import { createHash } from "node:crypto";
import type pg from "pg";

/**
 * A prepared statement: `pg` parses and plans an unnamed statement on every call, a named one once per
 * connection. The name is a hash of the text, so two texts never share a name (which `pg` refuses) and a
 * text built at run time (a bounded set of variants) gets one name per variant.
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
