/* eslint-disable @typescript-eslint/no-explicit-any -- a line-by-line port of dynamically typed Python code */
/**
 * The seed's example code (shared/seeds/003: "Credits API"), ported line by line from Python to
 * TypeScript. It must run unchanged against Tally: only the base URL points at the test server, and
 * `requests` is `fetch`. Printing goes to a log the test can read.
 */

export interface UsageLog {
  id: string;
  user_credits_id: string;
  credits_used: number;
  service_type: string;
  audio_duration: number;
  credit_source: string;
  created_at: string;
  usage_metadata: Record<string, unknown>;
}

async function getJson(url: string, headers: Record<string, string>): Promise<any> {
  const response = await fetch(url, { headers });
  return response.json();
}

async function postJson(url: string, headers: Record<string, string>, body: unknown): Promise<any> {
  const response = await fetch(url, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

/** `class AudioPodCreditManager` */
export class AudioPodCreditManager {
  readonly api_key: string;
  readonly base_url: string;
  readonly headers: Record<string, string>;

  constructor(api_key: string, base_url: string) {
    this.api_key = api_key;
    this.base_url = base_url; // "https://api.audiopod.ai/api/v1" in the seed
    this.headers = { Authorization: `Bearer ${api_key}` };
  }

  /** Get current credit balance */
  async get_balance(): Promise<any> {
    const response = await getJson(`${this.base_url}/credits`, this.headers);
    return response;
  }

  /** Check if user has enough credits for a service */
  async check_sufficient_credits(service_type: string, duration_seconds = 0) {
    // Get current balance
    const balance = await this.get_balance();
    const available = balance["total_available_credits"];

    // Get service costs
    const costs = await getJson(`${this.base_url}/credits/multipliers`, this.headers);

    // Calculate required credits
    let required: number;
    if (service_type === "voice_cloning_generation") {
      required = (duration_seconds / 60) * costs["voice_cloning_generation"];
    } else if (service_type === "transcription") {
      required = (duration_seconds / 60) * costs["transcription"];
    } else if (service_type === "music_generation") {
      required = (duration_seconds / 30) * costs["music_generation"];
    } else {
      required = costs[service_type] ?? 0;
    }

    return {
      sufficient: available >= required,
      available: available,
      required: required,
      shortfall: Math.max(0, required - available),
    };
  }

  /** Get usage summary for the last N days */
  async get_usage_summary(days = 30) {
    const usage_logs: UsageLog[] = await getJson(`${this.base_url}/credits/usage`, this.headers);

    // Filter by date range
    const cutoff_date = new Date(Date.now() - days * 24 * 3600 * 1000);

    const recent_usage: UsageLog[] = [];
    for (const log of usage_logs) {
      const log_date = new Date(log["created_at"].replace("Z", "+00:00"));
      if (log_date >= cutoff_date) recent_usage.push(log);
    }

    // Summarize
    const total_credits = recent_usage.reduce((s, log) => s + log["credits_used"], 0);
    const service_breakdown: Record<string, number> = {};

    for (const log of recent_usage) {
      const service = log["service_type"];
      service_breakdown[service] = (service_breakdown[service] ?? 0) + log["credits_used"];
    }

    return {
      period_days: days,
      total_credits_used: total_credits,
      service_breakdown: service_breakdown,
      usage_count: recent_usage.length,
    };
  }
}

/** `def analyze_credit_usage()` — comprehensive credit usage analysis. */
export async function analyze_credit_usage(base_url: string, api_key: string, print: (line: string) => void) {
  const headers = { Authorization: `Bearer ${api_key}` };

  // Get current balance
  const credits = await getJson(`${base_url}/credits`, headers);
  print(`Current Balance: ${credits.total_available_credits.toLocaleString("en-US")} credits`);
  print(`Monthly Reset: ${credits.next_reset_date}`);

  // Get detailed usage history
  const usage_logs: UsageLog[] = await getJson(`${base_url}/credits/usage?limit=1000`, headers);

  // Analyze by service type
  const service_analysis: Record<
    string,
    { total_credits: number; total_duration: number; usage_count: number; average_cost: number }
  > = {};

  // Daily usage tracking
  const daily_usage: Record<string, number> = {};

  for (const log of usage_logs) {
    const service = log["service_type"];
    const credits_used = log["credits_used"];
    const duration = log["audio_duration"] ?? 0;
    const date = new Date(log["created_at"].replace("Z", "+00:00")).toISOString().slice(0, 10);

    // Service analysis
    service_analysis[service] ??= { total_credits: 0, total_duration: 0, usage_count: 0, average_cost: 0 };
    service_analysis[service].total_credits += credits_used;
    service_analysis[service].total_duration += duration;
    service_analysis[service].usage_count += 1;

    // Daily usage
    daily_usage[date] = (daily_usage[date] ?? 0) + credits_used;
  }

  // Calculate averages
  for (const service of Object.keys(service_analysis)) {
    const data = service_analysis[service]!;
    if (data.usage_count > 0) data.average_cost = data.total_credits / data.usage_count;
  }

  // Generate report
  print("\n📊 Credit Usage Analysis");
  print("=".repeat(50));

  print("\n🎯 Usage by Service:");
  for (const [service, data] of Object.entries(service_analysis).sort(
    (a, b) => b[1].total_credits - a[1].total_credits,
  )) {
    print(`  ${service}:`);
    print(`    Total Credits: ${data.total_credits.toLocaleString("en-US")}`);
    print(`    Average per Use: ${data.average_cost.toFixed(1)}`);
    print(`    Usage Count: ${data.usage_count}`);
    if (data.total_duration > 0) print(`    Total Duration: ${data.total_duration.toFixed(1)}s`);
    print("");
  }

  // Show cost optimization tips
  print("💡 Optimization Tips:");
  const most_used = Object.entries(service_analysis).reduce((a, b) =>
    b[1].total_credits > a[1].total_credits ? b : a,
  );
  print(`  • ${most_used[0]} is your highest cost service (${most_used[1].total_credits} credits)`);

  // Check for batch opportunities
  for (const [service, data] of Object.entries(service_analysis)) {
    if (data.usage_count > 10 && data.average_cost < 100)
      print(`  • Consider batching ${service} requests to reduce API overhead`);
  }

  return { service_analysis, daily_usage };
}

/** `def estimate_service_cost(service_type, **params)` */
export async function estimate_service_cost(
  base_url: string,
  api_key: string,
  service_type: string,
  params: { duration?: number; characters?: number } = {},
) {
  // Get current multipliers
  const costs = await getJson(`${base_url}/credits/multipliers`, { Authorization: `Bearer ${api_key}` });

  const estimates: Record<string, () => number> = {
    voice_cloning_training: () => costs["voice_cloning_training"], // Fixed cost
    voice_cloning_generation: () => ((params.duration ?? 60) / 60) * costs["voice_cloning_generation"],
    transcription: () => ((params.duration ?? 60) / 60) * costs["transcription"],
    transcription_with_speakers: () =>
      ((params.duration ?? 60) / 60) * costs["transcription_with_diarization"],
    music_generation: () => ((params.duration ?? 30) / 30) * costs["music_generation"],
    translation: () => ((params.duration ?? 60) / 60) * costs["translation"],
    text_to_speech: () => ((params.characters ?? 1000) / 1000) * costs["text_to_speech"],
  };

  if (service_type in estimates) {
    const credits_needed = estimates[service_type]!();
    const usd_cost = credits_needed * 0.001; // $0.001 per credit

    return {
      service: service_type,
      credits_needed: Math.trunc(credits_needed),
      usd_cost: Math.round(usd_cost * 10000) / 10000,
      parameters: params,
    };
  }

  return null;
}

/** `def setup_credit_alerts(api_key, warning_threshold=500, critical_threshold=100)` */
export async function setup_credit_alerts(
  base_url: string,
  api_key: string,
  send_alert: (text: string) => void,
  warning_threshold = 500,
  critical_threshold = 100,
) {
  const headers = { Authorization: `Bearer ${api_key}` };
  const balance = await getJson(`${base_url}/credits`, headers);
  const available = balance["total_available_credits"];

  if (available <= critical_threshold) {
    send_alert(`CRITICAL: Only ${available} credits remaining!`);
    // Auto-purchase more credits
    await postJson(`${base_url}/credits/payg/create-checkout-session`, headers, { amount_usd: 50 });
  } else if (available <= warning_threshold) {
    send_alert(`WARNING: ${available} credits remaining`);
  }

  return available;
}
