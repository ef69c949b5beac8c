/**
 * Fleet self-health, pure: what one health report says about its device (a new boot, an
 * unexpected reboot, a crash, low heap, a weak link) given the device's previous report, and the
 * aggregation of reports into counters per firmware version × ring. The cohort key (`cohortKey`)
 * and the counting rule (`countFreshReport`: reports, active devices, reboots, crashes, low heap,
 * weak RSSI) are defined here once: `aggregateHealth` (the lab's report; the rollout health gates
 * to come) and the health consumer, which assesses each report once while it plans its registry
 * writes and then counts the committed ones into its metrics, both group and count with them. No
 * AWS SDK import, no I/O.
 *
 * A boot is new when its `bootId` differs from the previous report's, or when uptime went
 * backwards within the same boot id (a device that does not renew its boot id). A new boot is an
 * unexpected reboot unless its reset reason is expected (POWER_ON, REQUESTED), and it always is
 * when uptime went backwards without a new boot id. A report not newer than the previous one
 * (a duplicate, or out of order) is stale: counted as such, and it never moves the state back.
 */
import type { Ring } from './model';
import { CRASH_RESET_REASONS, EXPECTED_RESET_REASONS, type HealthReport } from './telemetry';

/** Thresholds of the per-report conditions. */
export interface HealthThresholds {
  /** Free heap below this many bytes is low. @default 16384 */
  lowHeapBytes: number;
  /** RSSI below this many dBm is weak. @default -85 */
  weakRssiDbm: number;
}

export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = { lowHeapBytes: 16_384, weakRssiDbm: -85 };

/** What the cloud keeps of a device's last health report. */
export interface DeviceHealthState {
  bootId: string;
  uptimeS: number;
  /** Report time (device clock), epoch ms. */
  ts: number;
  fw: string;
}

/** What one report says. */
export interface ReportAssessment {
  /** Not newer than the previous report: no other flag is set and the state stays. */
  stale: boolean;
  /** The first report of a boot the cloud has not seen before (false for a device's first report ever). */
  newBoot: boolean;
  unexpectedReboot: boolean;
  /** An unexpected reboot by WATCHDOG or PANIC. */
  crash: boolean;
  /** Uptime went backwards while the boot id stayed. */
  uptimeWentBackwards: boolean;
  lowHeap: boolean;
  weakRssi: boolean;
  /** The firmware differs from the previous report's (false for a device's first report ever). */
  firmwareChanged: boolean;
  /** The state to keep after this report. */
  next: DeviceHealthState;
}

/**
 * Assess `report` against the device's previous state. A device's first report ever (no
 * previous state) starts no new boot the cloud could judge: nothing is counted against it, and
 * its state becomes the baseline.
 */
export function assessReport(
  report: HealthReport,
  previous: DeviceHealthState | undefined,
  thresholds: HealthThresholds = DEFAULT_HEALTH_THRESHOLDS,
): ReportAssessment {
  const next: DeviceHealthState = {
    bootId: report.bootId,
    uptimeS: report.uptimeS,
    ts: report.ts,
    fw: report.fw,
  };
  if (previous && report.ts <= previous.ts) {
    return {
      stale: true,
      newBoot: false,
      unexpectedReboot: false,
      crash: false,
      uptimeWentBackwards: false,
      lowHeap: false,
      weakRssi: false,
      firmwareChanged: false,
      next: previous,
    };
  }
  const sameBoot = previous !== undefined && previous.bootId === report.bootId;
  const uptimeWentBackwards = sameBoot && report.uptimeS < previous.uptimeS;
  const newBoot = previous !== undefined && (!sameBoot || uptimeWentBackwards);
  const unexpectedReboot =
    newBoot && (uptimeWentBackwards || !EXPECTED_RESET_REASONS.includes(report.resetReason));
  return {
    stale: false,
    newBoot,
    unexpectedReboot,
    crash: unexpectedReboot && CRASH_RESET_REASONS.includes(report.resetReason),
    uptimeWentBackwards,
    lowHeap: report.heapFreeB < thresholds.lowHeapBytes,
    weakRssi: report.rssiDbm < thresholds.weakRssiDbm,
    firmwareChanged: previous !== undefined && previous.fw !== report.fw,
    next,
  };
}

/** A cohort: one firmware version in one ring. */
export interface CohortKey {
  firmware: string;
  ring: Ring | 'unknown';
}

/**
 * The key of a cohort in a map: one string per firmware version × ring. The one cohort key of the
 * fleet: `aggregateHealth`, `mergeCohorts` and the health consumer all group by it.
 */
export function cohortKey(firmware: string, ring: Ring | 'unknown'): string {
  return `${firmware}\u0000${ring}`;
}

/** Counters of one cohort over a set of reports. */
export interface CohortHealth extends CohortKey {
  /** Reports that were not stale. */
  reports: number;
  /** Distinct devices with a report that was not stale. */
  activeDevices: number;
  unexpectedReboots: number;
  /** Unexpected reboots by WATCHDOG or PANIC. */
  crashResets: number;
  lowHeapReports: number;
  weakRssiReports: number;
  staleReports: number;
  /** Devices whose firmware changed to this cohort's firmware. */
  firmwareChanges: number;
}

/** One report to aggregate: the device, its ring (from the registry) and the report. */
export interface HealthInput {
  thing: string;
  ring?: Ring;
  report: HealthReport;
}

export interface HealthAggregation {
  cohorts: CohortHealth[];
  /** Per input, in input order. */
  assessments: ReportAssessment[];
  /** The state of every device seen, after the reports. */
  states: Map<string, DeviceHealthState>;
}

