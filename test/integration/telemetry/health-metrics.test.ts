/**
 * The health consumer's EMF documents (lambda/telemetry/health-metrics.ts) against those
 * Powertools Metrics writes for the same metrics, published the way the consumer published them
 * through Powertools before it built its documents itself: the same documents, in the same order
 * (the timestamp aside); and the same reading of POWERTOOLS_METRICS_DISABLED and POWERTOOLS_DEV.
 */
import { Metrics, type MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS, METRICS_NAMESPACE, type MetricSpec } from '../../../core/metrics';
import {
  EmfWriter,
  type HealthBatchMetrics,
  publishHealthMetrics,
} from '../../../lambda/telemetry/health-metrics';
import type { CohortMetrics } from '../../../lambda/telemetry/health-plan';

const SERVICE = 'health-consumer';

/** The consumer's publishing through Powertools, as it was. */
function publishWithPowertools(metrics: Metrics, m: HealthBatchMetrics): void {
  const add = (spec: MetricSpec, value: number): void => {
    metrics.addMetric(spec.name, spec.unit as (typeof MetricUnit)[keyof typeof MetricUnit], value);
  };
  const flush = (): void => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  for (const { cohort: c, rebootRateSamples } of m.cohorts) {
    const dimensions = { FirmwareVersion: c.firmware, Ring: c.ring };
    metrics.addDimensions(dimensions);
    add(METRICS.healthReports, c.reports);
    add(METRICS.activeDevices, c.activeDevices);
    add(METRICS.unexpectedReboots, c.unexpectedReboots);
    add(METRICS.crashResets, c.crashResets);
    add(METRICS.lowHeapReports, c.lowHeapReports);
    add(METRICS.weakRssiReports, c.weakRssiReports);
    add(METRICS.firmwareChanges, c.firmwareChanges);
    for (let i = 0; i < rebootRateSamples.length; i += 100) {
      if (i > 0) metrics.addDimensions(dimensions);
      for (const v of rebootRateSamples.slice(i, i + 100)) add(METRICS.unexpectedRebootRate, v);
      flush();
    }
    flush();
  }
  for (const [reason, n] of Object.entries(m.rejected)) {
    metrics.addDimension('Reason', reason);
    add(METRICS.rejectedHealthRecords, n);
    flush();
  }
  if (m.connectionLost > 0) add(METRICS.connectionLost, m.connectionLost);
  if (m.lastSeenWrites > 0) add(METRICS.lastSeenWrites, m.lastSeenWrites);
  flush();
}

/** The JSON documents `f` writes to stdout (or the global console), timestamps removed. */
function documents(f: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const capture = (chunk: string | Uint8Array): boolean => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  };
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(capture),
    jest.spyOn(console, 'log').mockImplementation((line: string) => void capture(line)),
  ];
  try {
    f();
  } finally {
    spies.forEach((s) => s.mockRestore());
  }
  return lines.map((l) => {
    const doc = JSON.parse(l) as { _aws: { Timestamp?: number } };
    expect(typeof doc._aws.Timestamp).toBe('number');
    delete doc._aws.Timestamp;
    return doc;
  });
}

const cohort = (
  firmware: string,
  ring: CohortMetrics['cohort']['ring'],
  samples: number[],
): CohortMetrics => ({
  cohort: {
    firmware,
    ring,
    reports: samples.length,
    activeDevices: Math.ceil(samples.length / 3),
    devices: new Set(Array.from({ length: Math.ceil(samples.length / 3) }, (_, i) => `SN-${i}`)),
    unexpectedReboots: samples.filter((s) => s === 100).length,
    crashResets: 1,
    lowHeapReports: 2,
    weakRssiReports: 0,
    firmwareChanges: 3,
  },
  rebootRateSamples: samples,
});
const samples = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 100 : 0));

