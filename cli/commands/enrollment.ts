/**
 * `fleet enrollment list`: the quarantine view of onboarding attempts.
 *
 * Reads the enrollment decisions of a time window from the sparse `byEnrollmentDay` GSI of the
 * events table: one Query per UTC day, never a Scan. Shows serial, lot, decision, reason and
 * time, newest first, and the first-time success rate: the share of serials with an attempt in
 * the window whose first attempt in the window was allowed.
 */
import { Command } from 'commander';
import { ALLOW_REASONS, DENY_REASONS, DeviceEvent } from '../../core/model';
import { RegistryAdmin } from '../registry-admin';
import { CliContext, registryTables } from '../context';
import { UsageError } from '../errors';
import { formatTable } from '../output';
import { examples, positiveInt, RunCommand } from '../registration';
import { parseTimeArg } from '../time';

/** Widest window one command may query (one Query per day). */
export const MAX_WINDOW_DAYS = 92;

export interface EnrollmentListOptions {
  /** Only denied attempts. @default false */
  denied?: boolean;
  /** Start of the window: ISO time, date, or duration before now (`24h`, `7d`). @default '24h' */
  since?: string;
  /** End of the window (exclusive), same forms. @default 'now' */
  until?: string;
  /** Only attempts with this reason code. */
  reason?: string;
  /** Only attempts of this lot. */
  lot?: string;
  /** Show at most this many attempts (newest first). @default 50 */
  limit?: number;
  /** Print JSON instead of a table. @default false */
  json?: boolean;
}

export interface EnrollmentAttempt {
  serial: string;
  lot?: string;
  decision: 'ALLOWED' | 'DENIED';
  reason?: string;
  at: string;
}

export interface EnrollmentListResult {
  window: { since: string; until: string };
  /** Attempts that pass the filters, newest first, at most `limit`. */
  attempts: EnrollmentAttempt[];
  /** Attempts that pass the filters (before the limit). */
  matched: number;
  /** Figures over every attempt in the window (filters do not apply). */
  stats: {
    attempts: number;
    allowed: number;
    denied: number;
    serials: number;
    firstTimeAllowed: number;
    /** firstTimeAllowed / serials, or null when the window has no attempts. */
    firstTimeSuccessRate: number | null;
    /** Denied attempts per reason code. */
    deniedByReason: Record<string, number>;
  };
}

const KNOWN_REASONS: readonly string[] = [...ALLOW_REASONS, ...DENY_REASONS];

/** The window, limit and reason of `enrollment list`, checked; needs no AWS. */
export interface EnrollmentListQuery {
  since: Date;
  until: Date;
  limit: number;
  /** Upper-cased reason code, when given. */
  reason?: string;
}

/** Check the options of `enrollment list` against `now`, or throw a {@link UsageError} naming the fix. */
export function checkEnrollmentListOptions(opts: EnrollmentListOptions, now: Date): EnrollmentListQuery {
  const since = parseTimeArg(opts.since ?? '24h', now, '--since');
  const until = parseTimeArg(opts.until ?? 'now', now, '--until');
  if (since.getTime() >= until.getTime()) {
    throw new UsageError(
      `--since (${since.toISOString()}) must be before --until (${until.toISOString()}); widen the window`,
    );
  }
  if (until.getTime() - since.getTime() > MAX_WINDOW_DAYS * 86_400_000) {
    throw new UsageError(`the window spans more than ${MAX_WINDOW_DAYS} days; narrow --since/--until`);
  }
  const limit = opts.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError(`--limit "${opts.limit}" must be a positive whole number`);
  const reason = opts.reason?.trim().toUpperCase();
  if (reason !== undefined && !KNOWN_REASONS.includes(reason)) {
    throw new UsageError(
      `--reason "${opts.reason}" is not a decision reason code; use one of ${KNOWN_REASONS.join(', ')}`,
    );
  }
  if (opts.denied && reason && (ALLOW_REASONS as readonly string[]).includes(reason)) {
    throw new UsageError(
      `--reason ${opts.reason} is an allow reason and --denied shows only denials; drop one of them`,
    );
  }
  return { since, until, limit, ...(reason !== undefined ? { reason } : {}) };
}

