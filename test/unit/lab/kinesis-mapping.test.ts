import { KinesisError, type KinesisRecord, type LabKinesis } from '../../../lab/runtime/kinesis-client';
import {
  KinesisMapping,
  type KinesisEventRecord,
  type KinesisMappingConfig,
  type KinesisMappingDeps,
} from '../../../lab/runtime/kinesis-mapping';
import { LambdaFunctionError, LambdaServiceError } from '../../../lab/runtime/lambda-runner';
import { BISECTED_POISON_COUNTS, retriesExhaustedAfterFunctionError } from '../../helpers/kinesis-on-failure';
import { until } from '../../helpers/wait';

jest.setTimeout(20_000);

const STREAM_ARN = 'arn:aws:kinesis:us-east-1:123456789012:stream/telemetry';
const FN = 'arn:aws:lambda:us-east-1:123456789012:function:health';
const SHARD = 'shardId-000000000000';

/** A one-shard Kinesis stand-in: iterators are positions; `down` makes every call fail. */
function fakeKinesis() {
  const records: KinesisRecord[] = [];
  const state = { down: false, reads: 0 };
  const put = (doc: unknown, arrivalMs = Date.now()): string => {
    const seq = String(records.length + 1).padStart(20, '0');
    records.push({
      SequenceNumber: seq,
      ApproximateArrivalTimestamp: arrivalMs / 1000,
      Data: Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)).toString('base64'),
      PartitionKey: 'fleet-001',
    });
    return seq;
  };
  const unavailable = () => new KinesisError('TimeoutError', 'no answer from Kinesis');
  const kinesis = {
    listShardIds: async () => [SHARD],
    shardIterator: async (_s: string, _sh: string, start: { type: string; sequenceNumber?: string }) => {
      if (state.down) throw unavailable();
      if (start.type === 'LATEST') return String(records.length);
      if (start.type === 'AFTER_SEQUENCE_NUMBER') return String(Number(start.sequenceNumber));
      return '0';
    },
    getRecords: async (it: string, limit: number) => {
      state.reads++;
      if (state.down) throw unavailable();
      const from = Number(it);
      const out = records.slice(from, from + limit);
      return { Records: out, NextShardIterator: String(from + out.length) };
    },
  } as unknown as LabKinesis;
  return { kinesis, put, state };
}

const seqs = (event: unknown): string[] =>
  (event as { Records: KinesisEventRecord[] }).Records.map((r) =>
    r.kinesis.sequenceNumber.replace(/^0+/, ''),
  );
const docOf = (r: KinesisEventRecord): { fw?: string } =>
  JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8'));

function setup(
  config: Partial<KinesisMappingConfig>,
  handler: (event: { Records: KinesisEventRecord[] }, call: number) => unknown,
  deps: Partial<KinesisMappingDeps> = {},
) {
  const { kinesis, put, state } = fakeKinesis();
  const calls: string[][] = [];
  const onFailure: unknown[] = [];
  const mapping = new KinesisMapping(
    {
      logicalId: 'HealthMapping',
      uuid: 'u-1',
      functionArn: FN,
      streamArn: STREAM_ARN,
      streamName: 'telemetry',
      batchSize: 10,
      batchingWindowMs: 0,
      startingPosition: { type: 'TRIM_HORIZON' },
      reportItemFailures: false,
      bisect: false,
      maxRetries: -1,
      maxRecordAgeMs: -1,
      parallelizationFactor: 1,
      region: 'us-east-1',
      accountId: '123456789012',
      ...config,
    },
    {
      kinesis,
      invoke: async (_fn, event) => {
        calls.push(seqs(event));
        return handler(event as { Records: KinesisEventRecord[] }, calls.length);
      },
      sendOnFailure: (_dest, body) => void onFailure.push(JSON.parse(body)),
      log: () => undefined,
      pollIntervalMs: 5,
      ...deps,
    },
  );
  return { mapping, put, state, calls, onFailure };
}

const poison = (event: { Records: KinesisEventRecord[] }) => {
  if (event.Records.some((r) => docOf(r).fw === '6.6.6'))
    throw new LambdaFunctionError('health', 'Error', 'poison record');
  return {};
};

