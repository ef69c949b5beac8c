/**
 * The health consumer answers through Powertools' batch processing (`BatchProcessor` for Kinesis
 * with `processPartialResponse`): for a batch where chosen records fail (a registry write of
 * their device, or the dead-letter queue refusing them), its answer is the one Powertools gives
 * for a record handler failing the same records: the same partial batch response, and the same
 * error, with the reasons, when every record failed. The consumer runs from source with
 * in-memory dependencies; test/integration/telemetry/health-consumer.test.ts runs the bundle.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { DEFAULT_HEALTH_THRESHOLDS, FirmwareDimensions } from '../../../core/health';
import type { HealthRegistry } from '../../../lambda/shared/registry';
import type { SqsBatchSender } from '../../../lambda/shared/sqs';
import { DeviceCache } from '../../../lambda/telemetry/device-cache';
import { createHealthConsumer } from '../../../lambda/telemetry/health-consumer';
import { EmfWriter } from '../../../lambda/telemetry/health-metrics';
import type { KnownDevice } from '../../../lambda/telemetry/health-plan';
import { kinesisEvent, kinesisRecord, reportRecord } from './support';

type Registry = Pick<
  HealthRegistry,
  'getHealthViews' | 'recordHealthState' | 'recordLastSeen' | 'appendEventOnce'
>;

const serial = (i: number): string => `SN-B-${String(i).padStart(4, '0')}`;

/**
 * A consumer whose registry holds every `SN-B-…` serial (a first report each: one state write per
 * device) and refuses the writes of `failWrites`; its dead-letter queue refuses every message
 * when `refuseDeadLetters` is set.
 */
function consumer(opts: { failWrites?: Set<string>; refuseDeadLetters?: boolean } = {}) {
  const registry: Registry = {
    getHealthViews: async (serials) => ({
      found: new Map(
        serials.map((s) => [
          s,
          { serial: s, lot: 'LOT-B', ring: 'canary' as const, currentFirmware: '1.0.0' },
        ]),
      ),
      unresolved: new Set(),
    }),
    recordHealthState: async (s) => {
      if (opts.failWrites?.has(s)) throw new Error('injected');
      return { applied: true, lastSeen: true };
    },
    recordLastSeen: async () => true,
    appendEventOnce: async () => true,
  };
  const sendDeadLetters: SqsBatchSender = async (_url, messages) => ({
    failed: new Map(opts.refuseDeadLetters ? messages.map((m) => [m.id, 'injected'] as const) : []),
    digestMismatches: [],
  });
  return createHealthConsumer({
    registry,
    sendDeadLetters,
    deadLetterQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/dlq',
    cache: new DeviceCache<KnownDevice>(),
    thingNamePrefix: 'fleet',
    thresholds: DEFAULT_HEALTH_THRESHOLDS,
    lastSeenIntervalMs: 900_000,
    firmwareDimensions: new FirmwareDimensions(10),
    logger: new Logger({ serviceName: 'health-consumer', logLevel: 'SILENT' }),
    metrics: new EmfWriter('IotFleet', 'health-consumer', { POWERTOOLS_METRICS_DISABLED: 'true' }),
  });
}

/** What Powertools answers for `event` when the records at `failing` fail, each with its reason. */
function powertools(
  event: KinesisStreamEvent,
  failing: Map<number, string>,
): Promise<KinesisStreamBatchResponse> {
  const processor = new BatchProcessor(EventType.KinesisDataStreams);
  const handler = async (r: KinesisStreamRecord): Promise<void> => {
    const why = failing.get(event.Records.indexOf(r));
    if (why !== undefined) throw new Error(why);
  };
  return processPartialResponse(event, handler, processor);
}

const settle = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    (value) => ({ value }),
    (err: Error & { recordErrors?: Error[] }) => ({
      error: err.name,
      message: err.message,
      recordErrors: err.recordErrors?.map((e) => e.message),
    }),
  );

const writeFailure = (s: string): string => `registry write for ${s} failed: Error: injected`;

/** Batches of `size` devices, one report each; the devices at `failing` cannot be written. */
test.each<[string, number, number[]]>([
  ['an empty batch', 0, []],
  ['no failure', 4, []],
  ['the first record', 4, [0]],
  ['records in the middle and at the end', 5, [1, 2, 4]],
  ['all but one', 3, [0, 2]],
  ['every record', 3, [0, 1, 2]],
  ['a single record that failed', 1, [0]],
])('%s: the answer Powertools gives', async (_name, size, failing) => {
  const records = Array.from({ length: size }, (_, i) => reportRecord(`fleet-${serial(i)}`));
  const event = kinesisEvent(...records);
  const reasons = new Map(failing.map((i) => [i, writeFailure(serial(i))]));
  const expected = await settle(powertools(event, reasons));
  const consume = consumer({ failWrites: new Set(failing.map(serial)) });
  expect(await settle(consume(event))).toEqual(expected);
});

test('failures of both kinds, in one batch: registry writes and dead letters the queue refused', async () => {
  const records = [
    kinesisRecord('not json', 'x'),
    reportRecord(`fleet-${serial(10)}`),
    reportRecord(`fleet-${serial(11)}`),
    reportRecord('fleet-'),
  ];
  const event = kinesisEvent(...records);
  const consume = consumer({ failWrites: new Set([serial(11)]), refuseDeadLetters: true });
  const answer = await consume(event);
  expect(answer).toEqual({
    batchItemFailures: [0, 2, 3].map((i) => ({ itemIdentifier: records[i].kinesis.sequenceNumber })),
  });
});

test('the reasons of a batch that failed whole are those the consumer gave each record', async () => {
  const event = kinesisEvent(kinesisRecord('not json', 'x'), reportRecord(`fleet-${serial(20)}`));
  const consume = consumer({ failWrites: new Set([serial(20)]), refuseDeadLetters: true });
  expect(await settle(consume(event))).toEqual({
    error: 'FullBatchFailureError',
    message: 'All records failed processing. See individual errors below.',
    recordErrors: ['dead-letter queue refused the record: injected', writeFailure(serial(20))],
  });
});

test('one processor serves batch after batch: a failed batch leaves nothing to the next one', async () => {
  const failWrites = new Set([serial(30)]);
  const consume = consumer({ failWrites });
  const a = reportRecord(`fleet-${serial(30)}`);
  const b = reportRecord(`fleet-${serial(31)}`);
  expect(await consume(kinesisEvent(a, b))).toEqual({
    batchItemFailures: [{ itemIdentifier: a.kinesis.sequenceNumber }],
  });
  failWrites.clear();
  expect(await consume(kinesisEvent(a))).toEqual({ batchItemFailures: [] });
});

test("an event without records is Powertools' unexpected batch type", async () => {
  await expect(consumer()({} as KinesisStreamEvent)).rejects.toMatchObject({
    name: 'UnexpectedBatchTypeError',
  });
});
