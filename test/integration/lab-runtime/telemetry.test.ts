import { rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadCloudAssembly, startLabRuntime, type LabRuntime } from '../../../lab/runtime';
import { BISECTED_POISON_COUNTS, retriesExhaustedAfterFunctionError } from '../../helpers/kinesis-on-failure';
import { until } from '../../helpers/wait';
import { fakeIotCore } from './fixture';
import { THINGS, writeTelemetryAssembly } from './telemetry-fixture';

jest.setTimeout(90_000);

interface ErrorMessage {
  ruleName: string;
  topic: string;
  cloudwatchTraceId: string;
  clientId: string;
  base64OriginalPayload: string;
  failures: { failedAction: string; failedResource: string; errorMessage: string }[];
}

type StreamRecord = Record<string, unknown> & { type: string; thing: string; traceId: string };

describe('telemetry and health through the lab: rules, stream, Firehose, event-source mappings, S3', () => {
  let dir: string;
  let lab: LabRuntime;
  let s3: S3Client;
  const logs: { fn: string; line: string }[] = [];
  let seq = 0;
  let boot = 0;

  const telemetry = (thing: string) => ({
    topic: `$aws/rules/fleet_telemetry/dt/fleet/${thing}/telemetry`, // Basic Ingest, as devices publish
    payload: { seq: seq++, readings: [{ ts: Date.now(), values: { temperature_c: 21.5 } }] },
    thing,
  });
  const health = (thing: string, fw = '1.2.0') => ({
    topic: `dt/fleet/${thing}/health`,
    payload: {
      ts: Date.now(),
      fw,
      bootId: `boot-${++boot}`,
      uptimeS: 60,
      resetReason: 'POWER_ON',
      heapFreeB: 40000,
      rssiDbm: -61,
    },
    thing,
  });
  /** Publish in order (each message's rules finish before the next is published). */
  const publish = async (...messages: { topic: string; payload: unknown; thing: string }[]) => {
    for (const m of messages)
      await lab.rules.handleMessage({
        topic: m.topic,
        payload: Buffer.from(JSON.stringify(m.payload)),
        clientId: m.thing,
        principal: `cert-${m.thing}`,
      });
  };

  const fnLogs = (logicalId: string): Record<string, unknown>[] => {
    const name = lab.topology.functions[logicalId].name;
    return logs
      .filter((l) => l.fn === name && l.line.trim().startsWith('{'))
      .map((l) => JSON.parse(l.line) as Record<string, unknown>);
  };
  const processed = () => fnLogs('Health').filter((l) => l.processed);
  const mappingStats = (logicalId: string) =>
    lab.stats().eventSourceMappings.find((m) => m.logicalId === logicalId);
  const getObject = async (bucket: string, key: string): Promise<Buffer> => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(
      await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  };
  const errorObjects = async (rule: string): Promise<{ key: string; body: ErrorMessage }[]> => {
    const bucket = lab.outputsByStack.Lab.ErrorBucket;
    const keys = await lab.s3.listKeys(bucket, `${rule}/`);
    return Promise.all(
      keys.map(async (key) => ({
        key,
        body: JSON.parse((await getObject(bucket, key)).toString()) as ErrorMessage,
      })),
    );
  };
  const archive = async (): Promise<{ keys: string[]; records: StreamRecord[] }> => {
    const bucket = lab.outputsByStack.Lab.ArchiveBucket;
    const keys = await lab.s3.listKeys(bucket);
    const records: StreamRecord[] = [];
    for (const key of keys) {
      const text = gunzipSync(await getObject(bucket, key)).toString('utf8');
      expect(text.endsWith('\n')).toBe(true);
      records.push(
        ...text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as StreamRecord),
      );
    }
    return { keys, records };
  };
  const delivery = (logicalId: string) =>
    lab.stats().deliveryStreams.find((d) => d.logicalId === logicalId) as ReturnType<
      LabRuntime['stats']
    >['deliveryStreams'][number];
  const dlq = (source: string) =>
    lab
      .deadLetters('Dlq')
      .filter((m) => m.source === source)
      .map((m) => m.json as Record<string, Record<string, unknown>>);

  beforeAll(async () => {
    dir = writeTelemetryAssembly();
    lab = await startLabRuntime({
      assembly: loadCloudAssembly(dir),
      projectDir: dir,
      iotCore: fakeIotCore(THINGS),
      logDir: false,
      labDir: `${dir}/.lab`,
      schedules: 'manual',
      onFunctionLog: (fn, line) => logs.push({ fn, line }),
      ruleActionTimeoutMs: 800,
      kinesisTimeoutMs: 600,
      pollIntervalMs: 50,
      maxBatchingWindowMs: 1500,
    });
    s3 = new S3Client({
      endpoint: lab.env.AWS_ENDPOINT_URL_S3,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
  });

  afterAll(async () => {
    s3?.destroy();
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('creates buckets, Timestream table, rule destination and delivery stream; acknowledges the rest', () => {
    const text = lab.summary().join('\n');
    expect(lab.topology.unsupported).toEqual([]);
    expect(text).toMatch(/17 created, 8 acknowledged \(no local effect\), 0 UNSUPPORTED/);
    expect(text).toMatch(/firehose +Processed → .*Lambda processor .*:function:Lab-Transform-/);
    expect(text).toMatch(
      /bucket +ErrorBucket → lab-errorbucket-[a-z0-9]{13} \(s3 bucket; not emulated: encryption, 1 lifecycle rule\(s\), access settings\)/,
    );
    expect(text).toMatch(/firehose +Archive → Lab-Archive-[A-Z0-9]+ \(.*GZIP, newline-delimited/);
    expect(text).toMatch(/ts table +HealthTable/);
    expect(text).toMatch(/rule dest\. +InfluxDestination .*InfluxDB V3 .*VPC properties not emulated/);
    expect(text).toMatch(
      /event source +HealthMapping .*ParallelizationFactor 2 processed as 1.*filtered.*bisect on error.*partial batch responses/,
    );
    expect(text).toMatch(
      /acknowledged: .*AWS::S3::BucketPolicy ×1.*AWS::SecretsManager::Secret ×1.*AWS::EC2::VPC ×1.*AWS::EC2::Subnet ×1.*AWS::EC2::SecurityGroup ×1.*AWS::CloudWatch::Alarm ×1/,
    );
    expect(text).toMatch(/S3 http:\/\/127\.0\.0\.1:\d+ \(.*\/\.lab\/s3\)/);
    const out = lab.outputsByStack.Lab;
    expect(out.ArchiveBucketArn).toBe(`arn:aws:s3:::${out.ArchiveBucket}`);
    expect(out.TimestreamTable).toMatch(/^Lab-Db-[A-Z0-9]{13}\|Lab-HealthTable-[A-Z0-9]{13}$/);
    expect(out.InfluxDestination).toMatch(
      /^arn:aws:iot:us-east-1:123456789012:ruledestination\/influxdb\/[0-9a-f-]{36}$/,
    );
    expect(out.Secret).toMatch(
      /^arn:aws:secretsmanager:us-east-1:123456789012:secret:Lab-InfluxSecret-[A-Z0-9]+-[0-9a-f]{6}$/,
    );
    expect(out.SecurityGroup).toMatch(/^sg-[0-9a-f]{17}$/);
    expect(lab.env.AWS_ENDPOINT_URL_S3).toBe(lab.endpoints.s3);
  });

  test('records reach the stream; Firehose archives them GZIP, newline-delimited, under the timestamp prefix', async () => {
    const before = Date.now();
    await publish(
      telemetry('fleet-001'),
      telemetry('fleet-002'),
      health('fleet-001'),
      telemetry('fleet-001'),
      health('fleet-002'),
    );
    await lab.idle();
    await lab.flushFirehose();
    const { keys, records } = await archive();
    const name = delivery('Archive').name;
    for (const key of keys) {
      const m = new RegExp(
        `^records/year=(\\d{4})/month=(\\d{2})/day=(\\d{2})/hour=(\\d{2})/${name}-1-(\\d{4})-(\\d{2})-(\\d{2})-(\\d{2})-\\d{2}-\\d{2}-[0-9a-f-]{36}\\.gz$`,
      ).exec(key);
      expect(m).not.toBeNull();
      expect(`${m?.[1]}-${m?.[2]}-${m?.[3]}T${m?.[4]}`).toBe(`${m?.[5]}-${m?.[6]}-${m?.[7]}T${m?.[8]}`);
      expect(
        Date.UTC(Number(m?.[1]), Number(m?.[2]) - 1, Number(m?.[3]), Number(m?.[4]) + 1),
      ).toBeGreaterThan(before);
    }
    expect(records.map((r) => r.type).sort()).toEqual([
      'health',
      'health',
      'telemetry',
      'telemetry',
      'telemetry',
    ]);
    const t = records.find((r) => r.type === 'telemetry' && r.thing === 'fleet-002');
    expect(t).toEqual({
      seq: expect.any(Number),
      readings: [{ ts: expect.any(Number), values: { temperature_c: 21.5 } }],
      type: 'telemetry',
      thing: 'fleet-002',
      clientId: 'fleet-002',
      principal: 'cert-fleet-002',
      receivedAt: expect.any(Number),
      traceId: expect.any(String),
    });
    expect(records.find((r) => r.type === 'health' && r.thing === 'fleet-002')).toMatchObject({
      fw: '1.2.0',
      lot: 'LAB-B',
      ring: 'broad',
      resetReason: 'POWER_ON',
    });
    expect(delivery('Archive')).toMatchObject({ recordsRead: 5, recordsArchived: 5, buffered: 0 });
  });

  test('the health consumer gets the health records only (FilterCriteria), once each', async () => {
    expect(await lab.streamsIdle(10_000)).toBe(true);
    expect(processed().map((p) => p.bootId)).toEqual(expect.arrayContaining(['boot-1', 'boot-2']));
    expect(processed()).toHaveLength(2);
    expect(processed().every((p) => p.type === 'health')).toBe(true);
    expect(mappingStats('HealthMapping')).toMatchObject({ recordsRead: 5, filtered: 3, sentToOnFailure: 0 });
    expect(mappingStats('PoisonMapping')).toMatchObject({ recordsRead: 5, filtered: 5, batches: 0 });
  });

  test('the health rule writes Timestream records and InfluxDB points, enriched from the registry', () => {
    const [db, table] = lab.outputsByStack.Lab.TimestreamTable.split('|');
    const records = lab.timeSeries.timestreamRecords(db, table);
    const forThing = records.filter((r) => r.Dimensions[0].Value === 'fleet-001');
    expect(forThing[0].Dimensions).toEqual([
      { Name: 'thing', Value: 'fleet-001', DimensionValueType: 'VARCHAR' },
      { Name: 'lot', Value: 'LAB-A', DimensionValueType: 'VARCHAR' },
    ]);
    expect(forThing.map((r) => r.MeasureName).sort()).toEqual(
      [
        'bootId',
        'clientId',
        'fw',
        'heapFreeB',
        'principal',
        'receivedAt',
        'resetReason',
        'ring',
        'rssiDbm',
        'traceId',
        'ts',
        'type',
        'uptimeS',
      ].sort(),
    );
    expect(forThing.find((r) => r.MeasureName === 'ring')).toMatchObject({
      MeasureValue: 'canary',
      MeasureValueType: 'VARCHAR',
    });
    const lines = lab.timeSeries.influxLines('fleet', 'health');
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.startsWith('health,thing=fleet-002 '))).toMatch(
      / lot="LAB-B",ring="broad" \d{13}$|,lot="LAB-B",ring="broad" \d{13}$/,
    );
    expect(lab.stats().timeSeries).toEqual({
      timestream: [{ database: db, table, declared: true, records: 26, writes: 2 }],
      influxdb: [
        {
          destination: lab.outputsByStack.Lab.InfluxDestination,
          database: 'fleet',
          table: 'health',
          points: 2,
        },
      ],
    });
  });

  test('Kinesis paused: the Kinesis actions fail into the error store; the pollers wait and resume without loss or duplicates', async () => {
    await lab.faults.pauseKinesis();
    const paused = [telemetry('fleet-001'), telemetry('fleet-002'), health('fleet-001')];
    await publish(...paused);
    await lab.idle();
    // The pollers keep polling the paused stream (and fail) instead of stopping.
    await until(
      () => (mappingStats('HealthMapping')?.pollErrors ?? 0) > 0 && delivery('Archive').pollErrors > 0,
      'a failed poll by the health mapping and by the archive delivery stream',
    );

    const telemetryErrors = await errorObjects('fleet_telemetry');
    const healthErrors = await errorObjects('fleet_health');
    expect(telemetryErrors).toHaveLength(2);
    expect(healthErrors).toHaveLength(1);
    const streamName = lab.topology.streams.Stream;
    for (const { key, body } of [...telemetryErrors, ...healthErrors]) {
      const m = /^(fleet_\w+)\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d{13})-[0-9a-f-]{36}\.json$/.exec(key);
      expect(m).not.toBeNull();
      expect(new Date(Number(m?.[6])).toISOString().slice(0, 13)).toBe(
        `${m?.[2]}-${m?.[3]}-${m?.[4]}T${m?.[5]}`,
      );
      expect(body).toEqual({
        ruleName: m?.[1],
        topic: expect.stringMatching(/^dt\/fleet\/fleet-00[12]\/(telemetry|health)$/),
        cloudwatchTraceId: expect.any(String),
        clientId: expect.stringMatching(/^fleet-00[12]$/),
        base64OriginalPayload: expect.any(String),
        failures: [
          {
            failedAction: 'KinesisAction',
            failedResource: streamName,
            errorMessage: expect.stringMatching(/did not complete within 800 ms|TimeoutError/),
          },
        ],
      });
    }
    expect(healthErrors[0].body.topic).toBe('dt/fleet/fleet-001/health');
    expect(JSON.parse(Buffer.from(healthErrors[0].body.base64OriginalPayload, 'base64').toString())).toEqual(
      paused[2].payload,
    );
    expect(lab.stats().rules.find((r) => r.ruleName === 'fleet_telemetry')).toMatchObject({
      actionFailures: 2,
      errorActions: 2,
      errorActionFailures: 0,
    });

    await lab.faults.resumeKinesis();
    await publish(telemetry('fleet-002'), health('fleet-002'));
    await lab.idle();
    expect(await lab.streamsIdle(15_000)).toBe(true);
    await lab.flushFirehose();

    const { records } = await archive();
    const traces = records.map((r) => r.traceId);
    expect(new Set(traces).size).toBe(traces.length); // nothing archived twice
    expect(records).toHaveLength(7); // 5 before the pause + 2 after; none of the 3 that failed
    const failedTraces = [...telemetryErrors, ...healthErrors].map((e) => e.body.cloudwatchTraceId);
    expect(traces.filter((t) => failedTraces.includes(t))).toEqual([]);
    const bootIds = processed().map((p) => p.bootId);
    expect(bootIds.sort()).toEqual(['boot-1', 'boot-2', 'boot-4']);
  });

  test('restarted pollers start after their checkpoints: nothing acknowledged is delivered again', async () => {
    await lab.faults.restartPollers();
    await publish(health('fleet-001'));
    await lab.idle();
    expect(await lab.streamsIdle(10_000)).toBe(true);
    await lab.flushFirehose();
    expect(
      processed()
        .map((p) => p.bootId)
        .sort(),
    ).toEqual(['boot-1', 'boot-2', 'boot-4', 'boot-5']);
    const { records } = await archive();
    expect(records).toHaveLength(8);
    expect(new Set(records.map((r) => r.traceId)).size).toBe(8);
  });

  test('BisectBatchOnFunctionError isolates a poison record, which goes to the on-failure queue after one retry', async () => {
    const batch = ['6.0.0', '6.0.1', '6.6.6', '6.0.2'].map((fw) => health('fleet-002', fw));
    await publish(...batch);
    await lab.idle();
    expect(await lab.streamsIdle(15_000)).toBe(true);
    const [p1, p2, p3, p4] = batch.map((m) => m.payload.bootId);
    expect(fnLogs('Poison').map((l) => l.poisonBatch)).toEqual([[p1, p2], [p4]]);
    expect(mappingStats('PoisonMapping')).toMatchObject(BISECTED_POISON_COUNTS);
    const poisonSeq = processed().find((p) => p.bootId === p3)?.processed;
    expect(dlq('esm:PoisonMapping')).toEqual([
      retriesExhaustedAfterFunctionError(lab.topology.functions.Poison.arn, 2, {
        shardId: expect.stringMatching(/^shardId-0+[01]$/),
        startSequenceNumber: poisonSeq,
        endSequenceNumber: poisonSeq,
        batchSize: 1,
        streamArn: expect.stringMatching(/:stream\/Lab-Stream-/),
      }),
    ]);
  });

  test('a record the consumer reports as failed is retried once, then described to the on-failure queue', async () => {
    const bad = health('fleet-001', '9.9.9');
    await publish(bad);
    await lab.idle();
    expect(await lab.streamsIdle(15_000)).toBe(true);
    expect(processed().some((p) => p.bootId === bad.payload.bootId)).toBe(false);
    const [message] = dlq('esm:HealthMapping');
    expect(message.requestContext).toMatchObject({
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount: 2,
    });
    expect(message.responseContext).toEqual({ statusCode: 200, executedVersion: '$LATEST' });
    expect(message.KinesisBatchInfo).toMatchObject({ batchSize: 1 });
    expect(mappingStats('HealthMapping')).toMatchObject({ partialFailures: 2, sentToOnFailure: 1 });
  });

  test('a Firehose Lambda processor: transformed records archived, dropped ones left out, failed ones under the error prefix', async () => {
    await lab.flushFirehose();
    const bucket = lab.outputsByStack.Lab.ProcessedBucket;
    const keys = await lab.s3.listKeys(bucket);
    const name = delivery('Processed').name;
    const data = keys.filter((k) => k.startsWith('health/'));
    const errors = keys.filter((k) => k.startsWith('errors/'));
    for (const k of data)
      expect(k).toMatch(new RegExp(`^health/${name}-1-\\d{4}(-\\d{2}){5}-[0-9a-f-]{36}$`));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`^errors/processing-failed/${name}-1-`));
    const health = (
      await Promise.all(
        data.map(async (k) => (await getObject(bucket, k)).toString().split('\n').filter(Boolean)),
      )
    )
      .flat()
      .map((l) => JSON.parse(l) as StreamRecord);
    expect(health.every((r) => r.type === 'health' && typeof r.transformedFrom === 'string')).toBe(true);
    expect(health.map((r) => r.fw)).not.toContain('9.9.9');
    const [failed] = (await getObject(bucket, errors[0]))
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(failed).toEqual({
      attemptsMade: 1,
      arrivalTimestamp: expect.any(Number),
      errorCode: 'Lambda.ProcessingFailedStatus',
      errorMessage: expect.any(String),
      attemptEndingTimestamp: expect.any(Number),
      rawData: expect.any(String),
      lambdaArn: lab.topology.functions.Transform.arn,
    });
    expect(JSON.parse(Buffer.from(failed.rawData as string, 'base64').toString())).toMatchObject({
      fw: '9.9.9',
    });
    const d = delivery('Processed');
    const archived = delivery('Archive').recordsArchived;
    expect(d.recordsRead).toBe(archived);
    expect(d).toMatchObject({ recordsArchived: health.length, recordsFailed: 1, errorObjects: 1 });
    expect(d.recordsDropped + d.recordsArchived + d.recordsFailed).toBe(d.recordsRead);
  });
});
