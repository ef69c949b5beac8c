/**
 * The health consumer's metrics, as CloudWatch embedded metric format (EMF) documents on stdout,
 * with the names and dimensions of core/metrics.ts. Dimensions are bounded: FirmwareVersion
 * (capped by `FirmwareDimensions`) and Ring on the cohort metrics, Reason on the rejections,
 * nothing but `service` on the rest; never a serial or thing name.
 *
 * One document per cohort (dimension set). UnexpectedRebootRate carries one value per report
 * (100 or 0), so its average over any period is the share of reports that started an unexpected
 * reboot, weighted per report. EMF takes at most 100 values per metric and document and has no
 * per-value counts, so the samples go out as they are, in chunks of at most 100, each chunk in a
 * document of its own with its cohort's dimensions.
 *
 * The documents are those Powertools Metrics writes (the `service` dimension first, one value
 * as a number, several as an array), built here directly: Powertools takes one value per
 * `addMetric` call, copying the stored array and reading the environment on every call, which
 * cost the consumer about 2.3 µs per record; and it would weigh 10 KB in a bundle held to
 * MAX_BUNDLE_BYTES (docs/decisions.md, D21). A test holds these documents byte-equal to
 * Powertools' for the same metrics. Its environment settings are honoured:
 * POWERTOOLS_METRICS_DISABLED, and POWERTOOLS_DEV (metrics off unless POWERTOOLS_METRICS_DISABLED
 * says otherwise; the global console instead of stdout).
 */
import { METRICS, type MetricSpec } from '../../core/metrics';
import type { CohortMetrics, RejectReason } from './health-plan';

/** Values of one metric in one EMF document. */
export const MAX_VALUES_PER_METRIC = 100;

const TRUE = ['1', 'y', 'yes', 't', 'true', 'on'];
const FALSE = ['0', 'n', 'no', 'f', 'false', 'off'];

/** A boolean environment variable as Powertools reads it; undefined when unset. */
function envFlag(env: NodeJS.ProcessEnv, key: string): boolean | undefined {
  const raw = env[key];
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new Error(`Environment variable ${key} must be a boolean`);
}

/** Writes EMF documents in one namespace, with the `service` dimension on every document. */
export class EmfWriter {
  readonly disabled: boolean;
  private readonly write: (line: string) => void;
  /** Metric directives by dimension and metric names (a handful: the documents have few shapes). */
  private readonly directives = new Map<string, string>();

  constructor(
    private readonly namespace: string,
    private readonly service: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    let devMode = false;
    try {
      devMode = envFlag(env, 'POWERTOOLS_DEV') ?? false;
    } catch {
      // not a boolean: not dev mode, as Powertools reads it
    }
    this.disabled = envFlag(env, 'POWERTOOLS_METRICS_DISABLED') ?? devMode;
    this.write = devMode
      ? // eslint-disable-next-line no-console -- as Powertools in dev mode: the global console
        (line) => console.log(line)
      : (line) => process.stdout.write(`${line}\n`);
  }

  /** One document: `metrics` (one value, or up to 100) with `dimensions` besides `service`. */
  emit(
    dimensions: Record<string, string>,
    metrics: readonly (readonly [MetricSpec, number | number[]])[],
  ): void {
    if (this.disabled) return;
    const root: Record<string, unknown> = { service: this.service, ...dimensions };
    for (const [m, v] of metrics) root[m.name] = Array.isArray(v) && v.length === 1 ? v[0] : v;
    const directive = this.directive(Object.keys(dimensions), metrics);
    this.write(
      `{"_aws":{"Timestamp":${Date.now()},"CloudWatchMetrics":${directive}},${JSON.stringify(root).slice(1)}`,
    );
  }

  /** The metric directive (namespace, dimension names, metric names and units) as JSON, built once per shape. */
  private directive(
    dimensionNames: readonly string[],
    metrics: readonly (readonly [MetricSpec, unknown])[],
  ): string {
    const key = `${dimensionNames.join()}|${metrics.map(([m]) => m.name).join()}`;
    let json = this.directives.get(key);
    if (json === undefined) {
      json = JSON.stringify([
        {
          Namespace: this.namespace,
          Dimensions: [['service', ...dimensionNames]],
          Metrics: metrics.map(([m]) => ({ Name: m.name, Unit: m.unit })),
        },
      ]);
      this.directives.set(key, json);
    }
    return json;
  }
}

export interface HealthBatchMetrics {
  cohorts: readonly CohortMetrics[];
  connectionLost: number;
  /** Records the dead-letter queue took, by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  lastSeenWrites: number;
}

export function publishHealthMetrics(emf: EmfWriter, m: HealthBatchMetrics): void {
  for (const { cohort: c, rebootRateSamples: samples } of m.cohorts) {
    const dimensions = { FirmwareVersion: c.firmware, Ring: c.ring };
    emf.emit(dimensions, [
      [METRICS.healthReports, c.reports],
      [METRICS.activeDevices, c.activeDevices],
      [METRICS.unexpectedReboots, c.unexpectedReboots],
      [METRICS.crashResets, c.crashResets],
      [METRICS.lowHeapReports, c.lowHeapReports],
      [METRICS.weakRssiReports, c.weakRssiReports],
      [METRICS.firmwareChanges, c.firmwareChanges],
      [METRICS.unexpectedRebootRate, samples.slice(0, MAX_VALUES_PER_METRIC)],
    ]);
    for (let i = MAX_VALUES_PER_METRIC; i < samples.length; i += MAX_VALUES_PER_METRIC)
      emf.emit(dimensions, [[METRICS.unexpectedRebootRate, samples.slice(i, i + MAX_VALUES_PER_METRIC)]]);
  }
  for (const [reason, n] of Object.entries(m.rejected))
    emf.emit({ Reason: reason }, [[METRICS.rejectedHealthRecords, n]]);
  const rest: [MetricSpec, number][] = [];
  if (m.connectionLost > 0) rest.push([METRICS.connectionLost, m.connectionLost]);
  if (m.lastSeenWrites > 0) rest.push([METRICS.lastSeenWrites, m.lastSeenWrites]);
  if (rest.length > 0) emf.emit({}, rest);
}
