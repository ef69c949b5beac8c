/**
 * Exponential backoff with full jitter, as in the AWS IoT Embedded C SDK backoff algorithm:
 * `sleep = random_between(0, min(cap, base * 2^attempt))`.
 * See https://aws.github.io/aws-iot-device-sdk-embedded-C/202009.00/docs/doxygen/output/html/retryutils_page.html
 */

export interface BackoffOptions {
  /** First backoff window in milliseconds (attempt 0). @default 200 */
  baseMs: number;
  /** Upper bound of the backoff window in milliseconds. @default 20000 */
  capMs: number;
  /** Total attempts, the first one included. @default 8 */
  maxAttempts: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 200, capMs: 20_000, maxAttempts: 8 };

/** Random source in [0, 1), injectable so tests can pin the jitter. */
export type RandomFn = () => number;
/** Sleep function, injectable so tests never wait on the wall clock. */
export type SleepFn = (ms: number) => Promise<void>;

export const realSleep: SleepFn = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Upper bound of the backoff window after the `retry`-th failure (0-based). */
export function backoffWindowMs(retry: number, options: Pick<BackoffOptions, 'baseMs' | 'capMs'>): number {
  const exp = options.baseMs * 2 ** Math.max(0, retry);
  return Math.min(options.capMs, Number.isFinite(exp) ? exp : options.capMs);
}

/** Full-jitter delay: uniform in [0, min(cap, base * 2^retry)). */
export function fullJitterDelayMs(
  retry: number,
  options: Pick<BackoffOptions, 'baseMs' | 'capMs'>,
  random: RandomFn = Math.random,
): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffWindowMs(retry, options));
}

/** Merge partial options over the defaults and reject nonsense early. */
export function resolveBackoff(partial?: Partial<BackoffOptions>): BackoffOptions {
  const b = { ...DEFAULT_BACKOFF, ...(partial ?? {}) };
  if (!(b.baseMs >= 0) || !(b.capMs >= 0) || !(b.maxAttempts >= 1) || !Number.isInteger(b.maxAttempts)) {
    throw new Error(
      `Invalid backoff ${JSON.stringify(b)}: baseMs and capMs must be >= 0 and maxAttempts an integer >= 1`,
    );
  }
  return b;
}
