/**
 * The health consumer's metrics, as CloudWatch embedded metric format (EMF) documents through
 * Powertools Metrics, with the names and dimensions of core/metrics.ts. Dimensions are bounded:
 * FirmwareVersion (capped by `FirmwareDimensions`) and Ring on the cohort metrics, Reason on the
 * rejections, nothing but Powertools' `service` on the rest; never a serial or thing name.
 *
 * One document per cohort (dimension set), flushed before the next cohort's dimensions are set.
 * UnexpectedRebootRate carries one value per report (100 or 0), so its average over any period is
 * the share of reports that started an unexpected reboot, weighted per report. Powertools keeps
 * the repeated values of a metric as an array and publishes the buffer by itself when an array
 * reaches 100 values (EMF's limit per metric and document), clearing the dimensions as it does:
 * so the samples go out in chunks of at most 100, each chunk with its cohort's dimensions set
 * again.
 */
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { METRICS, type MetricSpec } from '../../core/metrics';
import type { CohortMetrics, RejectReason } from './health-plan';

/** Values of one metric in one EMF document (Powertools' MAX_METRIC_VALUES_SIZE). */
export const MAX_VALUES_PER_METRIC = 100;

export interface HealthBatchMetrics {
  cohorts: readonly CohortMetrics[];
  connectionLost: number;
  /** Records the dead-letter queue took, by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  lastSeenWrites: number;
}

function add(metrics: Metrics, spec: MetricSpec, value: number): void {
  metrics.addMetric(spec.name, spec.unit, value);
}

/** Publish what is buffered (nothing when Powertools just published a full array itself). */
function flush(metrics: Metrics): void {
  if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
}

export function publishHealthMetrics(metrics: Metrics, m: HealthBatchMetrics): void {
  for (const { cohort: c, rebootRateSamples } of m.cohorts) {
    const dimensions = { FirmwareVersion: c.firmware, Ring: c.ring };
    metrics.addDimensions(dimensions);
    add(metrics, METRICS.healthReports, c.reports);
    add(metrics, METRICS.unexpectedReboots, c.unexpectedReboots);
    add(metrics, METRICS.crashResets, c.crashResets);
    add(metrics, METRICS.lowHeapReports, c.lowHeapReports);
    add(metrics, METRICS.weakRssiReports, c.weakRssiReports);
    add(metrics, METRICS.firmwareChanges, c.firmwareChanges);
    for (let i = 0; i < rebootRateSamples.length; i += MAX_VALUES_PER_METRIC) {
      if (i > 0) metrics.addDimensions(dimensions);
      for (const v of rebootRateSamples.slice(i, i + MAX_VALUES_PER_METRIC))
        add(metrics, METRICS.unexpectedRebootRate, v);
      flush(metrics);
    }
    flush(metrics);
  }
  for (const [reason, n] of Object.entries(m.rejected)) {
    metrics.addDimension('Reason', reason);
    add(metrics, METRICS.rejectedHealthRecords, n);
    flush(metrics);
  }
  if (m.connectionLost > 0) add(metrics, METRICS.connectionLost, m.connectionLost);
  if (m.lastSeenWrites > 0) add(metrics, METRICS.lastSeenWrites, m.lastSeenWrites);
  flush(metrics);
}
