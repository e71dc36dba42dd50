import { DEFAULT_RATE_CARD } from "../domain/default-rate-card.ts";
import { TallyError } from "../domain/errors.ts";
import type { Clock } from "../domain/clock.ts";
import {
  checkNextVersion,
  parseRateCard,
  rateCardAt,
  rateCardToJSON,
  type RateCard,
  type RateCardJSON,
} from "../domain/pricing.ts";
import type { Store } from "../store/types.ts";

const PREFIX = "rate_card:";
/** How long a process trusts its copy of the versions before re-reading (other nodes may publish). */
const CACHE_MS = 1000;

/**
 * The rate card's versions, kept in the store's settings (one key per version, so two publishers of the
 * same version cannot both win). With nothing published, the default card (version 1) is in force.
 */
export class RateCards {
  private cache: { versions: RateCard[]; loaded_at: number } | null = null;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** The versions when this process's copy is fresh, without waiting (null: ask versions()). */
  fresh(): RateCard[] | null {
    const now = this.clock.now();
    if (this.cache && now - this.cache.loaded_at < CACHE_MS && now >= this.cache.loaded_at)
      return this.cache.versions;
    return null;
  }

  async versions(): Promise<RateCard[]> {
    const cached = this.fresh();
    if (cached) return cached;
    const now = this.clock.now();
    const stored = (await this.store.listSettings(PREFIX)).map((s) => parseRateCard(JSON.parse(s.value)));
    const versions = stored.length ? stored : [DEFAULT_RATE_CARD];
    versions.sort((a, b) => a.version - b.version);
    this.cache = { versions, loaded_at: now };
    return versions;
  }

  /** The version in force at an instant. */
  async at(at: number, field = "occurred_at"): Promise<RateCard> {
    return rateCardAt(await this.versions(), at, field);
  }

  /**
   * Publishes a new version. Without `version`, the next number; without `effective_at`, now. Usage
   * already recorded keeps the price it was charged.
   */
  async publish(
    input: Omit<RateCardJSON, "version" | "effective_at"> & Partial<RateCardJSON>,
  ): Promise<RateCard> {
    const existing = await this.versions();
    const last = existing[existing.length - 1]!;
    const card = parseRateCard({
      ...input,
      version: input.version ?? last.version + 1,
      effective_at: input.effective_at ?? this.clock.now(),
    });
    checkNextVersion(existing, card);
    const json = JSON.stringify(rateCardToJSON(card));
    const key = `${PREFIX}${String(card.version).padStart(10, "0")}`;
    if ((await this.store.listSettings(PREFIX)).length === 0) {
      // First publication: keep the default as version 1 so old usage still finds its price.
      await this.store.putSettingIfAbsent(
        `${PREFIX}${String(DEFAULT_RATE_CARD.version).padStart(10, "0")}`,
        JSON.stringify(rateCardToJSON(DEFAULT_RATE_CARD)),
      );
    }
    const inForce = await this.store.putSettingIfAbsent(key, json);
    if (inForce !== json)
      throw new TallyError("idempotency_conflict", `rate card version ${card.version} already exists`, {
        field: "version",
      });
    this.cache = null;
    return card;
  }
}
