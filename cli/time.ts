/** Time arguments of the CLI: ISO times/dates, or durations before now like `30m`, `24h`, `7d`, `2w`. */
import { UsageError } from './errors';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parse a point in time. `flag` names the option in error messages. */
export function parseTimeArg(value: string, now: Date, flag: string): Date {
  const text = value.trim();
  if (text === 'now') return new Date(now.getTime());
  const rel = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(text);
  if (rel) return new Date(now.getTime() - Number(rel[1]) * UNIT_MS[rel[2].toLowerCase()]);
  // Full ISO times, or a date (taken as UTC midnight).
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const iso = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text.replace(' ', 'T');
    const t = Date.parse(iso);
    if (!Number.isNaN(t)) return new Date(t);
  }
  throw new UsageError(
    `${flag} "${value}" is not a time; use an ISO time (2026-07-01T08:00:00Z), a date (2026-07-01, UTC) or a duration before now (30m, 24h, 7d, 2w)`,
  );
}
