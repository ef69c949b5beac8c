/**
 * Lambda event filtering (FilterCriteria), the event-pattern subset the lab supports, following
 * the Lambda and EventBridge documentation:
 *
 * - a pattern object matches when every field it names matches (nested objects recurse; `$or`
 *   takes a list of patterns of which one must match);
 * - a field's rule list matches when the value (or, for an array value, one of its elements)
 *   matches one rule: a literal (string, number compared numerically, boolean, null),
 *   `{ "prefix": s }`, `{ "suffix": s }`, `{ "equals-ignore-case": s }`, `{ "wildcard": "a*b" }`,
 *   `{ "anything-but": v | [v…] | { "prefix": s } | { "suffix": s } }`,
 *   `{ "numeric": [">", 0, "<=", 5] }` or `{ "exists": true | false }`;
 * - a missing field matches only `{ "exists": false }`.
 *
 * For a Kinesis source the pattern may test `data` only (the record's data, base64-decoded and
 * parsed as JSON). A record whose data is not JSON does not match such a pattern: Lambda drops
 * it, as it does every record no filter matches.
 */

export class PatternError extends Error {}

type Rule = unknown;

const OPERATORS = new Set([
  'prefix',
  'suffix',
  'equals-ignore-case',
  'wildcard',
  'anything-but',
  'numeric',
  'exists',
]);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function checkRule(rule: Rule, at: string): void {
  if (!isObject(rule)) return;
  const keys = Object.keys(rule);
  if (keys.length !== 1 || !OPERATORS.has(keys[0]))
    throw new PatternError(
      `${at}: unsupported rule ${JSON.stringify(rule)} (supported: literals, ${[...OPERATORS].join(', ')})`,
    );
  const [op] = keys;
  const v = rule[op];
  if (op === 'numeric') {
    if (!Array.isArray(v) || v.length === 0 || v.length % 2 !== 0)
      throw new PatternError(`${at}: numeric needs operator/value pairs`);
    for (let i = 0; i < v.length; i += 2)
      if (!['=', '<', '<=', '>', '>='].includes(String(v[i])) || typeof v[i + 1] !== 'number')
        throw new PatternError(`${at}: bad numeric comparison ${JSON.stringify(v)}`);
  }
  if (op === 'exists' && typeof v !== 'boolean') throw new PatternError(`${at}: exists takes true or false`);
}

/** Throw PatternError for a pattern the lab cannot evaluate. */
export function validatePattern(pattern: unknown, at = 'pattern'): void {
  if (!isObject(pattern)) throw new PatternError(`${at} must be a JSON object`);
  for (const [k, v] of Object.entries(pattern)) {
    if (k === '$or') {
      if (!Array.isArray(v) || v.length < 2) throw new PatternError(`${at}.$or needs a list of patterns`);
      v.forEach((p, i) => validatePattern(p, `${at}.$or[${i}]`));
    } else if (Array.isArray(v)) v.forEach((r, i) => checkRule(r, `${at}.${k}[${i}]`));
    else if (isObject(v)) validatePattern(v, `${at}.${k}`);
    else throw new PatternError(`${at}.${k} must be a list of rules or a nested pattern`);
  }
}

function wildcardMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 's');
  return re.test(value);
}

function numericMatch(spec: unknown[], value: number): boolean {
  for (let i = 0; i < spec.length; i += 2) {
    const n = spec[i + 1] as number;
    const ok =
      spec[i] === '='
        ? value === n
        : spec[i] === '<'
          ? value < n
          : spec[i] === '<='
            ? value <= n
            : spec[i] === '>'
              ? value > n
              : value >= n;
    if (!ok) return false;
  }
  return true;
}

function literalMatch(rule: unknown, value: unknown): boolean {
  if (typeof rule === 'number' && typeof value === 'number') return rule === value;
  return rule === value;
}

