import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { TallyError } from "../domain/errors.ts";
import type { Store } from "../store/types.ts";

const OPERATOR_KEY_SETTING = "operator_key_sha256";

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString("base64url")}`;
}

/**
 * The operator key. TALLY_ADMIN_KEY when set; otherwise one generated on first start, stored only as a
 * hash, and shown once (`printed`). Later starts find the hash and cannot show the key again.
 */
export class OperatorAuth {
  private constructor(private readonly hash: Buffer) {}

  static async setup(
    store: Store,
    envKey: string | undefined,
  ): Promise<{ auth: OperatorAuth; printed: string | null }> {
    if (envKey) {
      if (envKey.length < 16) throw new Error("TALLY_ADMIN_KEY must be at least 16 characters");
      return { auth: new OperatorAuth(sha256(envKey)), printed: null };
    }
    const key = newSecret("tly_op");
    const mine = sha256(key).toString("hex");
    const inForce = await store.putSettingIfAbsent(OPERATOR_KEY_SETTING, mine);
    return { auth: new OperatorAuth(Buffer.from(inForce, "hex")), printed: inForce === mine ? key : null };
  }

  /**
   * Verdicts per request: the rate limiter and the /v1 auth hook both ask, and the key is hashed once.
   * Only for the request's lifetime (nothing is cached across requests, so nothing outlives a key).
   */
  private readonly verdicts = new WeakMap<FastifyRequest, boolean>();

  verify(token: string): boolean {
    const h = sha256(token);
    return h.length === this.hash.length && timingSafeEqual(h, this.hash);
  }

  /** Whether the request carries the operator key as its bearer token (hashed once per request). */
  verifies(req: FastifyRequest): boolean {
    let ok = this.verdicts.get(req);
    if (ok === undefined) {
      const token = bearer(req);
      ok = token !== null && this.verify(token);
      this.verdicts.set(req, ok);
    }
    return ok;
  }

  /** Fastify preHandler: a valid `Authorization: Bearer <operator key>` or 401. */
  check(req: FastifyRequest): void {
    if (this.verifies(req)) return;
    if (!bearer(req))
      throw new TallyError("unauthorized", "missing Authorization: Bearer <operator key>", {
        field: "authorization",
      });
    throw new TallyError("unauthorized", "the operator key is not valid", { field: "authorization" });
  }
}

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== "string") return null;
  const m = /^Bearer\s+(\S{1,512})$/i.exec(h.trim());
  return m ? m[1]! : null;
}
