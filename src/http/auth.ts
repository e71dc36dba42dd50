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
   * The key itself, once a request has presented it. The operator key is fixed for the life of the
   * process (there is no rotation: a new key means a restart), so a token with the same bytes is the key;
   * comparing bytes in constant time costs a fraction of a SHA-256, which every /v1 request paid twice
   * (rate limiter, then auth). Anything else still takes the hash path, as before.
   */
  private known: Buffer | null = null;

  verify(token: string): boolean {
    const bytes = Buffer.from(token, "utf8");
    const known = this.known;
    if (known !== null) {
      // Same work whatever the length, so the comparison does not tell the key's length.
      const same = bytes.length === known.length;
      if (timingSafeEqual(same ? bytes : known, known) && same) return true;
    }
    const h = sha256(token);
    const ok = h.length === this.hash.length && timingSafeEqual(h, this.hash);
    if (ok && known === null) this.known = bytes;
    return ok;
  }

  /** Whether the request carries the operator key as its bearer token. */
  verifies(req: FastifyRequest): boolean {
    const token = bearer(req);
    return token !== null && this.verify(token);
  }

  /** Fastify preHandler: a valid `Authorization: Bearer <operator key>` or 401. */
  check(req: FastifyRequest): void {
    const token = bearer(req);
    if (!token)
      throw new TallyError("unauthorized", "missing Authorization: Bearer <operator key>", {
        field: "authorization",
      });
    if (!this.verify(token))
      throw new TallyError("unauthorized", "the operator key is not valid", { field: "authorization" });
  }
}

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== "string") return null;
  const m = /^Bearer\s+(\S{1,512})$/i.exec(h.trim());
  return m ? m[1]! : null;
}