export async function enrollmentList(
  opts: EnrollmentListOptions,
  ctx: CliContext,
): Promise<EnrollmentListResult> {
  const { since, until, limit, reason } = checkEnrollmentListOptions(opts, ctx.now());

  const admin = new RegistryAdmin(ctx.clients.doc, registryTables(ctx, ['eventsTable']), { now: ctx.now });
  const window = { since: since.toISOString(), until: until.toISOString() };
  const events = await admin.queryEnrollments(window);
  const all = events
    .filter((e) => e.type === 'ENROLLMENT_ALLOWED' || e.type === 'ENROLLMENT_DENIED')
    .sort((a, b) => a.at.localeCompare(b.at) || a.sk.localeCompare(b.sk));

  const stats = computeStats(all);
  const matching = all
    .filter((e) => !opts.denied || e.type === 'ENROLLMENT_DENIED')
    .filter((e) => !reason || e.reason === reason)
    .filter((e) => !opts.lot || e.lot === opts.lot)
    .reverse();
  const attempts = matching.slice(0, limit).map(toAttempt);
  const result: EnrollmentListResult = { window, attempts, matched: matching.length, stats };

  if (opts.json) {
    ctx.out.json(result);
    return result;
  }
  ctx.out.info(`enrollment attempts ${window.since} .. ${window.until}`);
  if (attempts.length === 0) ctx.out.info('no attempts match');
  else {
    for (const line of formatTable(
      ['TIME', 'SERIAL', 'LOT', 'DECISION', 'REASON'],
      attempts.map((a) => [a.at, a.serial, a.lot ?? '-', a.decision, a.reason ?? '-']),
    )) {
      ctx.out.info(line);
    }
    if (matching.length > attempts.length) {
      ctx.out.info(`(${attempts.length} newest of ${matching.length} shown; raise --limit to see more)`);
    }
  }
  const rate =
    stats.firstTimeSuccessRate === null ? 'n/a' : `${(stats.firstTimeSuccessRate * 100).toFixed(1)}%`;
  ctx.out.info(
    `${stats.attempts} attempt(s) from ${stats.serials} serial(s): ${stats.allowed} allowed, ${stats.denied} denied; ` +
      `first-time success rate ${rate} (${stats.firstTimeAllowed}/${stats.serials})`,
  );
  const reasons = Object.entries(stats.deniedByReason).sort((a, b) => b[1] - a[1]);
  if (reasons.length > 0)
    ctx.out.info(`denials by reason: ${reasons.map(([r, n]) => `${r} ${n}`).join(', ')}`);
  return result;
}

/** Window statistics over attempts sorted oldest first. */
export function computeStats(sorted: readonly DeviceEvent[]): EnrollmentListResult['stats'] {
  const first = new Map<string, DeviceEvent>();
  const deniedByReason: Record<string, number> = {};
  let allowed = 0;
  for (const e of sorted) {
    if (!first.has(e.serial)) first.set(e.serial, e);
    if (e.type === 'ENROLLMENT_ALLOWED') allowed += 1;
    else {
      const reason = e.reason ?? 'UNKNOWN';
      deniedByReason[reason] = (deniedByReason[reason] ?? 0) + 1;
    }
  }
  const firstTimeAllowed = [...first.values()].filter((e) => e.type === 'ENROLLMENT_ALLOWED').length;
  return {
    attempts: sorted.length,
    allowed,
    denied: sorted.length - allowed,
    serials: first.size,
    firstTimeAllowed,
    firstTimeSuccessRate: first.size === 0 ? null : firstTimeAllowed / first.size,
    deniedByReason,
  };
}

function toAttempt(e: DeviceEvent): EnrollmentAttempt {
  return {
    serial: e.serial,
    ...(e.lot ? { lot: e.lot } : {}),
    decision: e.type === 'ENROLLMENT_ALLOWED' ? 'ALLOWED' : 'DENIED',
    ...(e.reason ? { reason: e.reason } : {}),
    at: e.at,
  };
}

/** `fleet enrollment list`. */
export function registerEnrollment(program: Command, run: RunCommand): void {
  const enrollment = program
    .command('enrollment')
    .description('onboarding attempts (pre-provisioning decisions)');
  enrollment
    .command('list')
    .description(
      'quarantine view: recent attempts (serial, lot, decision, reason, time) and the first-time success rate',
    )
    .option('--denied', 'only denied attempts')
    .option('--since <time>', 'window start: ISO time, date, or 30m/24h/7d before now', '24h')
    .option('--until <time>', 'window end (exclusive), same forms', 'now')
    .option('--reason <code>', 'only this reason code, e.g. NOT_ON_ALLOWLIST')
    .option('--lot <lot>', 'only this lot')
    .option('--limit <n>', 'show at most n attempts, newest first', positiveInt, 50)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Queries the sparse byEnrollmentDay index one UTC day at a time (never a scan). The success
rate is the share of serials whose first attempt in the window was allowed.
${examples([
  'fleet enrollment list --denied --since 24h',
  'fleet enrollment list --reason CLAIM_LOT_MISMATCH --since 7d --limit 200',
  'fleet enrollment list --since 2026-07-01 --until 2026-07-02 --json',
])}`,
    )
    .action(async (o, cmd: Command) => {
      const opts: EnrollmentListOptions = {
        denied: o.denied,
        since: o.since,
        until: o.until,
        reason: o.reason,
        lot: o.lot,
        limit: o.limit,
        json: o.json,
      };
      return run(
        cmd,
        { needs: ['eventsTable'], validate: () => void checkEnrollmentListOptions(opts, new Date()) },
        (ctx) => enrollmentList(opts, ctx),
      );
    });
}
