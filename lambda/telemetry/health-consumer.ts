/**
 * The health consumer with injected dependencies: Kinesis batches of health records (the health
 * rule's output, `type = health`) -> registry health state, the FIRMWARE_CHANGED trail, fleet
 * health metrics and a dead-letter queue. `health-consumer.handler.ts` wires it to module-scope
 * clients and the environment; the decisions are in health-plan.ts and core/health.ts.
 *
 * One batch:
 * 1. decode every record; a malformed one, or one of a thing the registry does not hold, goes to
 *    the dead-letter queue and does not fail the batch (unless the queue refuses it: then it is a
 *    batch item failure, so it is not lost);
 * 2. look the devices up in the per-container cache, reading the misses from the registry;
 * 3. assess each device's reports in arrival order with core/health.ts's `assessReport`, and
 *    write each device at most once: a device with nothing to write is done at once, the writes
 *    go out together, at most `writeConcurrency` at a time;
 * 4. publish metrics for the devices whose work committed (per cohort, with core/health.ts's
 *    cohort key and counting rule), and log one summary;
 * 5. answer with Powertools' batch processing: `processPartialResponse` with a `BatchProcessor`
 *    for Kinesis runs a record handler that throws, with the reason, for each record the steps
 *    above failed, so the partial batch response, and the error thrown when every record failed,
 *    are Powertools' own. The work itself is done per batch, not per record (reads and writes per
 *    device), which is why the handler only reports the outcome.
 * Records of a device whose registry read or write failed are batch item failures, and the device
 * leaves the cache, so the retry reads the registry again. A report already applied (a retry, a
 * duplicate, an older report arriving after a newer one) is stale: it moves nothing back and is
 * not counted again by the container that applied it.
 *
 * What is exactly once and what is at least once: the registry state of a device (boot, firmware,
 * lastSeen) is written with conditions that refuse an older report, and a FIRMWARE_CHANGED entry
 * under a key the change determines, so a redelivered report never applies twice. The metrics are
 * at least once across containers: after a partial batch failure Lambda redelivers the records
 * from the lowest failed one, the committed ones after it included, and a container that did not
 * process them (a new one, or one whose cache entry expired) judges them against the registry,
 * whose report time moves only with the state writes and the throttled lastSeen writes; those
 * reports count again (HealthReports, ActiveDevices, the rate samples, low heap, weak RSSI). A new
 * boot is written at once, so its report is usually stale on redelivery; a container whose cached
 * state is older than the registry's still counts it before its conditional write is refused.
 * Exact counts would take a write per report (or per batch and shard), which is what the lastSeen
 * throttle exists to avoid (docs/decisions.md, D18 and D21).
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import type {
  Context,
  KinesisStreamBatchResponse,
  KinesisStreamEvent,
  KinesisStreamRecord,
} from 'aws-lambda';
import {
  assessReport,
  type DeviceHealthState,
  type FirmwareDimensions,
  type HealthThresholds,
} from '../../core/health';
import { ENV, EnvError } from '../../core/env';
import type { Ring } from '../../core/model';
import type { FirmwareChangeMark, HealthRegistry } from '../shared/registry';
import { SQS_BATCH_LIMITS, type SqsBatchSender } from '../shared/sqs';
import type { DeviceCache } from './device-cache';
import { type EmfWriter, publishHealthMetrics } from './health-metrics';
import {
  type AssessedReport,
  cohortMetrics,
  type CountedReport,
  deadLetterBody,
  type DecodedRecord,
  decodeRecord,
  type DevicePlan,
  firmwareChangeSkSuffix,
  type KnownDevice,
  knownDeviceOf,
  planDeviceWrite,
  type RejectReason,
} from './health-plan';

export interface HealthConsumerDeps {
  registry: Pick<
    HealthRegistry,
    'getHealthViews' | 'recordHealthState' | 'recordLastSeen' | 'appendEventOnce'
  >;
  sendDeadLetters: SqsBatchSender;
  deadLetterQueueUrl: string;
  cache: DeviceCache<KnownDevice>;
  thingNamePrefix: string;
  thresholds: HealthThresholds;
  lastSeenIntervalMs: number;
  /** Per container: keeps the FirmwareVersion dimension bounded. */
  firmwareDimensions: FirmwareDimensions;
  logger: Logger;
  metrics: EmfWriter;
  /** Devices written at the same time. @default 16 */
  writeConcurrency?: number;
}

