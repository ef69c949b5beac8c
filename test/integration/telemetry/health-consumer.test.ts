/**
 * The BUNDLED health consumer against dynalite on loopback, with Kinesis events shaped as Lambda
 * delivers them: partial batch failures, the dead-letter queue (a loopback SQS), the lastSeen
 * throttle, firmware changes and their trail entry under retries, report ordering, Last Wills,
 * and the EMF documents and log lines it writes.
 */
import type {
  Context,
  KinesisStreamBatchResponse,
  KinesisStreamEvent,
  KinesisStreamRecord,
} from 'aws-lambda';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ENV } from '../../../core/env';
import { DeviceRecord, Ring } from '../../../core/model';
import { Registry, RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import { deviceRecord, putDevice } from '../hook/fixtures';
import {
  captureStdout,
  DynamoFaults,
  EmfDocument,
  FakeSqs,
  HEALTH_ENTRY,
  healthRecord,
  kinesisEvent,
  kinesisRecord,
  reportRecord,
  startFakeSqs,
  startFaultyDynamo,
  Stdout,
  STREAM_ARN,
  T0,
} from './support';

type Consumer = (event: KinesisStreamEvent, context?: Context) => Promise<KinesisStreamBatchResponse>;

const INTERVAL_S = 900;
const MIN = 60_000;

let db: LocalDynamo;
let faults: DynamoFaults;
let sqs: FakeSqs;
let tables: RegistryTableNames;
let registry: Registry;
let stdout: Stdout;
let consume: Consumer;

const env = (over: Record<string, string> = {}): Record<string, string> => ({
  [ENV.devicesTable]: tables.devices,
  [ENV.eventsTable]: tables.events,
  [ENV.thingNamePrefix]: 'fleet',
  [ENV.lastSeenIntervalSeconds]: String(INTERVAL_S),
  [ENV.lowHeapBytes]: '16384',
  [ENV.weakRssiDbm]: '-85',
  [ENV.maxFirmwareDimensions]: '20',
  [ENV.healthDeadLetterQueueUrl]: sqs.queueUrl,
  AWS_ENDPOINT_URL_DYNAMODB: faults.endpoint,
  AWS_REGION: 'us-east-1',
  POWERTOOLS_METRICS_DISABLED: 'false',
  POWERTOOLS_LOG_LEVEL: 'INFO',
  ...over,
});

/** A new instance of the bundled function: a cold container (empty cache, new firmware dimensions). */
const coldStart = (over: Record<string, string> = {}): Consumer =>
  loadBundledHandler<Consumer>(HEALTH_ENTRY, env(over));

const thing = (serial: string): string => `fleet-${serial}`;
const seq = (r: KinesisStreamRecord): string => r.kinesis.sequenceNumber;
const failed = (...records: KinesisStreamRecord[]): KinesisStreamBatchResponse => ({
  batchItemFailures: records.map((r) => ({ itemIdentifier: seq(r) })),
});
const OK: KinesisStreamBatchResponse = { batchItemFailures: [] };

async function activeDevice(serial: string, over: Partial<DeviceRecord> = {}): Promise<void> {
  await putDevice(
    db.doc,
    tables,
    deviceRecord(serial, 'LOT-H', {
      status: 'ACTIVE',
      thingName: thing(serial),
      ring: 'canary',
      certificateId: 'c'.repeat(64),
      revision: 2,
      ...over,
    }),
  );
}

const device = async (serial: string): Promise<DeviceRecord> => (await registry.getDevice(serial))!;
const firmwareEntries = async (serial: string) =>
  (await readTrail(db.doc, tables.events, serial)).filter((e) => e.type === 'FIRMWARE_CHANGED');
const iso = (ms: number): string => new Date(ms).toISOString();

/** The values of metric `name` over the EMF documents, with each document's dimension values. */
function metricValues(
  docs: EmfDocument[],
  name: string,
): { dims: Record<string, string>; values: number[] }[] {
  return docs.flatMap((d) => {
    const cw = d._aws.CloudWatchMetrics[0];
    if (!cw.Metrics.some((m) => m.Name === name)) return [];
    const dims = Object.fromEntries(cw.Dimensions.flat().map((k) => [k, String(d[k])]));
    const v = d[name] as number | number[];
    return [{ dims, values: Array.isArray(v) ? v : [v] }];
  });
}

const sum = (docs: EmfDocument[], name: string, dims: Record<string, string> = {}): number =>
  metricValues(docs, name)
    .filter((m) => Object.entries(dims).every(([k, v]) => m.dims[k] === v))
    .flatMap((m) => m.values)
    .reduce((a, b) => a + b, 0);

beforeAll(async () => {
  db = await startDynalite();
  tables = await createRegistryTables(db.client, 'Health');
  registry = new Registry(db.doc, tables);
  faults = await startFaultyDynamo(db.endpoint, () => tables.events);
  sqs = await startFakeSqs();
  stdout = captureStdout();
  consume = coldStart();
});

beforeEach(() => {
  stdout.clear();
  sqs.messages.splice(0);
  sqs.mode = 'ok';
  faults.failUpdates.clear();
  faults.failTrailPuts = 0;
  faults.failBatchGets = 0;
});

afterAll(async () => {
  stdout.restore();
  await sqs.stop();
  await faults.stop();
  await db.stop();
  cleanBundles();
});

test("a device's first reports write its baseline health state once", async () => {
  await activeDevice('SN-H-0001');
  const event = kinesisEvent(
    reportRecord(thing('SN-H-0001'), { ts: T0, uptimeS: 600 }),
    reportRecord(thing('SN-H-0001'), { ts: T0 + MIN, uptimeS: 660 }),
  );
  expect(await consume(event)).toEqual(OK);
  expect(await device('SN-H-0001')).toMatchObject({
    healthBootId: 'boot-1',
    healthUptimeS: 660,
    healthTs: T0 + MIN,
    lastSeen: iso(T0 + MIN + 1000),
    currentFirmware: '1.0.0',
    status: 'ACTIVE',
    revision: 2,
  });
  expect(faults.updates.get('SN-H-0001')).toBe(1);
  expect(await firmwareEntries('SN-H-0001')).toEqual([]);
});

test("a failed registry write fails only that device's records, by their sequence numbers; the retry completes", async () => {
  await activeDevice('SN-H-0101');
  await activeDevice('SN-H-0102');
  const a1 = reportRecord(thing('SN-H-0101'), { ts: T0 });
  const b1 = reportRecord(thing('SN-H-0102'), { ts: T0 });
  const a2 = reportRecord(thing('SN-H-0101'), { ts: T0 + MIN, uptimeS: 660 });
  const b2 = reportRecord(thing('SN-H-0102'), { ts: T0 + MIN, uptimeS: 660 });
  faults.failUpdates.add('SN-H-0101');
  expect(await consume(kinesisEvent(a1, b1, a2, b2))).toEqual(failed(a1, a2));
  expect((await device('SN-H-0101')).healthTs).toBeUndefined();
  expect(await device('SN-H-0102')).toMatchObject({ healthTs: T0 + MIN });
  // The succeeded device's reports are counted, the failed one's are not.
  expect(sum(stdout.emf(), 'HealthReports')).toBe(2);
  expect(sum(stdout.emf(), 'ActiveDevices')).toBe(1);
  expect(stdout.logs()).toContainEqual(
    expect.objectContaining({
      level: 'ERROR',
      message: 'registry writes failed; the records of these devices are retried',
      devices: ['SN-H-0101'],
    }),
  );

  // Lambda resumes the shard from the lowest failed sequence number: every record again.
  faults.failUpdates.clear();
  stdout.clear();
  expect(await consume(kinesisEvent(a1, b1, a2, b2))).toEqual(OK);
  expect(await device('SN-H-0101')).toMatchObject({ healthTs: T0 + MIN, healthUptimeS: 660 });
  // b's reports are stale now: no second write, not counted twice.
  expect(faults.updates.get('SN-H-0102')).toBe(1);
  expect(sum(stdout.emf(), 'HealthReports')).toBe(2);
});

test('a registry read that fails makes the records of its devices batch item failures', async () => {
  await activeDevice('SN-H-0201');
  const r = reportRecord(thing('SN-H-0201'));
  const bad = kinesisRecord('not json', thing('SN-H-0201'));
  faults.failBatchGets = 1;
  expect(await consume(kinesisEvent(bad, r))).toEqual(failed(r));
  expect(sqs.messages).toHaveLength(1);
  expect(await consume(kinesisEvent(r))).toEqual(OK);
  expect(await device('SN-H-0201')).toMatchObject({ healthBootId: 'boot-1' });
});

describe('records the consumer cannot use', () => {
  const cases: [string, KinesisStreamRecord, 'MALFORMED' | 'UNKNOWN_DEVICE', RegExp][] = [
    ['not JSON', kinesisRecord('{"ts": 1', 'x'), 'MALFORMED', /not JSON/],
    ['fields missing', healthRecord(thing('SN-H-0301'), { ts: T0 }), 'MALFORMED', /fw: expected string/],
    [
      'a field of the wrong type',
      healthRecord(thing('SN-H-0301'), {
        ts: T0,
        fw: '1.0.0',
        bootId: 'b',
        uptimeS: '60',
        resetReason: 'POWER_ON',
        heapFreeB: 1,
        rssiDbm: -50,
      }),
      'MALFORMED',
      /uptimeS: expected number, received string/,
    ],
    [
      'a firmware version that is not MAJOR.MINOR.PATCH',
      healthRecord(thing('SN-H-0301'), {
        ts: T0,
        fw: 'v1',
        bootId: 'b',
        uptimeS: 60,
        resetReason: 'POWER_ON',
        heapFreeB: 1,
        rssiDbm: -50,
      }),
      'MALFORMED',
      /fw: does not match/,
    ],
    [
      'a report time ahead of the receive time',
      healthRecord(
        thing('SN-H-0301'),
        {
          ts: T0 + 60 * MIN,
          fw: '1.0.0',
          bootId: 'b',
          uptimeS: 60,
          resetReason: 'POWER_ON',
          heapFreeB: 1,
          rssiDbm: -50,
        },
        T0,
      ),
      'MALFORMED',
      /set the device clock/,
    ],
    [
      'a telemetry record',
      kinesisRecord(
        { type: 'telemetry', thing: 'fleet-SN-H-0301', receivedAt: T0, seq: 1, readings: [] },
        'x',
      ),
      'MALFORMED',
      /not health/,
    ],
    [
      'a serial not in the registry',
      reportRecord(thing('SN-H-NOPE')),
      'UNKNOWN_DEVICE',
      /SN-H-NOPE .* not in the registry/,
    ],
    ['a thing without the fleet prefix', reportRecord('other-SN-H-0301'), 'UNKNOWN_DEVICE', /prefix/],
  ];

  beforeAll(async () => {
    await activeDevice('SN-H-0301');
    await activeDevice('SN-H-0302');
  });

  test.each(cases)(
    '%s goes to the dead-letter queue and does not fail the batch',
    async (_name, record, reason, problem) => {
      const good = reportRecord(thing('SN-H-0301'), { ts: T0 + Math.floor(Math.random() * 1e6) });
      expect(await consume(kinesisEvent(record, good))).toEqual(OK);
      expect(sqs.messages).toHaveLength(1);
      const data = Buffer.from(record.kinesis.data, 'base64').toString('utf8');
      let decoded: unknown = data;
      try {
        decoded = JSON.parse(data);
      } catch {
        // the text itself
      }
      expect(sqs.messages[0].doc).toEqual(
        expect.objectContaining({
          reason,
          problem: expect.stringMatching(problem),
          sequenceNumber: seq(record),
          partitionKey: record.kinesis.partitionKey,
          arrivedAt: iso(record.kinesis.approximateArrivalTimestamp * 1000),
          eventSourceARN: STREAM_ARN,
          data: decoded,
        }),
      );
      expect(metricValues(stdout.emf(), 'RejectedHealthRecords')).toEqual([
        { dims: { service: 'health-consumer', Reason: reason }, values: [1] },
      ]);
    },
  );

  test('the requests are SendMessageBatch calls in the JSON protocol, signed for sqs', () => {
    const last = sqs.requests[sqs.requests.length - 1];
    expect(last).toMatchObject({
      target: 'AmazonSQS.SendMessageBatch',
      contentType: 'application/x-amz-json-1.0',
      authorization: expect.stringMatching(
        /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/us-east-1\/sqs\/aws4_request/,
      ),
    });
  });

  test.each(['refuse', 'error500'] as const)(
    'a dead-letter queue that does not take a record (%s) makes it a batch item failure',
    async (mode) => {
      const bad = kinesisRecord('nope', 'x');
      const good = reportRecord(thing('SN-H-0302'), { ts: T0 + Math.floor(Math.random() * 1e6) });
      sqs.mode = mode;
      expect(await consume(kinesisEvent(bad, good))).toEqual(failed(bad));
      expect(sum(stdout.emf(), 'RejectedHealthRecords')).toBe(0);
    },
  );

  test('a digest that does not match: the record is on the queue, so it is done, with a warning', async () => {
    const bad = kinesisRecord('nope', 'x');
    sqs.mode = 'badDigest';
    expect(await consume(kinesisEvent(bad))).toEqual(OK);
    expect(sqs.messages.map((m) => m.doc.sequenceNumber)).toEqual([seq(bad)]);
    expect(sum(stdout.emf(), 'RejectedHealthRecords')).toBe(1);
    expect(stdout.logs()).toContainEqual(
      expect.objectContaining({
        level: 'WARN',
        message: expect.stringMatching(/MD5 digest that does not match/),
        records: 1,
      }),
    );
  });

  test("when every record of the batch failed, the whole batch fails with Powertools' error", async () => {
    sqs.mode = 'error500';
    const answer = consume(kinesisEvent(kinesisRecord('nope', 'x'), kinesisRecord('[]', 'y')));
    await expect(answer).rejects.toThrow('All records failed processing. See individual errors below.');
    await expect(answer).rejects.toMatchObject({
      name: 'FullBatchFailureError',
      recordErrors: [
        expect.objectContaining({ message: expect.stringMatching(/^dead-letter queue refused the record/) }),
        expect.objectContaining({ message: expect.stringMatching(/^dead-letter queue refused the record/) }),
      ],
    });
  });

  test('a huge record goes to the queue with its data cut', async () => {
    const big = kinesisRecord(`"${'x'.repeat(400 * 1024)}`, 'x');
    expect(await consume(kinesisEvent(big))).toEqual(OK);
    expect(sqs.messages[0].doc).toMatchObject({
      reason: 'MALFORMED',
      dataTruncated: true,
      dataBytes: 400 * 1024 + 1,
    });
    expect(Buffer.byteLength(sqs.messages[0].body)).toBeLessThanOrEqual(256 * 1024);
  });
});

test('lastSeen is written at most once per lastSeen interval', async () => {
  const serial = 'SN-H-0401';
  await activeDevice(serial);
  const at = (minutes: number, uptimeS: number) =>
    reportRecord(thing(serial), { ts: T0 + minutes * MIN, uptimeS });
  expect(await consume(kinesisEvent(at(0, 600)))).toEqual(OK);
  expect(faults.updates.get(serial)).toBe(1);
  const baseline = await device(serial);
  stdout.clear();

  // Within the interval: nothing is written.
  expect(await consume(kinesisEvent(at(5, 900), at(10, 1200)))).toEqual(OK);
  expect(faults.updates.get(serial)).toBe(1);
  expect(await device(serial)).toEqual(baseline);
  expect(sum(stdout.emf(), 'LastSeenWrites')).toBe(0);
  expect(sum(stdout.emf(), 'HealthReports')).toBe(2);

  // Past it: one write of lastSeen, uptime and report time; the boot id stays.
  stdout.clear();
  expect(await consume(kinesisEvent(at(15, 1500), at(16, 1560)))).toEqual(OK);
  expect(faults.updates.get(serial)).toBe(2);
  expect(await device(serial)).toMatchObject({
    lastSeen: iso(T0 + 16 * MIN + 1000),
    healthUptimeS: 1560,
    healthTs: T0 + 16 * MIN,
    healthBootId: 'boot-1',
  });
  expect(sum(stdout.emf(), 'LastSeenWrites')).toBe(1);

  // A cold container judges from the registry: still within the interval, nothing written.
  const cold = coldStart();
  expect(await cold(kinesisEvent(at(20, 1800)))).toEqual(OK);
  expect(faults.updates.get(serial)).toBe(2);
});

test('a state write that finds a later lastSeen makes no lastSeen write due before the interval after it', async () => {
  const serial = 'SN-H-0402';
  await activeDevice(serial);
  const warm = coldStart();
  expect(
    await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0, bootId: 'b1', uptimeS: 60 }))),
  ).toEqual(OK);
  // A connect recorded after this container read the device, later than the next report.
  await db.doc.send(
    new UpdateCommand({
      TableName: tables.devices,
      Key: { serial },
      UpdateExpression: 'SET lastSeen = :seen',
      ExpressionAttributeValues: { ':seen': iso(T0 + 30 * MIN) },
    }),
  );
  const before = faults.updates.get(serial)!;
  // A new boot received before that connect: the state is written, lastSeen stays (one try with
  // lastSeen, one without).
  expect(
    await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0 + 20 * MIN, bootId: 'b2', uptimeS: 5 }))),
  ).toEqual(OK);
  expect(await device(serial)).toMatchObject({ healthBootId: 'b2', lastSeen: iso(T0 + 30 * MIN) });
  expect(faults.updates.get(serial)).toBe(before + 2);
  // The stored lastSeen is at least that report's: none is due within the interval after it.
  expect(
    await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0 + 25 * MIN, bootId: 'b2', uptimeS: 305 }))),
  ).toEqual(OK);
  expect(faults.updates.get(serial)).toBe(before + 2);
});