const batches: [string, HealthBatchMetrics][] = [
  ['nothing', { cohorts: [], connectionLost: 0, rejected: {}, lastSeenWrites: 0 }],
  [
    'one report',
    { cohorts: [cohort('1.0.0', 'canary', [0])], connectionLost: 0, rejected: {}, lastSeenWrites: 0 },
  ],
  [
    'cohorts of 2, 100, 101 and 250 reports, rejections, Last Wills and lastSeen writes',
    {
      cohorts: [
        cohort('1.0.0', 'canary', samples(2)),
        cohort('1.1.0', 'early', samples(100)),
        cohort('other', 'broad', samples(101)),
        cohort('1.2.0-rc.1', 'unknown', samples(250)),
      ],
      connectionLost: 3,
      rejected: { UNKNOWN_DEVICE: 2, MALFORMED: 1 },
      lastSeenWrites: 7,
    },
  ],
  ['Last Wills only', { cohorts: [], connectionLost: 1, rejected: {}, lastSeenWrites: 0 }],
  ['lastSeen writes only', { cohorts: [], connectionLost: 0, rejected: {}, lastSeenWrites: 4 }],
];

const ENV_KEYS = ['POWERTOOLS_METRICS_DISABLED', 'POWERTOOLS_DEV', 'POWERTOOLS_METRICS_NAMESPACE'];
const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
const setEnv = (env: Record<string, string | undefined>): void => {
  for (const k of ENV_KEYS) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) process.env[k] = v;
};

test.each(batches)('%s: the documents Powertools writes', (_name, batch) => {
  setEnv({});
  const expected = documents(() =>
    publishWithPowertools(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE }), batch),
  );
  const actual = documents(() => publishHealthMetrics(new EmfWriter(METRICS_NAMESPACE, SERVICE), batch));
  expect(actual).toEqual(expected);
  // Key order too (the JSON text, timestamps aside).
  expect(actual.map((d) => JSON.stringify(d))).toEqual(expected.map((d) => JSON.stringify(d)));
});

test.each<[string, Record<string, string | undefined>, boolean]>([
  ['unset', {}, true],
  ['metrics disabled', { POWERTOOLS_METRICS_DISABLED: 'true' }, false],
  ['metrics enabled', { POWERTOOLS_METRICS_DISABLED: 'false' }, true],
  ['metrics disabled, extended spelling', { POWERTOOLS_METRICS_DISABLED: ' Yes ' }, false],
  ['metrics enabled, extended spelling', { POWERTOOLS_METRICS_DISABLED: '0' }, true],
  ['dev mode', { POWERTOOLS_DEV: 'true' }, false],
  ['dev mode, metrics enabled', { POWERTOOLS_DEV: 'on', POWERTOOLS_METRICS_DISABLED: 'false' }, true],
  ['dev mode not a boolean', { POWERTOOLS_DEV: 'maybe' }, true],
  ['a namespace in the environment (the explicit one wins)', { POWERTOOLS_METRICS_NAMESPACE: 'Other' }, true],
])('environment %s: as Powertools', (_name, env, written) => {
  setEnv(env);
  const batch = batches[2][1];
  const expected = documents(() =>
    publishWithPowertools(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE }), batch),
  );
  const actual = documents(() => publishHealthMetrics(new EmfWriter(METRICS_NAMESPACE, SERVICE), batch));
  expect(actual).toEqual(expected);
  expect(actual.length > 0).toBe(written);
});

test('POWERTOOLS_METRICS_DISABLED that is not a boolean stops the function at init, as Powertools does', () => {
  setEnv({ POWERTOOLS_METRICS_DISABLED: 'sometimes' });
  expect(() => new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE })).toThrow(
    'POWERTOOLS_METRICS_DISABLED must be a boolean',
  );
  expect(() => new EmfWriter(METRICS_NAMESPACE, SERVICE)).toThrow(
    'POWERTOOLS_METRICS_DISABLED must be a boolean',
  );
});