/** The counters of a cohort that a report that is not stale moves. */
export type ReportCounters = Pick<
  CohortHealth,
  'reports' | 'activeDevices' | 'unexpectedReboots' | 'crashResets' | 'lowHeapReports' | 'weakRssiReports'
>;

/** A cohort's counters while reports are counted into it: `activeDevices` is the size of `devices`. */
export interface CohortTally extends ReportCounters {
  /** The devices (any one identifier per device: thing name or serial) counted so far. */
  readonly devices: Set<string>;
}

/** An empty tally. */
export function newTally(): CohortTally {
  const { staleReports: _stale, firmwareChanges: _changes, ...counters } = emptyCounters();
  return { ...counters, devices: new Set() };
}

/**
 * The counting rule, the one `aggregateHealth` and the health consumer share: a report that is
 * not stale counts once in its cohort (and its flags with it), and its device once per cohort.
 * A stale report counts nowhere here (`aggregateHealth` keeps it apart, as `staleReports`).
 */
export function countFreshReport(c: CohortTally, device: string, a: ReportAssessment): void {
  c.reports++;
  if (!c.devices.has(device)) {
    c.devices.add(device);
    c.activeDevices++;
  }
  if (a.unexpectedReboot) c.unexpectedReboots++;
  if (a.crash) c.crashResets++;
  if (a.lowHeap) c.lowHeapReports++;
  if (a.weakRssi) c.weakRssiReports++;
}

/**
 * Aggregate reports (in arrival order; a device's reports must be in its arrival order) per
 * firmware × ring, starting from each device's previous state. `previous` is not modified.
 */
export function aggregateHealth(
  inputs: readonly HealthInput[],
  previous: ReadonlyMap<string, DeviceHealthState> | ((thing: string) => DeviceHealthState | undefined),
  thresholds: HealthThresholds = DEFAULT_HEALTH_THRESHOLDS,
): HealthAggregation {
  const lookup = typeof previous === 'function' ? previous : (t: string) => previous.get(t);
  const states = new Map<string, DeviceHealthState>();
  const cohorts = new Map<string, CohortHealth & CohortTally>();
  const assessments: ReportAssessment[] = [];
  for (const input of inputs) {
    const prior = states.has(input.thing) ? states.get(input.thing) : lookup(input.thing);
    const a = assessReport(input.report, prior, thresholds);
    assessments.push(a);
    states.set(input.thing, a.next);
    const firmware = input.report.fw;
    const ring = input.ring ?? 'unknown';
    const key = cohortKey(firmware, ring);
    let c = cohorts.get(key);
    if (!c) {
      c = { firmware, ring, ...newTally(), staleReports: 0, firmwareChanges: 0 };
      cohorts.set(key, c);
    }
    if (a.stale) {
      c.staleReports++;
      continue;
    }
    countFreshReport(c, input.thing, a);
    if (a.firmwareChanged) c.firmwareChanges++;
  }
  return {
    cohorts: [...cohorts.values()].map(({ devices: _devices, ...c }) => c),
    assessments,
    states,
  };
}

function emptyCounters(): Omit<CohortHealth, keyof CohortKey> {
  return {
    reports: 0,
    activeDevices: 0,
    unexpectedReboots: 0,
    crashResets: 0,
    lowHeapReports: 0,
    weakRssiReports: 0,
    staleReports: 0,
    firmwareChanges: 0,
  };
}

/** Sum cohorts that share a key (e.g. the counters of several batches). Active devices add up, so merge only disjoint device sets. */
export function mergeCohorts(...sets: readonly (readonly CohortHealth[])[]): CohortHealth[] {
  const out = new Map<string, CohortHealth>();
  for (const c of sets.flat()) {
    const key = cohortKey(c.firmware, c.ring);
    const acc = out.get(key) ?? { firmware: c.firmware, ring: c.ring, ...emptyCounters() };
    for (const k of Object.keys(emptyCounters()) as (keyof ReturnType<typeof emptyCounters>)[])
      acc[k] += c[k];
    out.set(key, acc);
  }
  return [...out.values()];
}

/**
 * Unexpected reboots per device-hour of a cohort that reports every `healthIntervalS` seconds:
 * reports × interval is the device time the reports cover. Undefined without reports.
 */
export function rebootsPerDeviceHour(
  c: Pick<CohortHealth, 'reports' | 'unexpectedReboots'>,
  healthIntervalS: number,
): number | undefined {
  if (c.reports === 0) return undefined;
  return c.unexpectedReboots / ((c.reports * healthIntervalS) / 3600);
}

/** Share (0..1) of a cohort's reports that started an unexpected reboot. Undefined without reports. */
export function unexpectedRebootRate(
  c: Pick<CohortHealth, 'reports' | 'unexpectedReboots'>,
): number | undefined {
  return c.reports === 0 ? undefined : c.unexpectedReboots / c.reports;
}

/** The firmware dimension value used for versions past the cap. */
export const OTHER_FIRMWARE_DIMENSION = 'other';

/**
 * Keeps the firmware dimension bounded: the first `max` versions seen get their own value, later
 * ones collapse to {@link OTHER_FIRMWARE_DIMENSION}, so a device reporting made-up versions
 * cannot multiply the metrics.
 */
export class FirmwareDimensions {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  of(fw: string): string {
    if (this.seen.has(fw)) return fw;
    if (this.seen.size >= this.max) return OTHER_FIRMWARE_DIMENSION;
    this.seen.add(fw);
    return fw;
  }
}