describe('firmware changes', () => {
  const serial = 'SN-H-0501';
  const fwEvent = (): KinesisStreamEvent =>
    kinesisEvent(
      reportRecord(thing(serial), { ts: T0, fw: '1.0.0', bootId: 'boot-1', uptimeS: 7200 }),
      reportRecord(thing(serial), {
        ts: T0 + MIN,
        fw: '1.1.0',
        bootId: 'boot-2',
        uptimeS: 30,
        resetReason: 'REQUESTED',
      }),
      reportRecord(thing(serial), {
        ts: T0 + 2 * MIN,
        fw: '1.1.0',
        bootId: 'boot-2',
        uptimeS: 90,
        resetReason: 'REQUESTED',
      }),
    );

  beforeAll(async () => {
    await activeDevice(serial, {
      currentFirmware: '1.0.0',
      healthBootId: 'boot-1',
      healthUptimeS: 3600,
      healthTs: T0 - 60 * MIN,
      lastSeen: iso(T0 - 60 * MIN),
    });
  });

  test('the registry takes the new version and the trail gets exactly one FIRMWARE_CHANGED entry', async () => {
    expect(await consume(fwEvent())).toEqual(OK);
    expect(await device(serial)).toMatchObject({
      currentFirmware: '1.1.0',
      healthBootId: 'boot-2',
      healthUptimeS: 90,
      healthTs: T0 + 2 * MIN,
      lastFirmwareChange: { from: '1.0.0', to: '1.1.0', at: iso(T0 + MIN) },
    });
    expect(await firmwareEntries(serial)).toEqual([
      expect.objectContaining({
        at: iso(T0 + MIN),
        lot: 'LOT-H',
        detail: { from: '1.0.0', to: '1.1.0' },
        sk: `${iso(T0 + MIN)}#FIRMWARE_CHANGED#1.1.0`,
      }),
    ]);
    const docs = stdout.emf();
    expect(sum(docs, 'FirmwareChanges', { FirmwareVersion: '1.1.0', Ring: 'canary' })).toBe(1);
    // An update is an expected reboot.
    expect(sum(docs, 'UnexpectedReboots')).toBe(0);
  });

  test('a retry of the batch, warm or cold, adds nothing', async () => {
    const updates = faults.updates.get(serial);
    expect(await consume(fwEvent())).toEqual(OK);
    expect(await coldStart()(fwEvent())).toEqual(OK);
    expect(faults.updates.get(serial)).toBe(updates);
    expect(await firmwareEntries(serial)).toHaveLength(1);
    expect(sum(stdout.emf(), 'FirmwareChanges')).toBe(0);
    expect(sum(stdout.emf(), 'HealthReports')).toBe(0);
  });

  test('an entry whose append failed after the registry write is completed by the retry', async () => {
    const s = 'SN-H-0502';
    await activeDevice(s, {
      currentFirmware: '2.0.0',
      healthBootId: 'a',
      healthUptimeS: 10,
      healthTs: T0 - MIN,
    });
    const event = kinesisEvent(
      reportRecord(thing(s), { ts: T0, fw: '2.1.0', bootId: 'b', uptimeS: 5, resetReason: 'REQUESTED' }),
    );
    faults.failTrailPuts = 1;
    await expect(consume(event)).rejects.toThrow(/All records failed/);
    expect(await device(s)).toMatchObject({ currentFirmware: '2.1.0', healthBootId: 'b' });
    expect(await firmwareEntries(s)).toEqual([]);
    // Counted once, when its registry write committed.
    expect(sum(stdout.emf(), 'FirmwareChanges', { FirmwareVersion: '2.1.0' })).toBe(1);

    stdout.clear();
    expect(await consume(event)).toEqual(OK);
    expect(await firmwareEntries(s)).toEqual([
      expect.objectContaining({ at: iso(T0), detail: { from: '2.0.0', to: '2.1.0' } }),
    ]);
    expect(await consume(event)).toEqual(OK);
    expect(await firmwareEntries(s)).toHaveLength(1);
    expect(sum(stdout.emf(), 'FirmwareChanges')).toBe(0);
  });
});

