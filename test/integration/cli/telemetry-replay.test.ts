/**
 * `fleet telemetry replay` in-process against s3rver (the error bucket) and kinesalite (the
 * stream), both on random loopback ports: entries of the error store in the layout of the rules'
 * error actions are claimed under replaying/, re-ingested in the rule's form, moved under
 * replayed/, and never twice; an interrupted run is finished by the next; the time-series rule's
 * entries are counted apart and left in place.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  KinesisClient,
  PutRecordsCommandInput,
  PutRecordsCommandOutput,
} from '@aws-sdk/client-kinesis';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectsV2CommandInput,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ERROR_STORE, ErrorActionMessage } from '../../../core/telemetry';
import type { TelemetryRulesOutput } from '../../../core/stack-outputs';
import { TIME_SERIES_REASON, telemetryReplay } from '../../../cli/commands/telemetry';
import { CliContext, createContext, FleetClients, resolveResources } from '../../../cli/context';
import { EXIT_CODES } from '../../../cli/errors';
import { memorySink, MemorySink } from '../../../cli/output';
import { ContextFactory, main } from '../../../cli/program';
import { readStreamRecords } from '../../../cli/telemetry-store';

// Neither emulator ships type declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const kinesalite = require('kinesalite') as (opts: Record<string, unknown>) => Server;
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};
/* eslint-enable @typescript-eslint/no-require-imports */

const NOW = new Date('2026-07-10T12:00:00.000Z');
const RULES: TelemetryRulesOutput = { telemetry: 'fleet_telemetry', health: 'fleet_health' };
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const region = 'us-east-1';

let s3dir: string;
let s3server: { close(): Promise<void> };
let kinesisServer: Server;
let s3Endpoint: string;
let kinesisEndpoint: string;
let s3: S3Client;
let kinesis: KinesisClient;
const dynamo = new DynamoDBClient({ region, credentials });
const iot = new IoTClient({ region, credentials });

function newS3(): S3Client {
  return new S3Client({
    endpoint: s3Endpoint,
    region,
    credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function newKinesis(): KinesisClient {
  return new KinesisClient({
    endpoint: kinesisEndpoint,
    region,
    credentials,
    requestHandler: new NodeHttpHandler(),
  });
}

beforeAll(async () => {
  s3dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3dir });
  const s3address = await server.run();
  s3server = server;
  s3Endpoint = `http://127.0.0.1:${s3address.port}`;
  kinesisServer = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 });
  await new Promise<void>((resolve) => kinesisServer.listen(0, '127.0.0.1', resolve));
  kinesisEndpoint = `http://127.0.0.1:${(kinesisServer.address() as AddressInfo).port}`;
  s3 = newS3();
  kinesis = newKinesis();
});

afterAll(async () => {
  s3.destroy();
  kinesis.destroy();
  dynamo.destroy();
  iot.destroy();
  await s3server.close();
  await new Promise<void>((resolve) => kinesisServer.close(() => resolve()));
  await rm(s3dir, { recursive: true, force: true });
});

let counter = 0;

