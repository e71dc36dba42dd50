/**
 * The rate card Tally ships with: the seed Credits API's multipliers (seeds/003, `GET /credits/multipliers`),
 * in credits, plus the services its example client prices (text to speech, voice cloning training) and an
 * example LLM service. Operators replace it with their own (a new version) — nothing here is special.
 *
 * Choices the seed leaves open:
 * - Time-based services bill per second (unit `second`, increment 1 s, no minimum): 660 per 60 s is 11 per
 *   started second, so the seed's `(duration_seconds / 60) × 660` holds exactly for whole seconds.
 * - text_to_speech: 330 credits per 1,000 characters, billed per character — about one minute of speech,
 *   so the same as voice_cloning_generation's 330 per minute ($0.33 at the seed's $0.001 per credit).
 * - voice_cloning_training: a fixed 3,300 credits per training (ten minutes of generation); no quantity.
 * - transcription with `speaker_diarization=true` adds speaker_diarization's 1,650 per minute (2,310 per
 *   minute in all, listed in the multipliers as `transcription_with_diarization`, the key the seed's
 *   estimate code reads).
 * - music_generation with `quality=premium` costs double.
 * - llm_chat (example): input_tokens 0.5 and output_tokens 1.5 credits per 1,000 tokens; `model=large` ×4.
 */
import { parseRateCard, type RateCardJSON } from "./pricing.ts";

/** In force since 2000-01-01, the earliest time the ledger accepts: every event has a price. */
export const DEFAULT_RATE_CARD_EFFECTIVE_AT = Date.UTC(2000, 0, 1);

function perMinute(price: number, extra: Partial<RateCardJSON["services"][string]> = {}) {
  return { unit: "second", price, per: 60, increment: 1, ...extra };
}

export const DEFAULT_RATE_CARD_JSON: RateCardJSON = {
  version: 1,
  effective_at: DEFAULT_RATE_CARD_EFFECTIVE_AT,
  services: {
    voice_cloning_generation: perMinute(330, {
      description: "Speech in a cloned voice, per minute of audio",
    }),
    voice_conversion: perMinute(990, { description: "Voice conversion, per minute of audio" }),
    speech_translation: perMinute(3300, { description: "Speech-to-speech translation, per minute of audio" }),
    translation: perMinute(1650, { description: "Translation, per minute of audio" }),
    speaker_diarization: perMinute(1650, { description: "Who spoke when, per minute of audio" }),
    speaker_extraction: perMinute(1650, { description: "Isolating one speaker, per minute of audio" }),
    denoise_audio: perMinute(330, { description: "Noise removal, per minute of audio" }),
    spectral_denoise: perMinute(660, { description: "Spectral noise removal, per minute of audio" }),
    stem_extraction: perMinute(990, { description: "Splitting a track into stems, per minute of audio" }),
    music_generation: {
      unit: "second",
      price: 1320,
      per: 30,
      increment: 1,
      description: "Music generation, per 30 seconds of music",
      modifiers: [
        { key: "quality", value: "premium", multiply: 2, description: "Premium quality costs double" },
      ],
    },
    transcription: perMinute(660, {
      description: "Speech to text, per minute of audio",
      modifiers: [
        {
          key: "speaker_diarization",
          value: true,
          add_per_unit: { price: 1650, per: 60 },
          multiplier_key: "transcription_with_diarization",
          description: "Speaker labels add speaker_diarization's price",
        },
      ],
    }),
    video_download: {
      unit: "request",
      price: 6,
      per: 1,
      increment: 1,
      description: "Downloading a video's audio, per request",
    },
    text_to_speech: {
      unit: "character",
      price: 330,
      per: 1000,
      increment: 1,
      description: "Text to speech, per 1,000 characters of text",
    },
    voice_cloning_training: {
      unit: "request",
      fee: 3300,
      description: "Training a cloned voice, a fixed price per training",
    },
    llm_chat: {
      unit: "token",
      increment: 1,
      description: "Example LLM: input and output tokens priced apart",
      dimensions: {
        input_tokens: { price: 0.5, per: 1000 },
        output_tokens: { price: 1.5, per: 1000 },
      },
      modifiers: [
        {
          key: "model",
          value: "large",
          multiply: 4,
          description: "The large model costs four times as much",
        },
      ],
    },
  },
};

/** The default rate card, validated by the same rules as an operator's. */
export const DEFAULT_RATE_CARD = parseRateCard(DEFAULT_RATE_CARD_JSON);
