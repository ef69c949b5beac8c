/**
 * The health consumer's decisions, pure (no SDK, no I/O): what a batch's stream records are
 * (a report, a Last Will, or a rejection for the dead-letter queue), which registry write each
 * device needs, and the metric counters of the devices whose work committed. The rules are
 * core/health.ts's (`assessReport`; the cohort key `cohortKey` and the counting rule
 * `countFreshReport`, shared with `aggregateHealth`); this module only applies them to a batch.
 *
 * Registry writes, at most one per device per batch:
 * - a new boot, a firmware change or a device's first report: the health state write (boot id,
 *   uptime, report time, firmware, lastSeen), plus a FIRMWARE_CHANGED trail entry when the
 *   firmware changed;
 * - otherwise lastSeen with the latest uptime and report time, only when the stored lastSeen is
 *   at least the lastSeen interval old. Cost: one DynamoDB write per health message (at one a
 *   minute, about $0.027 per device-month) costs more than the whole AWS IoT bill of a device on
 *   Basic Ingest (about $0.016 per device-month); at most one per interval per device keeps the
 *   registry's share bounded (every 15 min: about $0.002). See the research notes, section 5.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import {
  type CohortKey,
  cohortKey,
  type CohortTally,
  countFreshReport,
  type DeviceHealthState,
  type FirmwareDimensions,
  newTally,
  type ReportAssessment,
} from '../../core/health';
import { type Ring, serialFromThingName } from '../../core/model';
import { type HealthReport, parseHealthRecord } from '../../core/telemetry';
import type { DeviceHealthView, FirmwareChangeMark } from '../shared/registry';

/** Why a record went to the dead-letter queue (the `Reason` dimension of RejectedHealthRecords). */
export type RejectReason = 'MALFORMED' | 'UNKNOWN_DEVICE';

/** What one stream record is, before the registry is asked. */
export type DecodedRecord =
  | { kind: 'report'; serial: string; thing: string; receivedAt: number; report: HealthReport }
  | { kind: 'lastWill'; serial: string; thing: string; receivedAt: number }
  | { kind: 'reject'; reason: RejectReason; problem: string; thing?: string };

