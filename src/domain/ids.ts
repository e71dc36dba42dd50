import { randomBytes } from "node:crypto";

/** Crockford base32: sortable, no ambiguous letters. */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** Every id prefix in use, one place so features do not collide. */
export type IdPrefix =
  | "acct" // account
  | "grt" // grant
  | "use" // usage
  | "hld" // hold
  | "txn" // journal transaction
  | "rfd" // usage refund
  | "key" // API key
  | "usr" // customer user
  | "evt" // outbox event
  | "plan" // plan
  | "sub" // subscription
  | "adj" // operator adjustment
  | "pur" // purchase
  | "pack" // credit pack
  | "chk" // checkout session (reserved; sessions use "cs", as the seed's Credits API shows them)
  | "cs" // checkout session
  | "pm" // saved payment method
  | "prf" // purchase refund
  | "ses" // live session
  | "whe" // webhook endpoint
  | "dlv" // webhook delivery
  | "alr" // alert rule
  | "bdg"; // budget

let lastTime = 0;
let lastTimeText = encodeTime(0);
let lastRandom: Uint8Array = new Uint8Array(10);

/**
 * A prefixed, lexicographically sortable id: `grt_` + 10 chars of millisecond time + 16 chars of randomness.
 * Monotonic within a process: ids made in the same millisecond increment the random part (so randomBytes
 * and the time's encoding run once per millisecond, not once per id).
 */
export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  if (nowMs <= lastTime) {
    lastRandom = increment(lastRandom);
  } else {
    lastRandom = randomBytes(10);
    lastTime = nowMs;
    lastTimeText = encodeTime(nowMs);
  }
  return `${prefix}_${lastTimeText}${encodeRandom(lastRandom)}`;
}

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 10 bytes = 80 bits = 16 base32 characters, most significant first.
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/** The next value of the random part, in place (it is this module's own buffer). */
function increment(bytes: Uint8Array): Uint8Array {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 255) {
      bytes[i]!++;
      return bytes;
    }
    bytes[i] = 0;
  }
  return randomBytes(10);
}

const ID_PATTERN = /^[a-z]+_[0-9a-z]{26}$/;
export function looksLikeId(prefix: IdPrefix, id: string): boolean {
  return id.startsWith(prefix + "_") && ID_PATTERN.test(id);
}
