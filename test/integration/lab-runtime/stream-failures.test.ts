/**
 * On-failure destinations of a Kinesis event-source mapping in the lab, through the real S3
 * emulator and the lab's queues (docs/decisions.md D20): a batch the function keeps failing is
 * given up on and
 * - to an S3 bucket: one object under `aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/…` holding
 *   Lambda's invocation record and, in `payload`, the event the function got, so its records
 *   stay readable and the event can be re-driven (invoked again) as it is;
 * - to an SQS queue: the invocation record only (shard coordinates, no records).
 */
import { rmSync } from 'node:fs';
import { loadCloudAssembly, startLabRuntime, type LabRuntime } from '../../../lab/runtime';
import { LabKinesis } from '../../../lab/runtime/kinesis-client';
import { onFailureObjectKey, type KinesisEventRecord } from '../../../lab/runtime/kinesis-mapping';
import { code, fakeIotCore, writeAssembly } from './fixture';

jest.setTimeout(60_000);

const FAILING_HASH = 'f'.repeat(64);
const REDRIVE_HASH = '9'.repeat(64);

/** Always fails, as the health consumer does while the registry throttles it. */
const FAILING_CODE = `
exports.handler = async (event) => {
  throw new Error('registry throttled: ' + event.Records.length + ' records not written');
};
`;

/** The consumer once the registry is back: logs what it processed. */
const REDRIVE_CODE = `
exports.handler = async (event) => {
  const docs = event.Records.map((r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')));
  console.log(JSON.stringify({ redriven: docs.map((d) => d.bootId) }));
  return { batchItemFailures: [] };
};
`;

const mapping = (destination: string) => ({
  Type: 'AWS::Lambda::EventSourceMapping',
  Properties: {
    FunctionName: { Ref: 'Failing' },
    EventSourceArn: { 'Fn::GetAtt': ['Stream', 'Arn'] },
    StartingPosition: 'TRIM_HORIZON',
    BatchSize: 10,
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    MaximumRetryAttempts: 2,
    MaximumRecordAgeInSeconds: 21600,
    DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [destination, 'Arn'] } } },
  },
});

function writeFailuresAssembly(): string {
  const fn = (hash: string) => ({
    Type: 'AWS::Lambda::Function',
    Properties: { Code: code(hash), Handler: 'index.handler', Runtime: 'nodejs22.x', Timeout: 10 },
  });
  return writeAssembly(
    {
      Resources: {
        Stream: { Type: 'AWS::Kinesis::Stream', Properties: { ShardCount: 1, RetentionPeriodHours: 24 } },
        ErrorStore: { Type: 'AWS::S3::Bucket', Properties: {} },
        Dlq: { Type: 'AWS::SQS::Queue', Properties: {} },
        Failing: fn(FAILING_HASH),
        Redrive: fn(REDRIVE_HASH),
        ToBucket: mapping('ErrorStore'),
        ToQueue: mapping('Dlq'),
      },
      Outputs: {
        Stream: { Value: { Ref: 'Stream' } },
        ErrorStore: { Value: { Ref: 'ErrorStore' } },
        ToBucketUuid: { Value: { Ref: 'ToBucket' } },
      },
    },
    { [FAILING_HASH]: FAILING_CODE, [REDRIVE_HASH]: REDRIVE_CODE },
  );
}

interface InvocationRecord {
  requestContext: Record<string, unknown>;
  responseContext: Record<string, unknown>;
  version: string;
  timestamp: string;
  KinesisBatchInfo: Record<string, unknown>;
  payload?: string;
}

test('the key layout: aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>, UTC', () => {
  const at = new Date('2025-01-02T03:04:05.678Z');
  expect(onFailureObjectKey('u-1', 'shardId-000000000000', at, 'id-1')).toBe(
    'aws/lambda/u-1/shardId-000000000000/2025/01/02/2025-01-02T03.04.05-id-1',
  );
  expect(onFailureObjectKey('u-1', 'shardId-000000000000', at)).toMatch(
    /^aws\/lambda\/u-1\/shardId-000000000000\/2025\/01\/02\/2025-01-02T03\.04\.05-[0-9a-f-]{36}$/,
  );
});