/** Decode one Kinesis record (base64 JSON written by the health rule). */
export function decodeRecord(record: KinesisStreamRecord, thingNamePrefix: string): DecodedRecord {
  const parsed = parseHealthRecord(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
  if (parsed.kind === 'malformed') {
    return { kind: 'reject', reason: 'MALFORMED', problem: parsed.problem, thing: parsed.thing };
  }
  const serial = serialFromThingName(thingNamePrefix, parsed.thing);
  if (serial === undefined) {
    return {
      kind: 'reject',
      reason: 'UNKNOWN_DEVICE',
      problem: `thing ${parsed.thing} does not carry the thing name prefix ${thingNamePrefix}-`,
      thing: parsed.thing,
    };
  }
  // The parse result, with the serial, is the decoded record (one object less per record).
  const decoded = parsed as typeof parsed & { serial: string };
  decoded.serial = serial;
  return decoded;
}

/**
 * What the consumer knows of a registered device: the registry's view, with the health state and
 * lastSeen this container last saw (they may be ahead of the registry's, which is written at most
 * once per interval).
 */
export interface KnownDevice {
  serial: string;
  lot: string;
  ring?: Ring;
  currentFirmware: string;
  state?: DeviceHealthState;
  /** The stored lastSeen, epoch ms. */
  lastSeenMs?: number;
  lastFirmwareChange?: FirmwareChangeMark;
  /** This container appended the trail entry of `lastFirmwareChange`. */
  firmwareChangeLogged?: boolean;
}

export function knownDeviceOf(v: DeviceHealthView): KnownDevice {
  const state =
    v.healthBootId !== undefined && v.healthUptimeS !== undefined && v.healthTs !== undefined
      ? { bootId: v.healthBootId, uptimeS: v.healthUptimeS, ts: v.healthTs, fw: v.currentFirmware }
      : undefined;
  const lastSeenMs = v.lastSeen === undefined ? undefined : Date.parse(v.lastSeen);
  return {
    serial: v.serial,
    lot: v.lot,
    ring: v.ring,
    currentFirmware: v.currentFirmware,
    state,
    lastSeenMs: Number.isNaN(lastSeenMs) ? undefined : lastSeenMs,
    lastFirmwareChange: v.lastFirmwareChange,
  };
}

/** One report of a device with what core/health.ts made of it. */
export interface AssessedReport {
  report: HealthReport;
  receivedAt: number;
  assessment: ReportAssessment;
}

export type DeviceWrite =
  | { kind: 'none' }
  | { kind: 'state'; state: DeviceHealthState; seenAt: string; firmwareChange?: FirmwareChangeMark }
  | {
      kind: 'lastSeen';
      state: DeviceHealthState;
      seenAt: string;
      /** The stored lastSeen must be no later than this. */
      dueBefore: string;
    };

export interface DevicePlan {
  write: DeviceWrite;
  /**
   * A firmware change recorded on the item whose trail entry may be missing: the batch holds the
   * report it was made for, so this is a retry of a batch whose append failed after the write.
   * The entry is appended again (appendEventOnce: a no-op when it is there).
   */
  completeFirmwareChange?: FirmwareChangeMark;
}

const iso = (ms: number): string => new Date(ms).toISOString();

const NO_WRITE: DeviceWrite = { kind: 'none' };
const NOTHING: DevicePlan = { write: NO_WRITE };
const noWrite = (completeFirmwareChange?: FirmwareChangeMark): DevicePlan =>
  completeFirmwareChange ? { write: NO_WRITE, completeFirmwareChange } : NOTHING;

/**
 * The registry write of one device for its reports of a batch (in arrival order), given the
 * lastSeen interval. See the module comment for the rules.
 */
export function planDeviceWrite(
  device: KnownDevice,
  reports: readonly AssessedReport[],
  lastSeenIntervalMs: number,
): DevicePlan {
  const mark = device.firmwareChangeLogged ? undefined : device.lastFirmwareChange;
  let completeFirmwareChange: FirmwareChangeMark | undefined;
  /** The last report that is not stale, the latest receive time and whether a boot is new. */
  let latest: AssessedReport | undefined;
  let seenMs = -Infinity;
  let newBoot = false;
  for (const r of reports) {
    if (r.assessment.stale) {
      if (mark && !completeFirmwareChange && r.report.fw === mark.to && iso(r.report.ts) === mark.at)
        completeFirmwareChange = mark;
      continue;
    }
    latest = r;
    if (r.receivedAt > seenMs) seenMs = r.receivedAt;
    if (r.assessment.newBoot) newBoot = true;
  }
  if (!latest) return noWrite(completeFirmwareChange);
  const state = latest.assessment.next;
  const fw = latest.report.fw;
  let firmwareChange: FirmwareChangeMark | undefined;
  if (fw !== device.currentFirmware) {
    // The first report of the run that ends the batch on the new version.
    let at = latest.report.ts;
    for (let i = reports.length - 1; i >= 0; i--) {
      const r = reports[i];
      if (r.assessment.stale) continue;
      if (r.report.fw !== fw) break;
      at = r.report.ts;
    }
    firmwareChange = { from: device.currentFirmware, to: fw, at: iso(at) };
  }
  if (device.state === undefined || firmwareChange || newBoot) {
    return { write: { kind: 'state', state, seenAt: iso(seenMs), firmwareChange }, completeFirmwareChange };
  }
  if (device.lastSeenMs === undefined || seenMs - device.lastSeenMs >= lastSeenIntervalMs) {
    return {
      write: { kind: 'lastSeen', state, seenAt: iso(seenMs), dueBefore: iso(seenMs - lastSeenIntervalMs) },
      completeFirmwareChange,
    };
  }
  return noWrite(completeFirmwareChange);
}

/** The trail entry sort-key suffix of a firmware change: one entry per (time, version). */
export function firmwareChangeSkSuffix(mark: FirmwareChangeMark): string {
  return `FIRMWARE_CHANGED#${mark.to}`;
}

/** The published counters of one cohort (its firmware already the bounded dimension value). */
export interface CohortCounters extends CohortKey, CohortTally {
  /** Devices whose firmware change to this version the registry recorded. */
  firmwareChanges: number;
}

/** Counters of one cohort as published. */
export interface CohortMetrics {
  cohort: CohortCounters;
  /** One UnexpectedRebootRate sample per report: 100 if it started an unexpected reboot, else 0. */
  rebootRateSamples: number[];
}

/** One assessed report of a device whose work committed, for the cohort metrics. */
export interface CountedReport {
  /** The device's serial (what ActiveDevices counts). */
  serial: string;
  ring?: Ring;
  report: HealthReport;
  assessment: ReportAssessment;
}

/**
 * Per-cohort counters of the reports of committed devices (in batch order), grouped by
 * core/health.ts's cohort key and counted by its rule (`cohortKey`, `countFreshReport`: reports,
 * active devices, reboots, crashes, low heap, weak RSSI), with firmware versions past the cap
 * collapsed by `firmwareDimensions` and cohorts that then share a dimension set merged. Stale
 * reports count nowhere; a version gets its dimension value at its first report that is not stale
 * (so a retried batch of stale reports takes no place under the cap), and the cohorts come out in
 * that order. `firmwareChanges` counts the devices whose firmware change the registry recorded
 * (the metric's contract: the registry held another version), by new version.
 */
export function cohortMetrics(
  reports: readonly CountedReport[],
  recordedChanges: readonly { firmware: string; ring?: Ring }[],
  firmwareDimensions: FirmwareDimensions,
): CohortMetrics[] {
  /** By the cohort key of the reported version, and by that of its dimension value. */
  const byVersion = new Map<string, CohortMetrics>();
  const byDimension = new Map<string, CohortMetrics>();
  const cohortOf = (fw: string, ring: Ring | 'unknown'): CohortMetrics => {
    const firmware = firmwareDimensions.of(fw);
    const key = cohortKey(firmware, ring);
    let m = byDimension.get(key);
    if (!m) {
      m = { cohort: { firmware, ring, ...newTally(), firmwareChanges: 0 }, rebootRateSamples: [] };
      byDimension.set(key, m);
    }
    return m;
  };
  for (const r of reports) {
    const a = r.assessment;
    if (a.stale) continue;
    const ring = r.ring ?? 'unknown';
    const key = cohortKey(r.report.fw, ring);
    let m = byVersion.get(key);
    if (!m) byVersion.set(key, (m = cohortOf(r.report.fw, ring)));
    countFreshReport(m.cohort, r.serial, a);
    m.rebootRateSamples.push(a.unexpectedReboot ? 100 : 0);
  }
  for (const change of recordedChanges) {
    const m = byVersion.get(cohortKey(change.firmware, change.ring ?? 'unknown'));
    if (m) m.cohort.firmwareChanges++;
  }
  return [...byDimension.values()];
}

/** Where a rejected record came from, for its dead-letter message. */
export interface RecordOrigin {
  sequenceNumber: string;
  partitionKey: string;
  /** ISO approximate arrival time on the stream. */
  arrivedAt: string;
  eventSourceARN?: string;
  /** The record's bytes, decoded (UTF-8). */
  data: string;
}

/**
 * The dead-letter message of a rejected record: reason, problem, where it came from and its data
 * (the JSON document when it is one, else the text). When the message would exceed `maxBytes`
 * the data is cut (`dataTruncated`, `dataBytes`); the sequence number still finds the record on
 * the stream while the stream keeps it.
 */
export function deadLetterBody(
  rejection: { reason: RejectReason; problem: string; thing?: string },
  origin: RecordOrigin,
  maxBytes: number,
): string {
  let data: unknown = origin.data;
  try {
    data = JSON.parse(origin.data);
  } catch {
    // not JSON: the text itself
  }
  const { data: _text, ...where } = origin;
  const doc = { reason: rejection.reason, problem: rejection.problem, thing: rejection.thing, ...where };
  const body = JSON.stringify({ ...doc, data });
  if (Buffer.byteLength(body, 'utf8') <= maxBytes) return body;
  const dataBytes = Buffer.byteLength(origin.data, 'utf8');
  const room = Math.max(0, maxBytes - Buffer.byteLength(JSON.stringify(doc), 'utf8') - 256);
  // Characters of up to 4 bytes, each escaped to at most 6: room / 6 characters always fit.
  const cut = origin.data.slice(0, Math.floor(room / 6));
  return JSON.stringify({ ...doc, data: cut, dataTruncated: true, dataBytes });
}
