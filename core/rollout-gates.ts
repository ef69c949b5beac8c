/**
 * The gates of a rollout stage, pure: abort checks (install failures against the abort criteria,
 * the failure budget, the silence gate, the health gate, alarms) and promotion checks (success
 * percentage, soak time and device-hours, health reports, silence, alarms). All counts are of the
 * ledger's unique devices, never of executions.
 */
import { unexpectedRebootRate, type CohortHealth } from './health';
import { FAILURE_OUTCOMES, type DeviceOutcome, type ExecutionRecord } from './rollout-ledger';
import type { Stage } from './rollout-plan';

/** CloudWatch alarm states. */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/** Why the controller waits, pauses or aborts: a code an operator can act on, and the detail. */
export interface Reason {
  code: ReasonCode;
  detail: string;
}

/** Reason codes of a step. */
export type ReasonCode =
  | 'INSTALL_FAILURES'
  | 'FAILURE_BUDGET'
  | 'SUCCESS_SHORTFALL'
  | 'SILENCE_GATE'
  | 'HEALTH_GATE'
  | 'ALARM'
  | 'JOB_CANCELED'
  | 'OPERATOR_ABORT'
  | 'OPERATOR_PAUSE'
  | 'INSTALLING'
  | 'RECONCILING'
  | 'SOAK_TIME'
  | 'SOAK_DEVICE_HOURS'
  | 'HEALTH_REPORTS_PENDING'
  | 'SILENCE_PENDING'
  | 'ALARM_NOT_OK'
  | 'APPROVAL_REQUIRED'
  | 'SCHEDULED_JOB_CANCELED'
  | 'STAGE_EMPTY'
  | 'NEED_CANDIDATES'
  | 'NEED_RELEASES'
  | 'ROLLBACK_PENDING'
  | 'ROLLBACK_FAILED'
  | 'ROLLBACK_UNAVAILABLE';

/** One device of the stage under evaluation. */
export interface GateDevice {
  thing: string;
  outcome: DeviceOutcome;
  exec?: ExecutionRecord;
}

/** Health aggregates of the updated cohort and of the fleet baseline (core/health.ts counters). */
export interface HealthObservation {
  updated: readonly Pick<CohortHealth, 'reports' | 'unexpectedReboots'>[];
  baseline: readonly Pick<CohortHealth, 'reports' | 'unexpectedReboots'>[];
}

/** What the gates read besides the devices. */
export interface GateInputs {
  now: number;
  /** Epoch ms the stage's installs all ended (soak starts), if they have. */
  installDoneAt?: number;
  /** The stage job reached a terminal job status (no retry will come). */
  jobTerminal: boolean;
  health?: HealthObservation;
  lastHealthReportAt?: Readonly<Record<string, number>>;
  alarms?: Readonly<Record<string, AlarmState>>;
}

const MINUTE = 60_000;
/** What the abort criteria count (as AWS does): install outcomes; silence is its own gate. */
const INSTALL_FAILURES: readonly DeviceOutcome[] = FAILURE_OUTCOMES.filter((o) => o !== 'SILENT');
const HOUR = 3_600_000;

const sum = (cs: HealthObservation['updated']) =>
  cs.reduce(
    (a, c) => ({
      reports: a.reports + c.reports,
      unexpectedReboots: a.unexpectedReboots + c.unexpectedReboots,
    }),
    {
      reports: 0,
      unexpectedReboots: 0,
    },
  );

/** Retries the stage's job gives an execution that ended `outcome`. */
export function retriesFor(stage: Stage, outcome: DeviceOutcome): number {
  if (outcome !== 'FAILED' && outcome !== 'TIMED_OUT') return 0;
  return Math.max(
    0,
    ...(stage.retries ?? [])
      .filter((r) => r.failureType === outcome || r.failureType === 'ALL')
      .map((r) => r.numberOfRetries),
  );
}