/** A new bucket and a new 2-shard stream. */
async function place(): Promise<{ bucket: string; stream: string }> {
  counter += 1;
  const bucket = `errors-${counter}-${Date.now()}`;
  const stream = `telemetry-${counter}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  for (;;) {
    const d = await kinesis.send(new DescribeStreamCommand({ StreamName: stream }));
    if (d.StreamDescription?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { bucket, stream };
}

interface Seed {
  rule: string;
  at: Date;
  topic: string;
  payload: unknown;
  failures: string[];
  clientId?: string;
  traceId?: string;
}

/** Put one error-action message at its key of the error-store layout; returns the key. */
async function seed(bucket: string, e: Seed): Promise<string> {
  const key = `${ERROR_STORE.hourPrefix(e.rule, e.at)}${e.at.getTime()}-${randomUUID()}.json`;
  const raw = typeof e.payload === 'string' ? e.payload : JSON.stringify(e.payload);
  const message: ErrorActionMessage = {
    ruleName: e.rule,
    topic: e.topic,
    cloudwatchTraceId: e.traceId ?? randomUUID(),
    clientId: e.clientId ?? 'client-x',
    base64OriginalPayload: Buffer.from(raw, 'utf8').toString('base64'),
    failures: e.failures.map((failedAction) => ({
      failedAction,
      failedResource: failedAction === 'KinesisAction' ? 'the-stream' : 'the-table',
      errorMessage: `Failed to put the record (${failedAction})`,
    })),
  };
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(message),
      ContentType: 'application/json',
    }),
  );
  return key;
}

async function keys(bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out.sort();
}

/** Every record on the stream: partition key and parsed data, in shard then sequence order. */
async function streamRecords(
  stream: string,
): Promise<{ partitionKey: string; record: Record<string, unknown> }[]> {
  return (await readStreamRecords(kinesis, stream)).map((r) => ({
    partitionKey: r.partitionKey,
    record: JSON.parse(r.data) as Record<string, unknown>,
  }));
}

function context(
  where: { bucket: string; stream: string },
  clients: Partial<FleetClients> = {},
): { ctx: CliContext; out: MemorySink; sleeps: number[] } {
  const out = memorySink();
  const sleeps: number[] = [];
  const ctx = createContext({
    resources: { telemetryErrorBucket: where.bucket, telemetryStream: where.stream, telemetryRules: RULES },
    clients: { dynamo, doc: DynamoDBDocumentClient.from(dynamo), iot, s3, kinesis, ...clients },
    out,
    now: () => NOW,
    actor: 'tester',
    sleep: async (ms) => void sleeps.push(ms),
  });
  return { ctx, out, sleeps };
}

const hoursAgo = (h: number, plusMs = 0): Date => new Date(NOW.getTime() - h * 3_600_000 + plusMs);

const telemetryPayload = {
  seq: 41,
  readings: [{ ts: hoursAgo(1).getTime() - 500, values: { temperature_c: 21.5 } }],
};
const healthPayload = {
  ts: hoursAgo(2).getTime() - 100,
  fw: '1.4.0',
  bootId: 'b-7',
  uptimeS: 3600,
  resetReason: 'POWER_ON',
  heapFreeB: 81_000,
  rssiDbm: -61,
};

/** The mixed error store of the first tests, with the keys of each kind. */
async function mixedStore(bucket: string) {
  const tKinesis = await seed(bucket, {
    rule: RULES.telemetry,
    at: hoursAgo(1),
    topic: 'dt/plant7/fleet-SN1/telemetry',
    payload: { ...telemetryPayload, extra: 'not selected by the rule' },
    failures: ['KinesisAction'],
    clientId: 'fleet-SN1',
    traceId: 'trace-1',
  });
  const hKinesisAndTimestream = await seed(bucket, {
    rule: RULES.health,
    at: hoursAgo(2),
    topic: 'dt/plant7/fleet-SN2/health',
    payload: healthPayload,
    failures: ['KinesisAction', 'RepublishAction'],
    clientId: 'fleet-SN2',
    traceId: 'trace-2',
  });
  // The health rule's republish to the time-series rule failed, its Kinesis action did not.
  const hTimestreamOnly = await seed(bucket, {
    rule: RULES.health,
    at: hoursAgo(2, 5),
    topic: 'dt/plant7/fleet-SN2/health',
    payload: healthPayload,
    failures: ['RepublishAction'],
  });
  const tNotJson = await seed(bucket, {
    rule: RULES.telemetry,
    at: hoursAgo(1, 7),
    topic: 'dt/plant7/fleet-SN1/telemetry',
    payload: 'seq=42;temp=21.7',
    failures: ['KinesisAction'],
  });
  const tBasicIngest = await seed(bucket, {
    rule: RULES.telemetry,
    at: hoursAgo(3),
    topic: `$aws/rules/${RULES.telemetry}/dt/plant7/fleet-SN3/telemetry`,
    payload: { seq: 7, readings: [{ ts: hoursAgo(3).getTime(), values: { humidity_pct: 40 } }] },
    failures: ['KinesisAction'],
    clientId: 'fleet-SN3',
    traceId: 'trace-3',
  });
  const tBadTopic = await seed(bucket, {
    rule: RULES.telemetry,
    at: hoursAgo(3, 9),
    topic: 'dt/plant7/telemetry',
    payload: telemetryPayload,
    failures: ['KinesisAction'],
  });
  // Replayed before: never listed again.
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `replayed/${RULES.telemetry}/2026/07/10/10/${hoursAgo(2).getTime()}-old.json`,
      Body: '{}',
    }),
  );
  return { tKinesis, hKinesisAndTimestream, hTimestreamOnly, tNotJson, tBasicIngest, tBadTopic };
}

describe('telemetry replay', () => {
  test('re-ingests Kinesis failures in the rule form, moves them, skips and reports the rest; a second run replays nothing', async () => {
    const where = await place();
    const k = await mixedStore(where.bucket);
    const { ctx, out } = context(where);

    const result = await telemetryReplay({}, ctx);

    expect(result.counts).toEqual({
      found: 6,
      resumed: 0,
      replayed: 3,
      skipped: 1,
      unreplayable: 2,
      failed: 0,
    });
    expect(result.exitCode).toBe(EXIT_CODES.ok);
    expect(result.byRule).toEqual([
      {
        rule: RULES.telemetry,
        type: 'telemetry',
        found: 4,
        resumed: 0,
        replayed: 2,
        skipped: 0,
        unreplayable: 2,
        failed: 0,
      },
      {
        rule: RULES.health,
        type: 'health',
        found: 2,
        resumed: 0,
        replayed: 1,
        skipped: 1,
        unreplayable: 0,
        failed: 0,
      },
    ]);
    expect(result.entries.skipped).toEqual([
      {
        key: k.hTimestreamOnly,
        rule: RULES.health,
        reason: 'only RepublishAction failed; the stream has the record',
      },
    ]);
    expect(result.entries.unreplayable).toEqual(
      expect.arrayContaining([
        { key: k.tNotJson, rule: RULES.telemetry, problem: 'the payload is not JSON' },
        {
          key: k.tBadTopic,
          rule: RULES.telemetry,
          problem: 'topic "dt/plant7/telemetry" is not a dt/<prefix>/<thing>/<type> topic',
        },
      ]),
    );
    expect(result.entries.replayed.map((e) => [e.key, e.thing, e.movedTo])).toEqual(
      expect.arrayContaining([
        [k.tKinesis, 'fleet-SN1', `replayed/${k.tKinesis}`],
        [k.tBasicIngest, 'fleet-SN3', `replayed/${k.tBasicIngest}`],
        [k.hKinesisAndTimestream, 'fleet-SN2', `replayed/${k.hKinesisAndTimestream}`],
      ]),
    );

    // The rule's form: its payload fields, the envelope from topic, connection and key, replayed.
    const records = await streamRecords(where.stream);
    const byThing = Object.fromEntries(records.map((r) => [r.partitionKey, r.record]));
    expect(records).toHaveLength(3);
    expect(byThing['fleet-SN1']).toEqual({
      type: 'telemetry',
      thing: 'fleet-SN1',
      clientId: 'fleet-SN1',
      receivedAt: hoursAgo(1).getTime(),
      traceId: 'trace-1',
      replayed: true,
      seq: 41,
      readings: telemetryPayload.readings,
    });
    expect(byThing['fleet-SN3']).toEqual({
      type: 'telemetry',
      thing: 'fleet-SN3',
      clientId: 'fleet-SN3',
      receivedAt: hoursAgo(3).getTime(),
      traceId: 'trace-3',
      replayed: true,
      seq: 7,
      readings: [{ ts: hoursAgo(3).getTime(), values: { humidity_pct: 40 } }],
    });
    expect(byThing['fleet-SN2']).toEqual({
      type: 'health',
      thing: 'fleet-SN2',
      clientId: 'fleet-SN2',
      receivedAt: hoursAgo(2).getTime(),
      traceId: 'trace-2',
      replayed: true,
      ...healthPayload,
    });

    // Moved: the re-ingested ones under replayed/, the others where they were.
    const after = await keys(where.bucket);
    for (const key of [k.tKinesis, k.tBasicIngest, k.hKinesisAndTimestream]) {
      expect(after).not.toContain(key);
      expect(after).toContain(`replayed/${key}`);
    }
    for (const key of [k.hTimestreamOnly, k.tNotJson, k.tBadTopic]) expect(after).toContain(key);
    const moved = await s3.send(
      new GetObjectCommand({ Bucket: where.bucket, Key: `replayed/${k.tKinesis}` }),
    );
    expect(JSON.parse(await moved.Body!.transformToString())).toMatchObject({
      topic: 'dt/plant7/fleet-SN1/telemetry',
    });

    // The table names the counts per rule and lists the problems with their keys.
    const text = out.lines.join('\n');
    expect(text).toMatch(/RULE +TYPE +FOUND +REPLAYED +SKIPPED +UNREPLAYABLE +FAILED/);
    expect(text).toMatch(/fleet_telemetry +telemetry +4 +2 +0 +2 +0/);
    expect(text).toMatch(/fleet_health +health +2 +1 +1 +0 +0/);
    expect(text).toMatch(/total +6 +3 +1 +2 +0/);
    expect(text).toContain('1 x only RepublishAction failed; the stream has the record');
    expect(text).toContain(`${k.tNotJson}  the payload is not JSON`);

    // Idempotent: nothing left to re-ingest, the stream is unchanged.
    const again = await telemetryReplay({ json: true }, context(where).ctx);
    expect(again.counts).toEqual({
      found: 3,
      resumed: 0,
      replayed: 0,
      skipped: 1,
      unreplayable: 2,
      failed: 0,
    });
    expect(await streamRecords(where.stream)).toHaveLength(3);
  });

  test('--since and --until bound the window; the listing starts at the hour of --since', async () => {
    const where = await place();
    const old = await seed(where.bucket, {
      rule: RULES.telemetry,
      at: hoursAgo(30),
      topic: 'dt/plant7/fleet-OLD/telemetry',
      payload: telemetryPayload,
      failures: ['KinesisAction'],
    });
    const edge = await seed(where.bucket, {
      // The hour of --since, but a minute before it.
      rule: RULES.telemetry,
      at: hoursAgo(6, -60_000),
      topic: 'dt/plant7/fleet-EDGE/telemetry',
      payload: telemetryPayload,
      failures: ['KinesisAction'],
    });
    const inside = await seed(where.bucket, {
      rule: RULES.telemetry,
      at: hoursAgo(5),
      topic: 'dt/plant7/fleet-IN/telemetry',
      payload: telemetryPayload,
      failures: ['KinesisAction'],
    });
    const late = await seed(where.bucket, {
      rule: RULES.telemetry,
      at: hoursAgo(1),
      topic: 'dt/plant7/fleet-LATE/telemetry',
      payload: telemetryPayload,
      failures: ['KinesisAction'],
    });
    const lists: ListObjectsV2CommandInput[] = [];
    const spied = newS3();
    spied.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'ListObjectsV2Command')
          lists.push({ ...(args.input as ListObjectsV2CommandInput) });
        return next(args);
      },
      { step: 'initialize' },
    );
    try {
      const { ctx } = context(where, { s3: spied });
      const result = await telemetryReplay({ since: '6h', until: '2h', rule: 'telemetry' }, ctx);
      expect(result.window).toEqual({ since: hoursAgo(6).toISOString(), until: hoursAgo(2).toISOString() });
      expect(result.counts).toMatchObject({ found: 1, replayed: 1 });
      expect(result.entries.replayed.map((e) => e.key)).toEqual([inside]);
      expect(result.byRule.map((r) => r.rule)).toEqual([RULES.telemetry]);
      expect(lists).toEqual([
        // An interrupted run's claimed entries first (none here), then the window.
        { Bucket: where.bucket, Prefix: `replaying/${RULES.telemetry}/` },
        {
          Bucket: where.bucket,
          Prefix: `${RULES.telemetry}/`,
          StartAfter: `${RULES.telemetry}/2026/07/10/06/`,
        },
      ]);
    } finally {
      spied.destroy();
    }
    expect((await streamRecords(where.stream)).map((r) => r.partitionKey)).toEqual(['fleet-IN']);
    const after = await keys(where.bucket);
    for (const key of [old, edge, late]) expect(after).toContain(key);
  });

  test('--dry-run classifies and counts but puts and moves nothing', async () => {
    const where = await place();
    await mixedStore(where.bucket);
    const before = await keys(where.bucket);
    const { ctx, out } = context(where);
    const result = await telemetryReplay({ dryRun: true }, ctx);
    expect(result.dryRun).toBe(true);
    expect(result.counts).toEqual({
      found: 6,
      resumed: 0,
      replayed: 3,
      skipped: 1,
      unreplayable: 2,
      failed: 0,
    });
    expect(result.entries.replayed.every((e) => e.movedTo === undefined)).toBe(true);
    expect(await keys(where.bucket)).toEqual(before);
    expect(await streamRecords(where.stream)).toEqual([]);
    expect(out.lines.join('\n')).toMatch(
      /WOULD REPLAY[\s\S]*3 of 6 entries would be replayed; nothing was put or moved/,
    );
  });

  test('records PutRecords refuses are retried with backoff and land once', async () => {
    const where = await place();
    const seeded: string[] = [];
    for (let i = 0; i < 12; i += 1)
      seeded.push(
        await seed(where.bucket, {
          rule: RULES.telemetry,
          at: hoursAgo(1, i),
          topic: `dt/plant7/fleet-SN${i}/telemetry`,
          payload: { seq: i, readings: [{ ts: hoursAgo(1).getTime(), values: { v: i } }] },
          failures: ['KinesisAction'],
        }),
      );
    const flaky = newKinesis();
    const sent: number[] = [];
    let calls = 0;
    // The first PutRecords: only the even records reach the stream; the odd ones are refused.
    flaky.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'PutRecordsCommand') return next(args);
        const input = args.input as PutRecordsCommandInput;
        sent.push(input.Records?.length ?? 0);
        calls += 1;
        if (calls > 1) return next(args);
        const all = input.Records ?? [];
        const res = await next({ ...args, input: { ...input, Records: all.filter((_, i) => i % 2 === 0) } });
        const accepted = [...((res.output as PutRecordsCommandOutput).Records ?? [])];
        const merged = all.map((_, i) =>
          i % 2 === 0
            ? accepted.shift()!
            : {
                ErrorCode: 'ProvisionedThroughputExceededException',
                ErrorMessage: 'Rate exceeded for shard',
              },
        );
        return {
          ...res,
          output: { ...res.output, FailedRecordCount: Math.floor(all.length / 2), Records: merged },
        };
      },
      { step: 'initialize' },
    );
    try {
      const { ctx, sleeps } = context(where, { kinesis: flaky });
      const result = await telemetryReplay({ chunkSize: 5 }, ctx);
      expect(result.counts).toEqual({
        found: 12,
        resumed: 0,
        replayed: 12,
        skipped: 0,
        unreplayable: 0,
        failed: 0,
      });
      // Chunks of 5, 5 and 2 entries; the first one's 2 refused records went again after a backoff.
      expect(sent).toEqual([5, 2, 5, 2]);
      expect(sleeps).toHaveLength(1);
      expect(sleeps[0]).toBeGreaterThan(0);
    } finally {
      flaky.destroy();
    }
    const records = await streamRecords(where.stream);
    expect(records.map((r) => r.partitionKey).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `fleet-SN${i}`).sort(),
    );
    expect((await keys(where.bucket)).filter((key) => !key.startsWith('replayed/'))).toEqual([]);
  });

  test('records refused on every attempt fail with their key, stay in place and exit 1', async () => {
    const where = await place();
    const good = await seed(where.bucket, {
      rule: RULES.health,
      at: hoursAgo(1),
      topic: 'dt/plant7/fleet-OK/health',
      payload: healthPayload,
      failures: ['KinesisAction'],
    });
    const hot = await seed(where.bucket, {
      rule: RULES.health,
      at: hoursAgo(1, 1),
      topic: 'dt/plant7/fleet-HOT/health',
      payload: healthPayload,
      failures: ['KinesisAction'],
    });
    const throttled = newKinesis();
    throttled.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'PutRecordsCommand') return next(args);
        const input = args.input as PutRecordsCommandInput;
        const all = input.Records ?? [];
        const hotOne = (r: (typeof all)[number]) => r.PartitionKey === 'fleet-HOT';
        const rest = all.filter((r) => !hotOne(r));
        const res =
          rest.length > 0
            ? await next({ ...args, input: { ...input, Records: rest } })
            : { response: {}, output: { Records: [] } as unknown as PutRecordsCommandOutput };
        const accepted = [...((res.output as PutRecordsCommandOutput).Records ?? [])];
        const merged = all.map((r) =>
          hotOne(r)
            ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' }
            : accepted.shift()!,
        );
        return { ...res, output: { ...res.output, Records: merged } };
      },
      { step: 'initialize' },
    );
    try {
      const { ctx, out, sleeps } = context(where, { kinesis: throttled });
      const result = await telemetryReplay({ maxAttempts: 3 }, ctx);
      expect(result.exitCode).toBe(EXIT_CODES.failed);
      expect(result.counts).toEqual({
        found: 2,
        resumed: 0,
        replayed: 1,
        skipped: 0,
        unreplayable: 0,
        failed: 1,
      });
      expect(result.entries.failed).toEqual([
        {
          key: hot,
          rule: RULES.health,
          problem:
            'putting it on the stream failed: not accepted after 3 attempt(s) (ProvisionedThroughputExceededException: Rate exceeded)',
        },
      ]);
      expect(sleeps).toHaveLength(2);
      expect(out.lines.join('\n')).toContain('1 entry failed; run the replay again to retry them');
    } finally {
      throttled.destroy();
    }
    const after = await keys(where.bucket);
    expect(after).toContain(hot);
    expect(after).toContain(`replayed/${good}`);
    expect((await streamRecords(where.stream)).map((r) => r.partitionKey)).toEqual(['fleet-OK']);
  });

  test('a run stopped after its claim leaves the chunk under replaying/; the next run finishes it first, each record once', async () => {
    const where = await place();
    const seeded: string[] = [];
    for (let i = 0; i < 3; i += 1)
      seeded.push(
        await seed(where.bucket, {
          rule: RULES.health,
          at: hoursAgo(1, i),
          topic: `dt/plant7/fleet-R${i}/health`,
          payload: healthPayload,
          failures: ['KinesisAction'],
        }),
      );
    // The first run stops at its first PutRecords (the process dies, or the call throws).
    const dying = newKinesis();
    dying.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutRecordsCommand')
          throw Object.assign(new Error('the run stopped here'), { name: 'Interrupted' });
        return next(args);
      },
      { step: 'initialize' },
    );
    try {
      await expect(telemetryReplay({ chunkSize: 2 }, context(where, { kinesis: dying }).ctx)).rejects.toThrow(
        'the run stopped here',
      );
    } finally {
      dying.destroy();
    }
    // The first chunk is claimed, the rest untouched; nothing reached the stream.
    expect(await keys(where.bucket)).toEqual(
      [`replaying/${seeded[0]}`, `replaying/${seeded[1]}`, seeded[2]].sort(),
    );
    expect(await streamRecords(where.stream)).toEqual([]);

    const { ctx, out } = context(where);
    const result = await telemetryReplay({ chunkSize: 2 }, ctx);
    expect(result.counts).toEqual({
      found: 3,
      resumed: 2,
      replayed: 3,
      skipped: 0,
      unreplayable: 0,
      failed: 0,
    });
    expect(result.entries.replayed.map((e) => [e.key, e.resumed ?? false, e.movedTo])).toEqual([
      [seeded[0], true, `replayed/${seeded[0]}`],
      [seeded[1], true, `replayed/${seeded[1]}`],
      [seeded[2], false, `replayed/${seeded[2]}`],
    ]);
    expect(out.lines.join('\n')).toContain(
      '2 entries of an interrupted replay (under replaying/) were finished first',
    );
    expect(await keys(where.bucket)).toEqual(seeded.map((k) => `replayed/${k}`).sort());
    expect((await streamRecords(where.stream)).map((r) => r.partitionKey).sort()).toEqual([
      'fleet-R0',
      'fleet-R1',
      'fleet-R2',
    ]);
    // Nothing left: a third run puts nothing.
    const again = await telemetryReplay({ json: true }, context(where).ctx);
    expect(again.counts).toMatchObject({ found: 0, resumed: 0, replayed: 0 });
    expect(await streamRecords(where.stream)).toHaveLength(3);
  });

  test('the time-series rule’s entries are reported as such on every run, never re-driven or listed as skipped', async () => {
    const where = await place();
    const tsRule = `${RULES.health}_timeseries`;
    const tsKeys = [
      await seed(where.bucket, {
        rule: tsRule,
        at: hoursAgo(1),
        topic: 'fleet-internal/plant7/fleet-SN2/health',
        payload: { uptimeS: 60, heapFreeB: 1, heapMinB: 1, rssiDbm: -60 },
        failures: ['TimestreamAction'],
      }),
      await seed(where.bucket, {
        rule: tsRule,
        at: hoursAgo(1, 1),
        topic: 'fleet-internal/plant7/fleet-SN3/health',
        payload: { uptimeS: 61, heapFreeB: 1, heapMinB: 1, rssiDbm: -61 },
        failures: ['TimestreamAction', 'InfluxDBAction'],
      }),
    ];
    const kinesisEntry = await seed(where.bucket, {
      rule: RULES.health,
      at: hoursAgo(1, 2),
      topic: 'dt/plant7/fleet-SN4/health',
      payload: healthPayload,
      failures: ['KinesisAction'],
    });
    for (let run = 0; run < 2; run += 1) {
      const { ctx, out } = context(where);
      const result = await telemetryReplay({}, ctx);
      expect(result.timeSeries).toEqual({ rule: tsRule, found: 2, reason: TIME_SERIES_REASON });
      expect(result.counts).toMatchObject({ found: 1 - run, replayed: 1 - run, skipped: 0 });
      expect(result.entries.skipped).toEqual([]);
      expect(out.lines.join('\n')).toContain(
        `time-series entries (${tsRule}/, not replayed): 2 entries: ${TIME_SERIES_REASON}`,
      );
    }
    const after = await keys(where.bucket);
    for (const key of tsKeys) expect(after).toContain(key);
    expect(after).toContain(`replayed/${kinesisEntry}`);
    expect((await streamRecords(where.stream)).map((r) => r.partitionKey)).toEqual(['fleet-SN4']);
    // Only the health rule's runs look at them.
    const telemetryOnly = await telemetryReplay({ rule: 'telemetry', json: true }, context(where).ctx);
    expect(telemetryOnly.timeSeries).toBeUndefined();
  });

  test('fleet telemetry replay resolves --bucket, --stream and --telemetry-rules and prints JSON', async () => {
    const where = await place();
    await mixedStore(where.bucket);
    const stdout: string[] = [];
    const stderr: string[] = [];
    const out = memorySink();
    const factory: ContextFactory = async (flags, needs, wants) => {
      const resources = await resolveResources({
        flags,
        env: {},
        needs,
        wants,
        readStackOutputs: async () => ({}),
      });
      // The run wrapper destroys the context's clients: give it its own.
      const own = new DynamoDBClient({ region, credentials });
      return createContext({
        resources,
        clients: {
          dynamo: own,
          doc: DynamoDBDocumentClient.from(own),
          iot: new IoTClient({ region, credentials }),
          s3: newS3(),
          kinesis: newKinesis(),
        },
        out,
        now: () => NOW,
        sleep: async () => undefined,
      });
    };
    const argv = [
      'telemetry',
      'replay',
      '--bucket',
      where.bucket,
      '--stream',
      where.stream,
      '--telemetry-rules',
      JSON.stringify(RULES),
      '--rule',
      RULES.health,
      '--json',
    ];
    const io = {
      stdout: (t: string) => void stdout.push(t),
      stderr: (t: string) => void stderr.push(t),
      env: {},
    };
    expect(await main(argv, factory, io)).toBe(EXIT_CODES.ok);
    expect(stderr.join('')).toBe('');
    const [json] = out.values as [{ counts: unknown; stream: string; bucket: string }];
    expect(json).toMatchObject({ bucket: where.bucket, stream: where.stream });
    expect(json.counts).toEqual({
      found: 2,
      resumed: 0,
      replayed: 1,
      skipped: 1,
      unreplayable: 0,
      failed: 0,
    });

    // Without the stream (and no stack to read it from), the error names the flag and variable.
    const missing = argv.filter((a, i) => a !== '--stream' && argv[i - 1] !== '--stream');
    expect(await main(missing, factory, io)).toBe(EXIT_CODES.usage);
    expect(stderr.join('')).toMatch(
      /telemetryStream: pass --stream, set FLEET_TELEMETRY_STREAM, or deploy stack/,
    );
    // With --dry-run the stream is not needed.
    expect(await main([...missing, '--dry-run'], factory, io)).toBe(EXIT_CODES.ok);
  });
});