describe('Kinesis event-source mapping', () => {
  let mapping: KinesisMapping | undefined;
  afterEach(async () => {
    await mapping?.stop();
    mapping = undefined;
  });

  test('a partial batch response retries from the lowest failed sequence number', async () => {
    const t = setup({ reportItemFailures: true }, (event, call) =>
      call === 1
        ? {
            batchItemFailures: [
              { itemIdentifier: event.Records[3].kinesis.sequenceNumber },
              { itemIdentifier: event.Records[2].kinesis.sequenceNumber },
            ],
          }
        : { batchItemFailures: [] },
    );
    mapping = t.mapping;
    for (let i = 0; i < 5; i++) t.put({ n: i });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([
      ['1', '2', '3', '4', '5'],
      ['3', '4', '5'],
    ]);
    expect(t.mapping.stats()).toMatchObject({
      batches: 2,
      recordsInvoked: 8,
      partialFailures: 1,
      retries: 1,
      sentToOnFailure: 0,
      shards: [{ shardId: SHARD, checkpoint: '00000000000000000005' }],
    });
  });

  test('an unusable partial response (unknown itemIdentifier) fails the whole batch', async () => {
    const t = setup({ reportItemFailures: true, maxRetries: 1, onFailure: 'dlq' }, () => ({
      batchItemFailures: [{ itemIdentifier: 'not-in-the-batch' }],
    }));
    mapping = t.mapping;
    t.put({ n: 1 });
    t.put({ n: 2 });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([
      ['1', '2'],
      ['1', '2'],
    ]);
    expect(t.onFailure).toHaveLength(1);
  });

  test('BisectBatchOnFunctionError isolates the bad record; splitting is not a retry', async () => {
    const t = setup({ bisect: true, maxRetries: 1, onFailure: 'dlq' }, poison);
    mapping = t.mapping;
    const before = Date.now();
    for (const fw of ['6.0.0', '6.0.1', '6.6.6', '6.0.2']) t.put({ type: 'health', fw });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([['1', '2', '3', '4'], ['1', '2'], ['3', '4'], ['3'], ['3'], ['4']]);
    expect(t.mapping.stats()).toMatchObject({
      ...BISECTED_POISON_COUNTS,
      shards: [{ checkpoint: '00000000000000000004' }],
    });
    expect(t.onFailure).toEqual([
      retriesExhaustedAfterFunctionError(FN, 2, {
        shardId: SHARD,
        startSequenceNumber: '00000000000000000003',
        endSequenceNumber: '00000000000000000003',
        batchSize: 1,
        streamArn: STREAM_ARN,
      }),
    ]);
    const info = (t.onFailure[0] as { KinesisBatchInfo: { approximateArrivalOfFirstRecord: string } })
      .KinesisBatchInfo;
    expect(Date.parse(info.approximateArrivalOfFirstRecord)).toBeGreaterThanOrEqual(before - 1);
  });

  test('without bisect, the batch is retried MaximumRetryAttempts times, then described to the destination', async () => {
    const t = setup({ maxRetries: 2, onFailure: 'dlq' }, poison);
    mapping = t.mapping;
    t.put({ fw: '6.0.0' });
    t.put({ fw: '6.6.6' });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toHaveLength(3);
    expect(t.onFailure).toEqual([
      expect.objectContaining({
        requestContext: expect.objectContaining({
          condition: 'RetryAttemptsExhausted',
          approximateInvokeCount: 3,
        }),
        KinesisBatchInfo: expect.objectContaining({ batchSize: 2 }),
      }),
    ]);
    t.put({ fw: '6.0.3' });
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls[3]).toEqual(['3']); // the shard moved on
  });

  test('records older than MaximumRecordAgeInSeconds are skipped without an invocation', async () => {
    const t = setup({ maxRecordAgeMs: 60_000, onFailure: 'dlq' }, () => ({}));
    mapping = t.mapping;
    t.put({ n: 'old' }, Date.now() - 120_000);
    t.put({ n: 'new' });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([['2']]);
    expect(t.onFailure).toEqual([
      expect.objectContaining({
        requestContext: expect.objectContaining({
          condition: 'RecordAgeExceeded',
          approximateInvokeCount: 0,
        }),
        KinesisBatchInfo: expect.objectContaining({
          startSequenceNumber: '00000000000000000001',
          batchSize: 1,
        }),
      }),
    ]);
    expect(t.onFailure[0]).not.toHaveProperty('responseContext');
  });

  test('filtered records are not invoked, and the checkpoint moves past them', async () => {
    const t = setup({ filter: (d) => JSON.parse(d.toString()).type === 'health' }, () => ({}));
    mapping = t.mapping;
    t.put({ type: 'telemetry' });
    t.put({ type: 'health' });
    t.put({ type: 'telemetry' });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([['2']]);
    expect(t.mapping.stats()).toMatchObject({
      recordsRead: 3,
      filtered: 2,
      shards: [{ checkpoint: '00000000000000000003' }],
    });
  });

  test('a function that cannot be invoked is retried without using up the retries', async () => {
    let n = 0;
    const t = setup({ maxRetries: 0, onFailure: 'dlq' }, () => {
      n++;
      if (n < 3) throw new LambdaServiceError('TooManyRequestsException', 'throttled');
      return {};
    });
    mapping = t.mapping;
    t.put({ n: 1 });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toHaveLength(3);
    expect(t.onFailure).toEqual([]);
  });

  test('a Kinesis outage: the poller waits, then resumes where it was, nothing lost or repeated', async () => {
    const t = setup({}, () => ({}));
    mapping = t.mapping;
    t.put({ n: 1 });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    t.state.down = true;
    t.put({ n: 2 });
    t.put({ n: 3 });
    const readsBefore = t.state.reads;
    await until(() => t.mapping.stats().pollErrors > 0, 'a failed poll');
    expect(t.state.reads).toBeGreaterThan(readsBefore);
    expect(t.calls.flat()).toEqual(['1']); // nothing delivered while Kinesis is down
    t.state.down = false;
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls.flat()).toEqual(['1', '2', '3']);
  });

  test('a restarted poller starts after its checkpoint: acknowledged records are not delivered again', async () => {
    const t = setup({}, () => ({}));
    mapping = t.mapping;
    t.put({ n: 1 });
    t.put({ n: 2 });
    await t.mapping.start();
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    await t.mapping.restart();
    t.put({ n: 3 });
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls.flat()).toEqual(['1', '2', '3']);
  });

  test('a batch in flight at a restart is not acknowledged: it is delivered again', async () => {
    let release: () => void = () => undefined;
    const t = setup({}, (_e, call) =>
      call === 1 ? new Promise<void>((r) => (release = () => r())).then(() => ({})) : {},
    );
    mapping = t.mapping;
    t.put({ n: 1 });
    await t.mapping.start();
    await until(() => t.calls.length > 0, 'the first invocation');
    const restarted = t.mapping.restart();
    release();
    await restarted;
    expect(await t.mapping.caughtUp(5000)).toBe(true);
    expect(t.calls).toEqual([['1'], ['1']]);
  });

  test('MaximumBatchingWindowInSeconds gathers records that arrive during the window', async () => {
    const clock = { now: 1_760_000_000_000 };
    const t = setup({ batchingWindowMs: 300 }, () => ({}), { now: () => clock.now });
    mapping = t.mapping;
    /** Put a record and wait until the poller has read it and polled once more (its window is open). */
    const arrive = async (n: number): Promise<void> => {
      t.put({ n });
      const reads = t.state.reads;
      await until(() => t.state.reads >= reads + 2, `record ${n} read`);
    };
    t.put({ n: 1 });
    await t.mapping.start();
    await until(() => t.state.reads >= 1, 'the first read'); // record 1 read: the window opens
    await arrive(2);
    await arrive(3);
    expect(t.calls).toEqual([]); // the window is still open
    clock.now += 300;
    await until(() => t.calls.length === 1, 'the window to close');
    expect(t.calls).toEqual([['1', '2', '3']]);
    await arrive(4); // after the window: the next batch, with a window of its own
    expect(t.calls).toHaveLength(1);
    clock.now += 300;
    await until(() => t.calls.length === 2, 'the second window to close');
    expect(t.calls).toEqual([['1', '2', '3'], ['4']]);
  });
});