/** A failure no retry will turn around: REJECTED, SILENT, or FAILED/TIMED_OUT with retries used up. */
export function isFinalFailure(stage: Stage, d: GateDevice, jobTerminal: boolean): boolean {
  if (d.outcome === 'REJECTED' || d.outcome === 'SILENT') return true;
  if (d.outcome !== 'FAILED' && d.outcome !== 'TIMED_OUT') return false;
  return jobTerminal || (d.exec?.retryAttempt ?? 0) >= retriesFor(stage, d.outcome);
}

/**
 * The health gate's verdict: `undefined` while the updated cohort has fewer than `minReports`
 * reports, else whether it passes, with the rates.
 */
export function healthVerdict(
  stage: Stage,
  health: HealthObservation | undefined,
): { pass: boolean; detail: string } | undefined {
  const gate = stage.promotion.health;
  if (!gate || !health) return undefined;
  const updated = sum(health.updated);
  if (updated.reports < gate.minReports) return undefined;
  const rate = unexpectedRebootRate(updated) ?? 0;
  const baseline = unexpectedRebootRate(sum(health.baseline)) ?? 0;
  const overDelta = rate - baseline > gate.maxAbsoluteDelta;
  const overRatio = baseline === 0 || rate / baseline > gate.maxRatio;
  const detail = `unexpected reboot rate ${rate.toFixed(4)} of the updated cohort (${updated.reports} reports) against baseline ${baseline.toFixed(4)}; limits ×${gate.maxRatio} and +${gate.maxAbsoluteDelta}`;
  return { pass: !(overDelta && overRatio), detail };
}

/** The first abort reason of a stage, if any. */
export function abortReason(
  stage: Stage,
  devices: readonly GateDevice[],
  inputs: GateInputs,
): Reason | undefined {
  const executed = devices.filter((d) => !['QUEUED', 'CANCELED', 'REMOVED'].includes(d.outcome));
  for (const c of stage.abort) {
    const failed = executed.filter((d) =>
      c.failureType === 'ALL' ? INSTALL_FAILURES.includes(d.outcome) : d.outcome === c.failureType,
    ).length;
    if (
      failed > 0 &&
      executed.length >= c.minNumberOfExecutedThings &&
      failed * 100 >= c.thresholdPercentage * executed.length
    ) {
      return {
        code: 'INSTALL_FAILURES',
        detail: `${failed} of ${executed.length} executed devices ${c.failureType === 'ALL' ? 'failed' : `ended ${c.failureType}`} (threshold ${c.thresholdPercentage}% after ${c.minNumberOfExecutedThings})`,
      };
    }
  }
  const final = devices.filter((d) => isFinalFailure(stage, d, inputs.jobTerminal));
  if (final.length * 100 > stage.promotion.maxFailurePercent * devices.length) {
    const silent = final.filter((d) => d.outcome === 'SILENT');
    if (silent.length > 0) {
      return {
        code: 'SILENCE_GATE',
        detail: `${silent.length} device(s) sent no health report within ${stage.promotion.silenceMinutes} min of updating: ${silent
          .map((d) => d.thing)
          .slice(0, 10)
          .join(', ')}`,
      };
    }
    return {
      code: 'FAILURE_BUDGET',
      detail: `${final.length} of ${devices.length} devices failed for good (max ${stage.promotion.maxFailurePercent}%)`,
    };
  }
  const health = healthVerdict(stage, inputs.health);
  if (health && !health.pass) return { code: 'HEALTH_GATE', detail: health.detail };
  const alarming = (stage.promotion.alarms ?? []).filter((a) => inputs.alarms?.[a] === 'ALARM');
  if (alarming.length > 0) return { code: 'ALARM', detail: `alarm(s) in ALARM: ${alarming.join(', ')}` };
  return undefined;
}

/**
 * Devices whose silence window ran out: they succeeded (or started installing) and sent no
 * health report since, for `silenceMinutes`. Empty when the gate is off or no report times
 * were observed.
 */