/** One report of a registered device, in batch order, with what core/health.ts made of it. */
interface BatchReport extends AssessedReport, CountedReport {
  record: KinesisStreamRecord;
  group: DeviceGroup;
}

/** The reports of one registered device in a batch, and what the batch did for it. */
interface DeviceGroup {
  device: KnownDevice;
  reports: BatchReport[];
  /** The device's health state after the batch's reports. */
  state: DeviceHealthState | undefined;
  /** The device's registry work committed (or it needed none): its reports count. */
  committed: boolean;
  /** Why its records are batch item failures. */
  failed?: string;
  write: 'none' | 'state' | 'lastSeen' | 'lost';
  lastSeenWritten: boolean;
  recordedChange?: FirmwareChangeMark;
}

interface Rejection {
  record: KinesisStreamRecord;
  reason: RejectReason;
  problem: string;
  thing?: string;
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const newGroup = (device: KnownDevice): DeviceGroup => ({
  device,
  reports: [],
  state: device.state,
  committed: false,
  write: 'none',
  lastSeenWritten: false,
});

const errorText = (err: unknown): string =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

export function createHealthConsumer(
  deps: HealthConsumerDeps,
): (event: KinesisStreamEvent, context?: Context) => Promise<KinesisStreamBatchResponse> {
  const { registry, cache, logger } = deps;
  const processor = new BatchProcessor(EventType.KinesisDataStreams, { logger });

  /**
   * The batch's devices by serial: a group for each registered device, null for a serial the
   * registry does not hold; a serial that could not be read is left out. Also how many serials
   * there were and how many the cache did not have.
   */
  async function lookUp(
    decoded: readonly DecodedRecord[],
  ): Promise<{ groups: Map<string, DeviceGroup | null>; serials: number; misses: number }> {
    const groups = new Map<string, DeviceGroup | null>();
    const misses: string[] = [];
    const now = cache.now();
    for (const d of decoded) {
      if (d.kind === 'reject' || groups.has(d.serial)) continue;
      const cached = cache.get(d.serial, now);
      if (cached === undefined) misses.push(d.serial);
      groups.set(d.serial, cached ? newGroup(cached) : null);
    }
    const serials = groups.size;
    if (misses.length === 0) return { groups, serials, misses: 0 };
    const views = await registry.getHealthViews(misses);
    if (views.error !== undefined || views.unresolved.size > 0) {
      logger.error('registry read failed; the records of these devices are retried', {
        devices: views.unresolved.size,
        error: errorText(views.error),
      });
    }
    for (const serial of misses) {
      if (views.unresolved.has(serial)) {
        groups.delete(serial);
        continue;
      }
      const view = views.found.get(serial);
      const known = view ? knownDeviceOf(view) : null;
      cache.set(serial, known);
      groups.set(serial, known && newGroup(known));
    }
    return { groups, serials, misses: misses.length };
  }

  /** What the device knows after the batch, when its registry work committed as `g` says. */
  const nextDevice = (g: DeviceGroup): KnownDevice => ({ ...g.device, state: g.state });

  /** The device's write (at most one), its trail entry, and the cache update. */
  async function applyDevice(g: DeviceGroup, plan: DevicePlan): Promise<void> {
    const { device } = g;
    const w = plan.write;
    const next = nextDevice(g);
    g.write = w.kind;
    try {
      if (w.kind === 'state') {
        const r = await registry.recordHealthState(device.serial, w);
        if (!r.applied) g.write = 'lost';
        else {
          next.currentFirmware = w.state.fw;
          const seenMs = Date.parse(w.seenAt);
          // Not written: a later lastSeen is stored (lastSeen only moves forward), so this one is
          // a lower bound of it, and no lastSeen write is due before the interval after it.
          next.lastSeenMs = r.lastSeen ? seenMs : Math.max(next.lastSeenMs ?? seenMs, seenMs);
          g.lastSeenWritten = r.lastSeen;
          if (w.firmwareChange) {
            next.lastFirmwareChange = w.firmwareChange;
            next.firmwareChangeLogged = false;
            g.recordedChange = w.firmwareChange;
          }
        }
      } else if (w.kind === 'lastSeen') {
        const { seenAt, dueBefore, state } = w;
        if (
          await registry.recordLastSeen(device.serial, {
            seenAt,
            dueBefore,
            uptimeS: state.uptimeS,
            ts: state.ts,
          })
        ) {
          next.lastSeenMs = Date.parse(w.seenAt);
          g.lastSeenWritten = true;
        } else g.write = 'lost';
      }
      g.committed = true;
      const marks = [plan.completeFirmwareChange, g.recordedChange].filter(
        (m): m is FirmwareChangeMark => m !== undefined,
      );
      for (const mark of marks) {
        await registry.appendEventOnce({
          serial: device.serial,
          type: 'FIRMWARE_CHANGED',
          at: mark.at,
          lot: device.lot,
          detail: { from: mark.from, to: mark.to },
          skSuffix: firmwareChangeSkSuffix(mark),
        });
      }
      if (marks.length > 0) next.firmwareChangeLogged = true;
      // A lost condition: another writer was first (a newer report, a recent lastSeen); read again.
      if (g.write === 'lost') cache.delete(device.serial);
      else cache.update(device.serial, next);
    } catch (err) {
      cache.delete(device.serial);
      g.failed = `registry write for ${device.serial} failed: ${errorText(err)}`;
    }
  }

  /** Send the rejections to the dead-letter queue; returns those the queue took. */
  async function deadLetter(
    rejections: readonly Rejection[],
    failures: Map<KinesisStreamRecord, string>,
  ): Promise<Rejection[]> {
    if (rejections.length === 0) return [];
    const messages = rejections.map((r, i) => ({
      id: String(i),
      body: deadLetterBody(
        r,
        {
          sequenceNumber: r.record.kinesis.sequenceNumber,
          partitionKey: r.record.kinesis.partitionKey,
          arrivedAt: new Date(r.record.kinesis.approximateArrivalTimestamp * 1000).toISOString(),
          eventSourceARN: r.record.eventSourceARN,
          data: Buffer.from(r.record.kinesis.data, 'base64').toString('utf8'),
        },
        SQS_BATCH_LIMITS.bytes,
      ),
    }));
    const { failed: notSent, digestMismatches } = await deps.sendDeadLetters(
      deps.deadLetterQueueUrl,
      messages,
    );
    if (digestMismatches.length > 0) {
      // SQS took them: on the queue, so not sent again (a retry would only add duplicates).
      logger.warn('dead-letter queue answered an MD5 digest that does not match the message; taken as sent', {
        records: digestMismatches.length,
      });
    }
    for (const [id, why] of notSent)
      failures.set(rejections[Number(id)].record, `dead-letter queue refused the record: ${why}`);
    if (notSent.size > 0) {
      logger.error('dead-letter queue refused records; they are retried', {
        records: notSent.size,
        error: notSent.values().next().value,
      });
    }
    return rejections.filter((_, i) => !notSent.has(String(i)));
  }

  return async function consume(event, context) {
    const records = event.Records ?? [];
    const failures = new Map<KinesisStreamRecord, string>();
    const decoded = records.map((r) => decodeRecord(r, deps.thingNamePrefix));
    const { groups, serials, misses } = await lookUp(decoded);

    // Sort the records (rejections, Last Wills, the reports of each registered device) and assess
    // each device's reports in arrival order against the state known before this batch.
    const rejections: Rejection[] = [];
    /** The reports of registered devices, in batch order. */
    const reports: BatchReport[] = [];
    let lastWills = 0;
    let staleReports = 0;
    decoded.forEach((d, i) => {
      const record = records[i];
      if (d.kind === 'reject') {
        rejections.push({ record, ...d });
        return;
      }
      const group = groups.get(d.serial);
      if (group === undefined) {
        failures.set(record, `registry read for ${d.serial} failed`);
      } else if (group === null) {
        const problem = `serial ${d.serial} (thing ${d.thing}) is not in the registry`;
        rejections.push({ record, reason: 'UNKNOWN_DEVICE', problem, thing: d.thing });
      } else if (d.kind === 'lastWill') {
        lastWills++;
      } else {
        const assessment = assessReport(d.report, group.state, deps.thresholds);
        group.state = assessment.next;
        if (assessment.stale) staleReports++;
        const { device } = group;
        const r = {
          report: d.report,
          receivedAt: d.receivedAt,
          assessment,
          record,
          group,
          serial: device.serial,
          ring: device.ring,
        };
        // A one-element array: a push onto an empty one would reserve room for 17.
        if (group.reports.length === 0) group.reports = [r];
        else group.reports.push(r);
        reports.push(r);
      }
    });

    /** The devices with reports in this batch. */
    const active = [...groups.values()].filter((g): g is DeviceGroup => g !== null && g.reports.length > 0);

    // At most one write per device; the devices with none are done here, the others written
    // concurrently (bounded) while the rejections go to the dead-letter queue.
    const debug = ['TRACE', 'DEBUG'].includes(logger.getLevelName());
    const writes: [DeviceGroup, DevicePlan][] = [];
    for (const g of active) {
      const plan = planDeviceWrite(g.device, g.reports, deps.lastSeenIntervalMs);
      if (plan.write.kind !== 'none' || plan.completeFirmwareChange) writes.push([g, plan]);
      else {
        // Nothing to write: the cached device (this object, unless it left the cache) takes the
        // state in place.
        g.committed = true;
        g.device.state = g.state;
      }
    }
    const [, sent] = await Promise.all([
      mapLimit(writes, deps.writeConcurrency ?? 16, ([g, plan]) => applyDevice(g, plan)),
      deadLetter(rejections, failures),
    ]);

    const failedDevices: DeviceGroup[] = [];
    const recordedChanges: { firmware: string; ring?: Ring }[] = [];
    const written = { state: 0, lastSeen: 0, lost: 0 };
    let lastSeenWrites = 0;
    for (const g of active) {
      if (debug) {
        logger.debug('device health', {
          serial: g.device.serial,
          reports: g.reports.length,
          stale: g.reports.filter((r) => r.assessment.stale).length,
          write: g.write,
          lastSeenWritten: g.lastSeenWritten,
          firmwareChange: g.recordedChange,
          failed: g.failed,
        });
      }
      if (g.failed) {
        failedDevices.push(g);
        for (const r of g.reports) failures.set(r.record, g.failed);
      } else if (g.write !== 'none') written[g.write]++;
      if (g.lastSeenWritten) lastSeenWrites++;
      if (g.recordedChange) recordedChanges.push({ firmware: g.recordedChange.to, ring: g.device.ring });
    }
    if (failedDevices.length > 0) {
      logger.error('registry writes failed; the records of these devices are retried', {
        devices: failedDevices.slice(0, 20).map((g) => g.device.serial),
        count: failedDevices.length,
        error: failedDevices[0].failed,
      });
    }

    // Metrics of the committed work only.
    const cohorts = cohortMetrics(
      reports.filter((r) => r.group.committed),
      recordedChanges,
      deps.firmwareDimensions,
    );
    const rejected: Partial<Record<RejectReason, number>> = {};
    for (const r of sent) rejected[r.reason] = (rejected[r.reason] ?? 0) + 1;
    publishHealthMetrics(deps.metrics, { cohorts, connectionLost: lastWills, rejected, lastSeenWrites });

    logger.info('health batch', {
      records: records.length,
      reports: reports.length,
      staleReports,
      lastWills,
      rejected,
      devices: serials,
      cacheMisses: misses,
      writes: written,
      firmwareChanges: recordedChanges.length,
      failedRecords: failures.size,
    });
    const recordHandler = (record: KinesisStreamRecord): void => {
      const why = failures.get(record);
      if (why !== undefined) throw new Error(why);
    };
    return processPartialResponse(event, recordHandler, processor, { context });
  };
}

/** The consumer's settings from the environment, checked; a bad value names its variable. */
export interface HealthSettings {
  lastSeenIntervalMs: number;
  thresholds: HealthThresholds;
  maxFirmwareDimensions: number;
}

function integerIn(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new EnvError(
      `${name}=${JSON.stringify(value)} is not an integer from ${min} to ${max}; ` +
        'the stack constructs set it from the fleet config: redeploy, or export a valid value for a local run',
    );
  }
  return n;
}

export function parseHealthSettings(
  env: Record<'lastSeenIntervalSeconds' | 'lowHeapBytes' | 'weakRssiDbm' | 'maxFirmwareDimensions', string>,
): HealthSettings {
  return {
    lastSeenIntervalMs:
      integerIn(ENV.lastSeenIntervalSeconds, env.lastSeenIntervalSeconds, 1, 7 * 86_400) * 1000,
    thresholds: {
      lowHeapBytes: integerIn(ENV.lowHeapBytes, env.lowHeapBytes, 0, 2 ** 32),
      weakRssiDbm: integerIn(ENV.weakRssiDbm, env.weakRssiDbm, -150, 0),
    },
    maxFirmwareDimensions: integerIn(ENV.maxFirmwareDimensions, env.maxFirmwareDimensions, 1, 1000),
  };
}