function ruleMatches(rule: Rule, value: unknown): boolean {
  if (!isObject(rule)) return literalMatch(rule, value);
  const [op] = Object.keys(rule);
  const arg = rule[op];
  switch (op) {
    case 'prefix':
      if (isObject(arg) && typeof arg['equals-ignore-case'] === 'string')
        return (
          typeof value === 'string' && value.toLowerCase().startsWith(arg['equals-ignore-case'].toLowerCase())
        );
      return typeof value === 'string' && typeof arg === 'string' && value.startsWith(arg);
    case 'suffix':
      return typeof value === 'string' && typeof arg === 'string' && value.endsWith(arg);
    case 'equals-ignore-case':
      return (
        typeof value === 'string' && typeof arg === 'string' && value.toLowerCase() === arg.toLowerCase()
      );
    case 'wildcard':
      return typeof value === 'string' && typeof arg === 'string' && wildcardMatch(arg, value);
    case 'numeric':
      return typeof value === 'number' && numericMatch(arg as unknown[], value);
    case 'anything-but': {
      if (isObject(arg)) return !ruleMatches(arg, value);
      const list = Array.isArray(arg) ? arg : [arg];
      return !list.some((l) => literalMatch(l, value));
    }
    default:
      return false;
  }
}

function fieldMatches(rules: Rule[], value: unknown): boolean {
  const exists = rules.find((r) => isObject(r) && 'exists' in r) as { exists: boolean } | undefined;
  if (value === undefined) return exists?.exists === false;
  if (exists && exists.exists === false) return false;
  const values = Array.isArray(value) ? value : [value];
  return rules.some((r) =>
    isObject(r) && 'exists' in r ? r.exists === true : values.some((v) => ruleMatches(r, v)),
  );
}

/** True when `event` matches `pattern` (a validated pattern). */
export function matchPattern(pattern: Record<string, unknown>, event: unknown): boolean {
  const doc = isObject(event) ? event : {};
  for (const [k, p] of Object.entries(pattern)) {
    if (k === '$or') {
      if (!(p as Record<string, unknown>[]).some((alt) => matchPattern(alt, event))) return false;
      continue;
    }
    const value = doc[k];
    if (Array.isArray(p)) {
      if (!fieldMatches(p, value)) return false;
    } else if (!isObject(value) || !matchPattern(p as Record<string, unknown>, value)) return false;
  }
  return true;
}

/**
 * The Kinesis record filter of an event-source mapping's FilterCriteria, or undefined when it has
 * no filter. Throws PatternError for a pattern Lambda would refuse (not JSON, not on `data`) or
 * one the lab cannot evaluate.
 */
export function kinesisRecordFilter(filterCriteria: unknown): ((data: Buffer) => boolean) | undefined {
  const filters = (filterCriteria as { Filters?: { Pattern?: unknown }[] } | undefined)?.Filters;
  if (!Array.isArray(filters) || filters.length === 0) return undefined;
  const patterns = filters.map((f, i) => {
    let p: unknown;
    try {
      p = typeof f.Pattern === 'string' ? JSON.parse(f.Pattern) : f.Pattern;
    } catch {
      throw new PatternError(`FilterCriteria.Filters[${i}].Pattern is not JSON`);
    }
    validatePattern(p, `FilterCriteria.Filters[${i}].Pattern`);
    const other = Object.keys(p as object).filter((k) => k !== 'data');
    if (other.length)
      throw new PatternError(
        `FilterCriteria.Filters[${i}].Pattern filters on ${other.join(', ')}: Kinesis event source mappings only support filtering on the data key`,
      );
    return p as Record<string, unknown>;
  });
  return (data) => {
    let doc: unknown;
    try {
      doc = JSON.parse(data.toString('utf8'));
    } catch {
      // Not JSON: no pattern that tests data matches it.
      return patterns.some((p) => !('data' in p));
    }
    return patterns.some((p) => matchPattern(p, { data: doc }));
  };
}
