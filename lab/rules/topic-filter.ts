/** MQTT topic filters (`+` one level, `#` the rest) as used by rule FROM clauses and subscriptions. */

export class TopicFilterError extends Error {}

/** Throw unless `filter` is a valid MQTT topic filter. */
export function validateTopicFilter(filter: string): void {
  if (filter.length === 0) throw new TopicFilterError('empty topic filter');
  const levels = filter.split('/');
  levels.forEach((level, i) => {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      throw new TopicFilterError(`'#' must be the last level on its own in '${filter}'`);
    }
    if (level.includes('+') && level !== '+')
      throw new TopicFilterError(`'+' must be a whole level in '${filter}'`);
  });
}

/** True when `topic` matches `filter`. A filter starting with a wildcard never matches a `$` topic. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const BASIC_INGEST = /^\$aws\/rules\/([^/]+)\/(.+)$/;

/** For a Basic Ingest topic `$aws/rules/<rule>/<rest>`: the rule name and the topic the rule sees. */
export function parseBasicIngest(topic: string): { ruleName: string; topic: string } | undefined {
  const m = BASIC_INGEST.exec(topic);
  return m ? { ruleName: m[1], topic: m[2] } : undefined;
}