describe('a batch the function keeps failing', () => {
  let dir: string;
  let lab: LabRuntime;
  const logs: { fn: string; line: string }[] = [];
  const reports = [1, 2, 3].map((n) => ({
    type: 'health',
    thing: `fleet-00${n}`,
    bootId: `boot-${n}`,
    fw: '1.2.0',
  }));

  beforeAll(async () => {
    dir = writeFailuresAssembly();
    lab = await startLabRuntime({
      assembly: loadCloudAssembly(dir),
      projectDir: dir,
      iotCore: fakeIotCore({}),
      logDir: false,
      labDir: `${dir}/.lab`,
      schedules: 'manual',
      onFunctionLog: (fn, line) => logs.push({ fn, line }),
      pollIntervalMs: 50,
    });
    const kinesis = new LabKinesis(lab.endpoints.kinesis);
    for (const r of reports)
      await kinesis.putRecord(lab.outputsByStack.Lab.Stream, r.thing, Buffer.from(JSON.stringify(r)));
    expect(await lab.streamsIdle(30_000)).toBe(true);
  });

  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const stats = (logicalId: string) => lab.stats().eventSourceMappings.find((m) => m.logicalId === logicalId);

  test('lands in the S3 destination as one object under the mapping and shard, its records readable', async () => {
    const bucket = lab.outputsByStack.Lab.ErrorStore;
    const uuid = lab.outputsByStack.Lab.ToBucketUuid;
    const keys = await lab.s3.listKeys(bucket);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(
      new RegExp(
        `^aws/lambda/${uuid}/shardId-000000000000/\\d{4}/\\d{2}/\\d{2}/\\d{4}-\\d{2}-\\d{2}T\\d{2}\\.\\d{2}\\.\\d{2}-[0-9a-f-]{36}$`,
      ),
    );
    const object = JSON.parse((await lab.s3.getObject(bucket, keys[0])).toString('utf8')) as InvocationRecord;
    expect(object).toMatchObject({
      requestContext: {
        functionArn: lab.topology.functions.Failing.arn,
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 3,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      KinesisBatchInfo: { shardId: 'shardId-000000000000', batchSize: 3 },
    });
    expect(typeof object.payload).toBe('string');
    const event = JSON.parse(object.payload as string) as { Records: KinesisEventRecord[] };
    expect(event.Records).toHaveLength(3);
    const docs = event.Records.map((r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')));
    expect(docs).toEqual(reports);
    expect(event.Records.map((r) => r.kinesis.partitionKey)).toEqual(['fleet-001', 'fleet-002', 'fleet-003']);
    expect(event.Records[0].kinesis.sequenceNumber).toBe(object.KinesisBatchInfo.startSequenceNumber);
    expect(event.Records[2].kinesis.sequenceNumber).toBe(object.KinesisBatchInfo.endSequenceNumber);
    expect(stats('ToBucket')).toMatchObject({
      batches: 3,
      functionErrors: 3,
      sentToOnFailure: 3,
      onFailureMessages: 1,
      onFailureDropped: 0,
    });
  });

  test('the stored event re-drives as it is: invoking the consumer with it processes every record', async () => {
    const bucket = lab.outputsByStack.Lab.ErrorStore;
    const [key] = await lab.s3.listKeys(bucket, 'aws/lambda/');
    const { payload } = JSON.parse(
      (await lab.s3.getObject(bucket, key)).toString('utf8'),
    ) as InvocationRecord;
    expect(await lab.invoke(lab.topology.functions.Redrive.arn, JSON.parse(payload as string))).toEqual({
      batchItemFailures: [],
    });
    const name = lab.topology.functions.Redrive.name;
    const lines = logs.filter((l) => l.fn === name && l.line.trim().startsWith('{'));
    expect(lines.map((l) => JSON.parse(l.line) as unknown)).toContainEqual({
      redriven: ['boot-1', 'boot-2', 'boot-3'],
    });
  });

  test('an SQS destination still gets the invocation record, shard coordinates only', () => {
    const messages = lab
      .deadLetters('Dlq')
      .filter((m) => m.source === 'esm:ToQueue')
      .map((m) => m.json as InvocationRecord);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 },
      KinesisBatchInfo: { shardId: 'shardId-000000000000', batchSize: 3 },
    });
    expect(messages[0].payload).toBeUndefined();
    expect(stats('ToQueue')).toMatchObject({ sentToOnFailure: 3, onFailureMessages: 1, onFailureDropped: 0 });
  });
});
