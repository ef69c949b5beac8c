/**
 * Short English messages for zod issues, for bundles that cannot afford zod's full English
 * locale (about 2.7 KiB minified; validation.ts loads it for the provisioning functions). They
 * cover the issues the device contract's schemas raise (core/telemetry.ts): a wrong type, a
 * number or length out of bounds, a pattern, an enum or literal, an unexpected field; refinements
 * keep their own message. Importing this module installs them.
 */
import { config, type core } from 'zod/mini';

const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

function received(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'array';
  if (typeof input === 'number' && !Number.isInteger(input))
    return Number.isFinite(input) ? 'float' : String(input);
  return typeof input;
}

/** The message of one issue (`path: message` is how the callers show it). */
export function issueMessage(issue: core.$ZodRawIssue): string {
  const i = issue as core.$ZodRawIssue & Record<string, unknown>;
  const bound = (op: string, key: 'minimum' | 'maximum'): string =>
    `expected ${i.origin === 'number' || i.origin === 'int' ? 'a value' : `${String(i.origin)} length`} ${i.exact ? '' : i.inclusive ? `${op}=` : op}${String(i[key])}`;
  switch (i.code) {
    case 'invalid_type':
      return `expected ${String(i.expected)}, received ${received(i.input)}`;
    case 'too_small':
      return bound('>', 'minimum');
    case 'too_big':
      return bound('<', 'maximum');
    case 'invalid_format':
      return i.format === 'regex'
        ? `does not match ${String(i.pattern)}`
        : `is not a valid ${String(i.format)}`;
    case 'invalid_value':
      return `expected ${(i.values as unknown[]).map(shown).join(' | ')}`;
    case 'unrecognized_keys':
      return `unexpected field(s) ${(i.keys as string[]).join(', ')}`;
    default:
      return `invalid (${i.code})`;
  }
}

config({ localeError: issueMessage });
