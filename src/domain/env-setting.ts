/**
 * An integer setting from the environment: `fallback` when unset or empty, else an integer within
 * `[min, max]`, or an error naming the variable (a bad value stops the server at start, not later).
 */
export function intSetting(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer from ${min} to ${max}, not ${raw}`);
  return n;
}
