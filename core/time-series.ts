/**
 * The contract of the time-series options (Timestream for LiveAnalytics, InfluxDB; off by
 * default; docs/decisions.md D19), shared by the constructs (lib/) and `fleet telemetry replay`
 * (cli/):
 *
 * - the health rule republishes each record it puts on the stream to an internal topic,
 *   {@link TIME_SERIES.topic}, which the device policy grants no device (neither publish nor
 *   subscribe: it grants `dt/`, `cmd/`, Jobs and shadow topics only);
 * - a second rule, {@link timeSeriesRuleName}, reads that topic, enriches the report with the
 *   thing's registry attributes and writes the time series; its error action writes under its own
 *   error-store prefix (its name), which replay reports but never re-drives: those entries are
 *   time-series writes that failed, the stream already has the record.
 */

/** Longest AWS IoT topic rule name. */
export const MAX_RULE_NAME_LENGTH = 128;

/** Suffix of the time-series rule's name after the health rule's. */
export const TIME_SERIES_RULE_SUFFIX = '_timeseries';

/** First level of the internal topics (never granted by the device policy). */
export const INTERNAL_TOPIC_ROOT = 'fleet-internal';

export const TIME_SERIES = {
  /**
   * The internal topic of one thing's health records: `fleet-internal/<topicPrefix>/<thing>/health`.
   * The thing is the third level, as in `dt/<topicPrefix>/<thing>/health`, so `topic(3)` is the
   * thing on both.
   */
  topic: (topicPrefix: string, thing: string): string =>
    `${INTERNAL_TOPIC_ROOT}/${topicPrefix}/${thing}/health`,
  /** The FROM filter of the time-series rule (every thing). */
  topicFilter: (topicPrefix: string): string => `${INTERNAL_TOPIC_ROOT}/${topicPrefix}/+/health`,
} as const;

/** 8 hex digits of FNV-1a over `text` (a stable short tag, not a security hash). */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The time-series rule's name, derived from the health rule's: `<health>_timeseries`
 * (`fleet_health_timeseries`). A health rule name too long for the suffix is cut and tagged with
 * a hash of the whole name, so the result stays within 128 characters and distinct per health rule.
 */
export function timeSeriesRuleName(healthRuleName: string): string {
  const plain = `${healthRuleName}${TIME_SERIES_RULE_SUFFIX}`;
  if (plain.length <= MAX_RULE_NAME_LENGTH) return plain;
  const tag = `_${shortHash(healthRuleName)}${TIME_SERIES_RULE_SUFFIX}`;
  return `${healthRuleName.slice(0, MAX_RULE_NAME_LENGTH - tag.length)}${tag}`;
}