export function newlySilent(stage: Stage, devices: readonly GateDevice[], inputs: GateInputs): string[] {
  const minutes = stage.promotion.silenceMinutes;
  if (minutes === undefined || !inputs.lastHealthReportAt) return [];
  return devices
    .filter((d) => {
      const since = silenceSince(d);
      if (since === undefined) return false;
      const last = inputs.lastHealthReportAt?.[d.thing];
      return (last === undefined || last < since) && inputs.now - since >= minutes * MINUTE;
    })
    .map((d) => d.thing);
}

function silenceSince(d: GateDevice): number | undefined {
  if (d.outcome === 'SUCCEEDED') return d.exec?.finishedAt;
  if (d.outcome === 'IN_PROGRESS') return d.exec?.startedAt;
  return undefined;
}

/** Device-hours the stage's devices have spent on the new version. */
export function deviceHours(devices: readonly GateDevice[], now: number): number {
  return devices
    .filter((d) => d.outcome === 'SUCCEEDED' && d.exec?.finishedAt !== undefined)
    .reduce((h, d) => h + Math.max(0, now - (d.exec?.finishedAt ?? now)) / HOUR, 0);
}

/**
 * What still holds promotion back once the installs are done (approval aside); empty when the
 * stage may promote. A success shortfall is an abort, returned as such by `abortOnDone`.
 */
export function promotionBlockers(
  stage: Stage,
  devices: readonly GateDevice[],
  inputs: GateInputs,
): Reason[] {
  const out: Reason[] = [];
  const soakMs = inputs.now - (inputs.installDoneAt ?? inputs.now);
  if (soakMs < stage.soak.minMinutes * MINUTE) {
    out.push({
      code: 'SOAK_TIME',
      detail: `soaked ${Math.floor(soakMs / MINUTE)} of ${stage.soak.minMinutes} min`,
    });
  }
  const hours = deviceHours(devices, inputs.now);
  if (hours < stage.soak.minDeviceHours) {
    out.push({
      code: 'SOAK_DEVICE_HOURS',
      detail: `${hours.toFixed(1)} of ${stage.soak.minDeviceHours} device-hours on the new version`,
    });
  }
  if (stage.promotion.health && !healthVerdict(stage, inputs.health)) {
    const reports = inputs.health ? sum(inputs.health.updated).reports : 0;
    out.push({
      code: 'HEALTH_REPORTS_PENDING',
      detail: `${reports} of ${stage.promotion.health.minReports} health reports from the updated cohort`,
    });
  }
  if (stage.promotion.silenceMinutes !== undefined) {
    const pending = devices.filter(
      (d) =>
        d.outcome === 'SUCCEEDED' &&
        !((inputs.lastHealthReportAt?.[d.thing] ?? -Infinity) >= (d.exec?.finishedAt ?? Infinity)),
    );
    if (pending.length > 0) {
      out.push({
        code: 'SILENCE_PENDING',
        detail: `${pending.length} updated device(s) have not reported health since updating`,
      });
    }
  }
  const notOk = (stage.promotion.alarms ?? []).filter((a) => inputs.alarms?.[a] !== 'OK');
  if (notOk.length > 0) out.push({ code: 'ALARM_NOT_OK', detail: `alarm(s) not OK: ${notOk.join(', ')}` });
  return out;
}

/** The abort once installs are done and too few devices succeeded, if so. */
export function abortOnDone(stage: Stage, devices: readonly GateDevice[]): Reason | undefined {
  const ok = devices.filter((d) => d.outcome === 'SUCCEEDED').length;
  if (ok * 100 >= stage.promotion.minSuccessPercent * devices.length) return undefined;
  return {
    code: 'SUCCESS_SHORTFALL',
    detail: `${ok} of ${devices.length} devices succeeded (min ${stage.promotion.minSuccessPercent}%)`,
  };
}
