/**
 * The per-device ledger of a rollout: each device's one outcome, whatever the job retried and
 * however often or in whatever order its execution events arrived. Pure.
 *
 * Merge rule for an observed execution of a device's job:
 * - observations are ordered by executionNumber, then retryAttempt, then versionNumber (when both
 *   sides carry one: list summaries do not), then status rank (QUEUED < IN_PROGRESS < terminal);
 *   an observation not newer than the one recorded is
 *   ignored (a duplicate, or out of order);
 * - a terminal outcome is sticky: nothing moves it back to QUEUED or IN_PROGRESS, and
 *   SUCCEEDED, REJECTED, CANCELED, REMOVED and SILENT never change;
 * - except: a FAILED or TIMED_OUT outcome gives way to a terminal status of a later attempt (a
 *   higher retryAttempt or executionNumber), so a device that failed and then succeeded on the
 *   job's retry counts once, as succeeded.
 * SILENT is the controller's own verdict (the silence gate), never an execution status.
 */

/** Execution statuses of AWS IoT Jobs. */
export const EXECUTION_STATUSES = [
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'CANCELED',
  'REMOVED',
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** A device's outcome in the ledger: an execution status, or SILENT (the silence gate's verdict). */
export type DeviceOutcome = ExecutionStatus | 'SILENT';

/** Terminal execution statuses. */
export const TERMINAL_OUTCOMES: readonly DeviceOutcome[] = [
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'CANCELED',
  'REMOVED',
  'SILENT',
];

/** Outcomes that count as a failure in the gates. */
export const FAILURE_OUTCOMES: readonly DeviceOutcome[] = ['FAILED', 'REJECTED', 'TIMED_OUT', 'SILENT'];

/** One observed job execution (ListJobExecutionsForJob summary, or a job execution event). */
export interface ExecutionObservation {
  jobId: string;
  thing: string;
  status: ExecutionStatus;
  executionNumber: number;
  /** Retry attempt (0 for the first); absent means 0. */
  retryAttempt?: number;
  /** The execution's version number, when the source carries it (events do). */
  versionNumber?: number;
  /** Epoch ms. */
  startedAt?: number;
  /** Epoch ms of the status change. */
  lastUpdatedAt?: number;
}

/** The recorded outcome of one device in one job. */
export interface ExecutionRecord {
  outcome: DeviceOutcome;
  executionNumber: number;
  retryAttempt: number;
  /** Absent when no source carried one. */
  versionNumber?: number;
  /** Epoch ms the device started installing (first IN_PROGRESS seen). */
  startedAt?: number;
  /** Epoch ms the device reached its terminal outcome. */
  finishedAt?: number;
}

/** True for an outcome that no longer changes by itself. */
export function isTerminal(outcome: DeviceOutcome): boolean {
  return TERMINAL_OUTCOMES.includes(outcome);
}

const rank = (s: DeviceOutcome) => (s === 'QUEUED' ? 0 : s === 'IN_PROGRESS' ? 1 : 2);

/** Order of an observation against a record: attempt first, then version (when both carry one), then status. */
function compareOrder(obs: ExecutionObservation, prior: ExecutionRecord): number {
  if (obs.executionNumber !== prior.executionNumber) return obs.executionNumber - prior.executionNumber;
  const attempt = obs.retryAttempt ?? 0;
  if (attempt !== prior.retryAttempt) return attempt - prior.retryAttempt;
  if (
    obs.versionNumber !== undefined &&
    prior.versionNumber !== undefined &&
    obs.versionNumber !== prior.versionNumber
  )
    return obs.versionNumber - prior.versionNumber;
  return rank(obs.status) - rank(prior.outcome);
}

/**
 * Merge one observation into a device's record. Returns the new record, or the same object when
 * the observation changes nothing (so callers can tell a change by identity).
 */
export function mergeExecution(
  prior: ExecutionRecord | undefined,
  obs: ExecutionObservation,
  seenAt: number,
): ExecutionRecord {
  const attempt = obs.retryAttempt ?? 0;
  const version = obs.versionNumber ?? prior?.versionNumber;
  const next: ExecutionRecord = {
    outcome: obs.status,
    executionNumber: obs.executionNumber,
    retryAttempt: attempt,
    ...(version !== undefined ? { versionNumber: version } : {}),
    ...(obs.startedAt !== undefined || prior?.startedAt !== undefined
      ? { startedAt: prior?.startedAt ?? obs.startedAt }
      : {}),
  };
  if (obs.status === 'IN_PROGRESS' && next.startedAt === undefined)
    next.startedAt = obs.lastUpdatedAt ?? seenAt;
  if (isTerminal(obs.status)) next.finishedAt = obs.lastUpdatedAt ?? seenAt;
  if (!prior) return next;
  if (compareOrder(obs, prior) <= 0) return prior;
  if (!isTerminal(prior.outcome)) return next;
  const laterAttempt =
    obs.executionNumber > prior.executionNumber ||
    (obs.executionNumber === prior.executionNumber && attempt > prior.retryAttempt);
  const retryable = prior.outcome === 'FAILED' || prior.outcome === 'TIMED_OUT';
  if (retryable && laterAttempt && isTerminal(obs.status)) return next;
  return prior;
}

/** Counts of unique devices by outcome. */
export type OutcomeCounts = Record<DeviceOutcome, number>;

/** Count unique devices by outcome. */
export function countOutcomes(records: Iterable<{ outcome: DeviceOutcome }>): OutcomeCounts {
  const counts: OutcomeCounts = {
    QUEUED: 0,
    IN_PROGRESS: 0,
    SUCCEEDED: 0,
    FAILED: 0,
    REJECTED: 0,
    TIMED_OUT: 0,
    CANCELED: 0,
    REMOVED: 0,
    SILENT: 0,
  };
  for (const r of records) counts[r.outcome]++;
  return counts;
}