describe('ordering', () => {
  test('an older report arriving after a newer one never rolls the registry back', async () => {
    const serial = 'SN-H-0601';
    await activeDevice(serial);
    const newer = reportRecord(thing(serial), { ts: T0 + 10 * MIN, bootId: 'boot-3', uptimeS: 60 });
    const older = reportRecord(thing(serial), {
      ts: T0 + 5 * MIN,
      bootId: 'boot-2',
      uptimeS: 60,
      resetReason: 'PANIC',
    });
    expect(await consume(kinesisEvent(newer))).toEqual(OK);
    const stored = await device(serial);
    stdout.clear();
    expect(await consume(kinesisEvent(older))).toEqual(OK);
    expect(await coldStart()(kinesisEvent(older))).toEqual(OK);
    expect(await device(serial)).toEqual(stored);
    expect(sum(stdout.emf(), 'UnexpectedReboots')).toBe(0);
    expect(sum(stdout.emf(), 'HealthReports')).toBe(0);
  });

  test('a container whose cache is behind loses the conditional write to the newer state', async () => {
    const serial = 'SN-H-0602';
    await activeDevice(serial);
    const warm = coldStart();
    const other = coldStart();
    expect(await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0, bootId: 'b1' })))).toEqual(OK);
    // Another container records a newer boot.
    expect(
      await other(kinesisEvent(reportRecord(thing(serial), { ts: T0 + 20 * MIN, bootId: 'b3', uptimeS: 5 }))),
    ).toEqual(OK);
    const stored = await device(serial);
    // The warm container sees a boot between the two, newer than what it cached.
    expect(
      await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0 + 10 * MIN, bootId: 'b2', uptimeS: 5 }))),
    ).toEqual(OK);
    expect(await device(serial)).toEqual(stored);
    // It re-read the registry: the next report of the stored boot is judged against it.
    stdout.clear();
    expect(
      await warm(kinesisEvent(reportRecord(thing(serial), { ts: T0 + 21 * MIN, bootId: 'b3', uptimeS: 65 }))),
    ).toEqual(OK);
    expect(sum(stdout.emf(), 'UnexpectedReboots')).toBe(0);
  });
});

test('a Last Will is counted and writes nothing', async () => {
  const serial = 'SN-H-0701';
  await activeDevice(serial);
  expect(await consume(kinesisEvent(healthRecord(thing(serial), { connection: 'lost' })))).toEqual(OK);
  expect(faults.updates.get(serial)).toBeUndefined();
  expect(metricValues(stdout.emf(), 'ConnectionLost')).toEqual([
    { dims: { service: 'health-consumer' }, values: [1] },
  ]);
});

describe('metrics and logs', () => {
  const serials = Array.from({ length: 6 }, (_, i) => `SN-H-08${String(i).padStart(2, '0')}`);
  const rings: Ring[] = ['canary', 'early', 'broad', 'broad', 'broad', 'broad'];
  let docs: EmfDocument[];
  let logs: Record<string, unknown>[];

  beforeAll(async () => {
    for (const [i, s] of serials.entries())
      await activeDevice(s, {
        ring: rings[i],
        currentFirmware: '3.0.0',
        healthBootId: 'a',
        healthUptimeS: 100,
        healthTs: T0 - MIN,
        lastSeen: iso(T0),
      });
    // A container that names two firmware versions at most.
    const capped = coldStart({ [ENV.maxFirmwareDimensions]: '2' });
    const records: KinesisStreamRecord[] = [];
    // 150 reports of one cohort (3.0.0, broad), one in ten starting an unexpected reboot.
    for (let i = 1; i <= 150; i++) {
      const s = serials[2 + (i % 4)];
      const reboot = i % 10 === 0;
      records.push(
        reportRecord(thing(s), {
          ts: T0 + i * 1000,
          fw: '3.0.0',
          bootId: reboot ? `r${i}` : 'a',
          uptimeS: reboot ? 1 : 100 + i,
          resetReason: reboot ? 'WATCHDOG' : 'POWER_ON',
          heapFreeB: i % 3 === 0 ? 1000 : 60_000,
          rssiDbm: i % 5 === 0 ? -95 : -60,
        }),
      );
    }
    // Other versions: 3.1.0 (canary), 3.2.0 and 3.3.0 (early) past the cap of two.
    records.push(
      reportRecord(thing(serials[0]), {
        ts: T0 + 200_000,
        fw: '3.1.0',
        bootId: 'u',
        uptimeS: 1,
        resetReason: 'REQUESTED',
      }),
    );
    records.push(
      reportRecord(thing(serials[1]), {
        ts: T0 + 200_000,
        fw: '3.2.0',
        bootId: 'u',
        uptimeS: 1,
        resetReason: 'REQUESTED',
      }),
    );
    records.push(
      reportRecord(thing(serials[1]), {
        ts: T0 + 201_000,
        fw: '3.3.0',
        bootId: 'v',
        uptimeS: 1,
        resetReason: 'REQUESTED',
      }),
    );
    stdout.clear();
    expect(await capped(kinesisEvent(...records))).toEqual(OK);
    docs = stdout.emf();
    logs = stdout.logs();
  });

  test('every document is in the fleet namespace with bounded dimensions, never a serial or thing', () => {
    expect(docs.length).toBeGreaterThan(0);
    const allowed = [['service', 'FirmwareVersion', 'Ring'], ['service', 'Reason'], ['service']].map((d) =>
      d.join(),
    );
    for (const d of docs) {
      const cw = d._aws.CloudWatchMetrics[0];
      expect(cw.Namespace).toBe('IotFleet');
      for (const set of cw.Dimensions) expect(allowed).toContain(set.join());
      expect(JSON.stringify(d)).not.toMatch(/SN-H-|fleet-SN/);
    }
  });

  test('versions past the cap share the dimension value "other"', () => {
    const versions = new Set(metricValues(docs, 'HealthReports').map((m) => m.dims.FirmwareVersion));
    expect(versions).toEqual(new Set(['3.0.0', '3.1.0', 'other']));
    expect(sum(docs, 'HealthReports', { FirmwareVersion: 'other', Ring: 'early' })).toBe(2);
  });

  test('UnexpectedRebootRate holds one sample per report, at most 100 per document, each with its cohort', () => {
    const rate = metricValues(docs, 'UnexpectedRebootRate').filter((m) => m.dims.FirmwareVersion === '3.0.0');
    expect(rate.map((m) => m.values.length)).toEqual([100, 50]);
    for (const m of rate)
      expect(m.dims).toEqual({ service: 'health-consumer', FirmwareVersion: '3.0.0', Ring: 'broad' });
    const samples = rate.flatMap((m) => m.values);
    expect(new Set(samples)).toEqual(new Set([0, 100]));
    // The average of the samples is the share of reports that started an unexpected reboot.
    expect(samples.reduce((a, b) => a + b, 0) / samples.length).toBeCloseTo((15 / 150) * 100);
  });

  test('the cohort counters follow core/health.ts', () => {
    const broad = { FirmwareVersion: '3.0.0', Ring: 'broad' };
    expect(sum(docs, 'HealthReports', broad)).toBe(150);
    // Distinct devices of the batch per cohort: four units reported 3.0.0 in the broad ring; one
    // unit reported both versions past the cap, one device of the merged cohort.
    expect(metricValues(docs, 'ActiveDevices')).toEqual([
      { dims: { service: 'health-consumer', ...broad }, values: [4] },
      { dims: { service: 'health-consumer', FirmwareVersion: '3.1.0', Ring: 'canary' }, values: [1] },
      { dims: { service: 'health-consumer', FirmwareVersion: 'other', Ring: 'early' }, values: [1] },
    ]);
    expect(sum(docs, 'UnexpectedReboots', broad)).toBe(15);
    expect(sum(docs, 'CrashResets', broad)).toBe(15);
    expect(sum(docs, 'LowHeapReports', broad)).toBe(50);
    expect(sum(docs, 'WeakRssiReports', broad)).toBe(30);
    expect(sum(docs, 'FirmwareChanges', { FirmwareVersion: '3.1.0', Ring: 'canary' })).toBe(1);
    expect(sum(docs, 'FirmwareChanges', { FirmwareVersion: 'other', Ring: 'early' })).toBe(1);
  });

  test('one summary line per batch at INFO, without per-device detail', () => {
    const info = logs.filter((l) => l.level === 'INFO');
    expect(info).toEqual([
      expect.objectContaining({
        message: 'health batch',
        service: 'health-consumer',
        records: 153,
        reports: 153,
        devices: 6,
        writes: { state: 4, lastSeen: 0, lost: 0 },
        failedRecords: 0,
      }),
    ]);
    expect(JSON.stringify(info)).not.toContain('SN-H-');
  });
});

test('a malformed setting stops the function at init, naming the variable', () => {
  expect(() => coldStart({ [ENV.weakRssiDbm]: '-85dBm' })).toThrow(
    /FLEET_HEALTH_WEAK_RSSI_DBM="-85dBm" is not an integer/,
  );
});
