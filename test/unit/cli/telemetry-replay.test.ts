/**
 * `fleet telemetry replay` without AWS: its arguments, what each error-store entry becomes, the
 * PutRecords batching and retries, and the error-store listing (SDK clients mocked).
 */
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import {
  checkTelemetryReplayOptions,
  decideReplay,
  replayRules,
  TIME_SERIES_REASON,
  telemetryReplay,
  telemetryReplayNeeds,
} from '../../../cli/commands/telemetry';
import { createContext } from '../../../cli/context';
import { CliError, UsageError } from '../../../cli/errors';
import { memorySink } from '../../../cli/output';
import {
  ErrorStore,
  PUT_RECORDS_LIMITS,
  putRecordsBatches,
  putStreamRecords,
  StreamPut,
} from '../../../cli/telemetry-store';

const NOW = new Date('2026-07-10T12:00:00.000Z');
const RULES = { telemetry: 'fleet_telemetry', health: 'fleet_health' };

describe('checkTelemetryReplayOptions', () => {
  test('defaults: everything up to now, both rules', () => {
    expect(checkTelemetryReplayOptions({}, NOW)).toEqual({ until: NOW });
  });

  test('durations, ISO times and a rule name or record type', () => {
    expect(
      checkTelemetryReplayOptions(
        { since: '6h', until: '2026-07-10T11:30:00Z', rule: 'fleet_health' },
        NOW,
        RULES,
      ),
    ).toEqual({
      since: new Date('2026-07-10T06:00:00.000Z'),
      until: new Date('2026-07-10T11:30:00.000Z'),
      rule: 'fleet_health',
    });
    expect(checkTelemetryReplayOptions({ rule: ' telemetry ' }, NOW, RULES).rule).toBe('telemetry');
    // Rule names unknown yet (they come from the stack): the form is checked, not the name.
    expect(checkTelemetryReplayOptions({ rule: 'other_rule' }, NOW).rule).toBe('other_rule');
  });

  test.each([
    [{ since: 'yesterday' }, /--since "yesterday" is not a time; use an ISO time/],
    [{ until: '2026-13-45' }, /--until "2026-13-45" is not a time/],
    [
      { since: '1h', until: '2h' },
      /--since \(2026-07-10T11:00:00.000Z\) must be before --until .*widen the window/,
    ],
    [{ since: '2026-07-10T12:00:00Z' }, /must be before --until/],
    [
      { rule: 'dt/fleet/+/telemetry' },
      /--rule "dt\/fleet\/\+\/telemetry" is not a topic rule name \(A-Z a-z 0-9 _\) or a record type/,
    ],
    [
      { rule: 'fleet_other' },
      /--rule "fleet_other" is not one of the telemetry rules \(fleet_telemetry, fleet_health\)/,
    ],
    [{ maxAttempts: 0 }, /maxAttempts must be a positive whole number/],
  ])('%j is a usage error naming the flag and the fix', (opts, message) => {
    const run = () => checkTelemetryReplayOptions(opts, NOW, RULES);
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });
});

test('replayRules picks both rules, or the one named by name or record type', () => {
  expect(replayRules(RULES)).toEqual([
    { rule: 'fleet_telemetry', type: 'telemetry' },
    { rule: 'fleet_health', type: 'health' },
  ]);
  expect(replayRules(RULES, 'health')).toEqual([{ rule: 'fleet_health', type: 'health' }]);
  expect(replayRules(RULES, 'fleet_telemetry')).toEqual([{ rule: 'fleet_telemetry', type: 'telemetry' }]);
  expect(() => replayRules(RULES, 'fleet_other')).toThrow(/not one of the telemetry rules/);
});

test('telemetryReplayNeeds: the stream is needed only to put records', () => {
  expect(telemetryReplayNeeds(false).needs).toEqual([
    'telemetryErrorBucket',
    'telemetryRules',
    'telemetryStream',
  ]);
  expect(telemetryReplayNeeds(true)).toEqual({
    needs: ['telemetryErrorBucket', 'telemetryRules'],
    wants: ['telemetryStream'],
  });
});

describe('decideReplay', () => {
  const at = Date.UTC(2026, 6, 10, 11, 5);
  const key = `fleet_telemetry/2026/07/10/11/${at}-6f1c.json`;
  const message = (over: Record<string, unknown> = {}, payload: unknown = { seq: 1, readings: [] }) =>
    JSON.stringify({
      ruleName: 'fleet_telemetry',
      topic: 'dt/fleet/fleet-SN1/telemetry',
      cloudwatchTraceId: 'trace-9',
      clientId: 'fleet-SN1',
      base64OriginalPayload: Buffer.from(
        typeof payload === 'string' ? payload : JSON.stringify(payload),
      ).toString('base64'),
      failures: [{ failedAction: 'KinesisAction', failedResource: 's', errorMessage: 'throttled' }],
      ...over,
    });

  test('a Kinesis failure becomes the rule record: selected fields, envelope, replayed', () => {
    expect(decideReplay(key, message({}, { seq: 3, readings: [], junk: 1 }), 'telemetry')).toEqual({
      kind: 'replay',
      thing: 'fleet-SN1',
      record: {
        type: 'telemetry',
        thing: 'fleet-SN1',
        clientId: 'fleet-SN1',
        receivedAt: at,
        traceId: 'trace-9',
        replayed: true,
        seq: 3,
        readings: [],
      },
    });
  });

  test('the Basic Ingest topic form gives the thing too', () => {
    const d = decideReplay(
      key,
      message({ topic: '$aws/rules/fleet_telemetry/dt/fleet/fleet-SN4/telemetry' }),
      'telemetry',
    );
    expect(d).toMatchObject({ kind: 'replay', thing: 'fleet-SN4' });
  });

  test.each([
    [
      'only other actions failed',
      message({ failures: [{ failedAction: 'TimestreamAction' }, { failedAction: 'HttpAction' }] }),
      'only TimestreamAction, HttpAction failed; the stream has the record',
    ],
    ['no failure listed', message({ failures: [] }), 'no failed action listed'],
  ])('%s: skipped', (_name, text, reason) => {
    expect(decideReplay(key, text, 'telemetry')).toEqual({ kind: 'skip', reason });
  });

  test('an entry where only a secondary sink failed is skipped even if its payload is not JSON', () => {
    expect(
      decideReplay(key, message({ failures: [{ failedAction: 'TimestreamAction' }] }, 'x=1'), 'telemetry')
        .kind,
    ).toBe('skip');
  });

  test.each([
    ['a key outside the layout', 'fleet_telemetry/notes.json', message(), /not in the error-store layout/],
    ['an object that is not JSON', key, 'not json', /the object is not JSON/],
    [
      'an object that is not an error-action message',
      key,
      '{"topic":1}',
      /not an AWS IoT error-action message \(ruleName: /,
    ],
    ['a payload that is not JSON', key, message({}, 'seq=1'), /^the payload is not JSON$/],
    ['a payload that is not an object', key, message({}, [1, 2]), /the payload is JSON but not an object/],
    [
      'a topic of another shape',
      key,
      message({ topic: 'dt/fleet/telemetry' }),
      /topic "dt\/fleet\/telemetry" is not a dt\/<prefix>\/<thing>\/<type> topic/,
    ],
    [
      'a topic of the other record type',
      key,
      message({ topic: 'dt/fleet/fleet-SN1/health' }),
      /is a health topic, not telemetry like its rule/,
    ],
  ])('%s: unreplayable', (_name, k, text, problem) => {
    const d = decideReplay(k, text, 'telemetry');
    expect(d.kind).toBe('unreplayable');
    expect(d.kind === 'unreplayable' && d.problem).toMatch(problem);
  });
});

describe('putRecordsBatches', () => {
  const put = (bytes: number, i = 0): StreamPut<number> => ({
    ref: i,
    partitionKey: 'k',
    data: new Uint8Array(bytes),
  });

  test('at most 500 records per batch, in order', () => {
    const puts = Array.from({ length: 1201 }, (_, i) => put(10, i));
    const batches = putRecordsBatches(puts);
    expect(batches.map((b) => b.length)).toEqual([500, 500, 201]);
    expect(batches.flat().map((p) => p.ref)).toEqual(puts.map((p) => p.ref));
  });

  test('at most 5 MiB per batch, partition keys included', () => {
    const mib = 1024 * 1024;
    const batches = putRecordsBatches([
      put(mib - 1),
      put(mib - 1),
      put(mib - 1),
      put(mib - 1),
      put(mib - 1),
      put(10),
    ]);
    expect(batches.map((b) => b.length)).toEqual([5, 1]);
    const exact = putRecordsBatches([put(mib - 1), put(mib - 1), put(mib - 1), put(mib - 1), put(mib)]);
    expect(exact.map((b) => b.length)).toEqual([4, 1]);
    expect(PUT_RECORDS_LIMITS.maxRequestBytes).toBe(5 * mib);
  });
});

describe('putStreamRecords', () => {
  const kinesis = new KinesisClient({ region: 'us-east-1' });
  const mock = mockClient(kinesis);
  beforeEach(() => mock.reset());
  afterAll(() => kinesis.destroy());
  const puts = (n: number): StreamPut<string>[] =>
    Array.from({ length: n }, (_, i) => ({
      ref: `r${i}`,
      partitionKey: `thing-${i}`,
      data: Buffer.from(`{"i":${i}}`),
    }));
  const ok = { SequenceNumber: '1', ShardId: 'shardId-0' };
  const refused = { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' };

  test('re-puts only the refused records, with growing backoff', async () => {
    mock
      .on(PutRecordsCommand)
      .resolvesOnce({ FailedRecordCount: 2, Records: [ok, refused, ok, refused] })
      .resolvesOnce({
        FailedRecordCount: 1,
        Records: [ok, { ErrorCode: 'InternalFailure', ErrorMessage: 'x' }],
      })
      .resolvesOnce({ FailedRecordCount: 0, Records: [ok] });
    const sleeps: number[] = [];
    const out = await putStreamRecords(kinesis, 's', puts(4), { sleep: async (ms) => void sleeps.push(ms) });
    expect(out).toEqual({ ok: ['r0', 'r2', 'r1', 'r3'], failed: [] });
    const sent = mock
      .commandCalls(PutRecordsCommand)
      .map((c) => c.args[0].input.Records?.map((r) => r.PartitionKey));
    expect(sent).toEqual([['thing-0', 'thing-1', 'thing-2', 'thing-3'], ['thing-1', 'thing-3'], ['thing-3']]);
    expect(mock.commandCalls(PutRecordsCommand)[0].args[0].input.StreamName).toBe('s');
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(50);
    expect(sleeps[0]).toBeLessThanOrEqual(100);
    expect(sleeps[1]).toBeGreaterThanOrEqual(100);
    expect(sleeps[1]).toBeLessThanOrEqual(200);
  });

  test('records still refused after maxAttempts fail with the last error code', async () => {
    mock.on(PutRecordsCommand).resolves({ FailedRecordCount: 1, Records: [refused] });
    const out = await putStreamRecords(kinesis, 's', puts(1), {
      sleep: async () => undefined,
      maxAttempts: 2,
    });
    expect(out).toEqual({
      ok: [],
      failed: [
        {
          ref: 'r0',
          error: 'not accepted after 2 attempt(s) (ProvisionedThroughputExceededException: Rate exceeded)',
        },
      ],
    });
    expect(mock.commandCalls(PutRecordsCommand)).toHaveLength(2);
  });

  test('a throttled call is retried whole; other call errors throw', async () => {
    const throttled = Object.assign(new Error('slow down'), { name: 'LimitExceededException' });
    mock
      .on(PutRecordsCommand)
      .rejectsOnce(throttled)
      .resolves({ FailedRecordCount: 0, Records: [ok, ok] });
    expect(await putStreamRecords(kinesis, 's', puts(2), { sleep: async () => undefined })).toEqual({
      ok: ['r0', 'r1'],
      failed: [],
    });
    mock.reset();
    const missing = Object.assign(new Error('Stream s not found'), { name: 'ResourceNotFoundException' });
    mock.on(PutRecordsCommand).rejects(missing);
    await expect(putStreamRecords(kinesis, 's', puts(1), { sleep: async () => undefined })).rejects.toThrow(
      'Stream s not found',
    );
  });

  test('a record over 1 MiB fails without a call', async () => {
    const big: StreamPut<string> = { ref: 'big', partitionKey: 'k', data: new Uint8Array(1024 * 1024) };
    const out = await putStreamRecords(kinesis, 's', [big]);
    expect(out.failed).toEqual([{ ref: 'big', error: 'the record is larger than the 1 MiB Kinesis limit' }]);
    expect(mock.commandCalls(PutRecordsCommand)).toHaveLength(0);
  });
});

describe('ErrorStore', () => {
  const s3 = new S3Client({ region: 'us-east-1' });
  const mock = mockClient(s3);
  beforeEach(() => mock.reset());
  afterAll(() => s3.destroy());
  const k = (hour: string, ms: number) => `r/2026/07/${hour}/${ms}-u.json`;

  test('list pages through the rule prefix from the hour of since and stops past the hour of until', async () => {
    const since = new Date('2026-07-10T06:30:00Z');
    const until = new Date('2026-07-10T08:15:00Z');
    const t = (iso: string) => Date.parse(iso);
    mock
      .on(ListObjectsV2Command)
      .resolvesOnce({
        IsTruncated: true,
        NextContinuationToken: 'tok',
        Contents: [
          { Key: k('10/06', t('2026-07-10T06:10:00Z')) }, // before since, same hour
          { Key: k('10/06', t('2026-07-10T06:30:00Z')) },
          { Key: 'r/2026/07/10/07/stray.txt' },
        ],
      })
      .resolvesOnce({
        IsTruncated: true,
        NextContinuationToken: 'tok2',
        Contents: [
          { Key: k('10/08', t('2026-07-10T08:14:59Z')) },
          { Key: k('10/08', t('2026-07-10T08:15:00Z')) }, // until is exclusive
          { Key: k('10/09', t('2026-07-10T09:00:00Z')) }, // past the hour of until: stop
        ],
      });
    const store = new ErrorStore(s3, 'b');
    const pages = [];
    for await (const page of store.list('r', { since, until })) pages.push(page);
    expect(pages).toEqual([
      [
        { key: k('10/06', t('2026-07-10T06:30:00Z')), receivedAt: t('2026-07-10T06:30:00Z') },
        { key: 'r/2026/07/10/07/stray.txt' },
      ],
      [{ key: k('10/08', t('2026-07-10T08:14:59Z')), receivedAt: t('2026-07-10T08:14:59Z') }],
    ]);
    expect(mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'b', Prefix: 'r/', StartAfter: 'r/2026/07/10/06/' },
      { Bucket: 'b', Prefix: 'r/', ContinuationToken: 'tok' },
    ]);
  });

  test('without since the listing starts at the rule prefix', async () => {
    mock.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] });
    const pages = [];
    for await (const page of new ErrorStore(s3, 'b').list('r', { until: NOW })) pages.push(page);
    expect(pages).toEqual([]);
    expect(mock.commandCalls(ListObjectsV2Command)[0].args[0].input).toEqual({ Bucket: 'b', Prefix: 'r/' });
  });

  test('claim, markReplayed and release move an entry through replaying/ (copy, then delete)', async () => {
    mock.on(CopyObjectCommand).resolves({}).on(DeleteObjectCommand).resolves({});
    const key = 'r/2026/07/10/06/1783663800000-a b+c.json';
    const store = new ErrorStore(s3, 'b');
    expect(await store.claim(key)).toBe(`replaying/${key}`);
    expect(await store.markReplayed(key)).toBe(`replayed/${key}`);
    expect(await store.release(key)).toBe(key);
    const moves = mock
      .commandCalls(CopyObjectCommand)
      .map((c) => [c.args[0].input.CopySource, c.args[0].input.Key]);
    expect(moves).toEqual([
      ['b/r/2026/07/10/06/1783663800000-a%20b%2Bc.json', `replaying/${key}`],
      ['b/replaying/r/2026/07/10/06/1783663800000-a%20b%2Bc.json', `replayed/${key}`],
      ['b/replaying/r/2026/07/10/06/1783663800000-a%20b%2Bc.json', key],
    ]);
    expect(mock.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input.Key)).toEqual([
      key,
      `replaying/${key}`,
      `replaying/${key}`,
    ]);
  });

  test('a move whose delete fails deletes the copy again and throws: the entry stays in one place', async () => {
    const key = 'r/2026/07/10/06/1783663800000-x.json';
    mock
      .on(CopyObjectCommand)
      .resolves({})
      .on(DeleteObjectCommand, { Key: key })
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDenied' }))
      .on(DeleteObjectCommand, { Key: `replaying/${key}` })
      .resolves({});
    await expect(new ErrorStore(s3, 'b').claim(key)).rejects.toThrow('denied');
    expect(mock.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input.Key)).toEqual([
      key,
      `replaying/${key}`,
    ]);
  });

  test('listClaimed lists replaying/<rule>/ whatever the time, with the entries’ own keys', async () => {
    const at = Date.UTC(2026, 0, 2, 3);
    mock.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: `replaying/r/2026/01/02/03/${at}-u.json` }, { Key: 'replaying/r/odd.txt' }],
    });
    const pages = [];
    for await (const page of new ErrorStore(s3, 'b').listClaimed('r')) pages.push(page);
    expect(pages).toEqual([[{ key: `r/2026/01/02/03/${at}-u.json`, receivedAt: at }, { key: 'r/odd.txt' }]]);
    expect(mock.commandCalls(ListObjectsV2Command)[0].args[0].input).toEqual({
      Bucket: 'b',
      Prefix: 'replaying/r/',
    });
  });
});

describe('telemetryReplay', () => {
  const s3 = new S3Client({ region: 'us-east-1' });
  const kinesis = new KinesisClient({ region: 'us-east-1' });
  const s3mock = mockClient(s3);
  const kmock = mockClient(kinesis);
  beforeEach(() => {
    s3mock.reset();
    kmock.reset();
  });
  afterAll(() => {
    s3.destroy();
    kinesis.destroy();
  });
  const ctx = (resources: Record<string, unknown> = {}) =>
    createContext({
      resources: { telemetryErrorBucket: 'b', telemetryStream: 's', telemetryRules: RULES, ...resources },
      clients: { s3, kinesis } as never,
      out: memorySink(),
      now: () => NOW,
      sleep: async () => undefined,
    });

  test('an unknown --rule is refused before any AWS call', async () => {
    await expect(telemetryReplay({ rule: 'nope' }, ctx())).rejects.toThrow(
      /--rule "nope" is not one of the telemetry rules \(fleet_telemetry, fleet_health\)/,
    );
    expect(s3mock.calls()).toHaveLength(0);
    expect(kmock.calls()).toHaveLength(0);
  });

  test('a missing resource names its flag, variable and output', async () => {
    await expect(telemetryReplay({}, ctx({ telemetryStream: undefined }))).rejects.toThrow(
      /missing telemetryStream: pass --stream, set FLEET_TELEMETRY_STREAM, or read it from the stack output TelemetryStreamName/,
    );
    // A dry run does not need the stream.
    s3mock.on(ListObjectsV2Command).resolves({ Contents: [] });
    const r = await telemetryReplay({ dryRun: true }, ctx({ telemetryStream: undefined }));
    expect(r.counts.found).toBe(0);
    expect(r.stream).toBeUndefined();
  });

  test('a bucket that does not exist is an error naming the fix', async () => {
    s3mock
      .on(ListObjectsV2Command)
      .rejects(Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket' }));
    const err = await telemetryReplay({}, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(
      /error bucket b does not exist; check --bucket, FLEET_TELEMETRY_ERROR_BUCKET or --stack/,
    );
  });

  const withOut = () => {
    const out = memorySink();
    return {
      c: createContext({
        resources: { telemetryErrorBucket: 'b', telemetryStream: 's', telemetryRules: RULES },
        clients: { s3, kinesis } as never,
        out,
        now: () => NOW,
        sleep: async () => undefined,
      }),
      out,
    };
  };
  const at = Date.UTC(2026, 6, 10, 11);
  const entryKey = (rule: string, n: number) => `${rule}/2026/07/10/11/${at + n}-e${n}.json`;
  const errorDoc = (thing: string) =>
    JSON.stringify({
      ruleName: RULES.health,
      topic: `dt/fleet/${thing}/health`,
      cloudwatchTraceId: `trace-${thing}`,
      clientId: thing,
      base64OriginalPayload: Buffer.from(JSON.stringify({ connection: 'lost' })).toString('base64'),
      failures: [{ failedAction: 'KinesisAction', errorMessage: 'throttled' }],
    });
  const body = (text: string) => ({ Body: { transformToString: async () => text } as never });
  /** S3 with these keys (by prefix) and these bodies; every call goes to `log` in order. */
  function store(listed: Record<string, string[]>, log: string[]) {
    s3mock.on(ListObjectsV2Command).callsFake((input: { Prefix: string }) => {
      log.push(`list ${input.Prefix}`);
      return { Contents: (listed[input.Prefix] ?? []).map((Key) => ({ Key })) };
    });
    s3mock.on(GetObjectCommand).callsFake((input: { Key: string }) => {
      log.push(`get ${input.Key}`);
      return body(errorDoc(input.Key.includes('e1') ? 'fleet-A' : 'fleet-B'));
    });
    s3mock.on(CopyObjectCommand).callsFake((input: { CopySource: string; Key: string }) => {
      log.push(`copy ${decodeURIComponent(input.CopySource.slice(2))} -> ${input.Key}`);
      return {};
    });
    s3mock.on(DeleteObjectCommand).callsFake((input: { Key: string }) => {
      log.push(`delete ${input.Key}`);
      return {};
    });
  }
  const putsOk = (log: string[]) =>
    kmock.on(PutRecordsCommand).callsFake((input: { Records: { PartitionKey: string }[] }) => {
      log.push(`put ${input.Records.map((r) => r.PartitionKey).join(',')}`);
      return { Records: input.Records.map((_, i) => ({ SequenceNumber: String(i), ShardId: 'shardId-0' })) };
    });

  test('claim, then put, then replayed/: an entry is under replaying/ before it can reach the stream', async () => {
    const log: string[] = [];
    const key = entryKey(RULES.health, 1);
    store({ 'fleet_health/': [key] }, log);
    putsOk(log);
    const r = await telemetryReplay({ rule: 'health' }, ctx());
    expect(r.counts).toEqual({ found: 1, resumed: 0, replayed: 1, skipped: 0, unreplayable: 0, failed: 0 });
    expect(r.entries.replayed).toEqual([
      { key, rule: RULES.health, thing: 'fleet-A', movedTo: `replayed/${key}` },
    ]);
    expect(log).toEqual([
      'list replaying/fleet_health/',
      'list fleet_health/',
      `get ${key}`,
      `copy ${key} -> replaying/${key}`,
      `delete ${key}`,
      'put fleet-A',
      `copy replaying/${key} -> replayed/${key}`,
      `delete replaying/${key}`,
      'list fleet_health_timeseries/',
    ]);
  });

  test('an interrupted run’s claimed entries are finished first, once, then the window', async () => {
    const log: string[] = [];
    const claimed = entryKey(RULES.health, 1);
    const fresh = entryKey(RULES.health, 2);
    store({ 'replaying/fleet_health/': [`replaying/${claimed}`], 'fleet_health/': [fresh] }, log);
    putsOk(log);
    const { c, out } = withOut();
    const r = await telemetryReplay({ rule: 'health' }, c);
    expect(r.counts).toEqual({ found: 2, resumed: 1, replayed: 2, skipped: 0, unreplayable: 0, failed: 0 });
    expect(r.entries.replayed.map((e) => [e.key, e.resumed])).toEqual([
      [claimed, true],
      [fresh, undefined],
    ]);
    // The claimed entry is read and moved from replaying/, never claimed again.
    expect(log.slice(0, 6)).toEqual([
      'list replaying/fleet_health/',
      `get replaying/${claimed}`,
      'put fleet-A',
      `copy replaying/${claimed} -> replayed/${claimed}`,
      `delete replaying/${claimed}`,
      'list fleet_health/',
    ]);
    expect(log.filter((l) => l.startsWith(`copy ${claimed}`))).toEqual([]);
    expect(out.lines.join('\n')).toContain(
      '1 entry of an interrupted replay (under replaying/) was finished first: put again',
    );
  });

  test('an entry the stream refuses goes back from replaying/ to its key', async () => {
    const log: string[] = [];
    const key = entryKey(RULES.health, 1);
    store({ 'fleet_health/': [key] }, log);
    kmock.on(PutRecordsCommand).resolves({
      Records: [{ ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' }],
    });
    const r = await telemetryReplay({ rule: 'health', maxAttempts: 1 }, ctx());
    expect(r.counts).toMatchObject({ found: 1, replayed: 0, failed: 1 });
    expect(r.entries.failed[0].problem).toBe(
      'putting it on the stream failed: not accepted after 1 attempt(s) (ProvisionedThroughputExceededException: Rate exceeded)',
    );
    expect(log.filter((l) => l.startsWith('copy'))).toEqual([
      `copy ${key} -> replaying/${key}`,
      `copy replaying/${key} -> ${key}`,
    ]);
  });

  test('the time-series rule’s entries are counted with their reason, apart from the rules’ counts', async () => {
    const log: string[] = [];
    const ts = 'fleet_health_timeseries';
    store({ [`${ts}/`]: [entryKey(ts, 1), entryKey(ts, 2)] }, log);
    const { c, out: o } = withOut();
    const r = await telemetryReplay({}, c);
    expect(r.timeSeries).toEqual({ rule: ts, found: 2, reason: TIME_SERIES_REASON });
    expect(r.counts).toEqual({ found: 0, resumed: 0, replayed: 0, skipped: 0, unreplayable: 0, failed: 0 });
    expect(r.entries.skipped).toEqual([]);
    // Listed, never read or moved.
    expect(log.filter((l) => !l.startsWith('list'))).toEqual([]);
    expect(o.lines.join('\n')).toContain(
      `time-series entries (${ts}/, not replayed): 2 entries: ${TIME_SERIES_REASON}`,
    );
    // The telemetry rule alone does not look at them.
    const t = await telemetryReplay({ rule: 'telemetry' }, ctx());
    expect(t.timeSeries).toBeUndefined();
  });

  test('the options are checked once, before any resource is required', async () => {
    let nows = 0;
    s3mock.on(ListObjectsV2Command).resolves({ Contents: [] });
    const c = createContext({
      resources: { telemetryErrorBucket: 'b', telemetryStream: 's', telemetryRules: RULES },
      clients: { s3, kinesis } as never,
      out: memorySink(),
      now: () => {
        nows += 1;
        return NOW;
      },
      sleep: async () => undefined,
    });
    await telemetryReplay({ since: '1h' }, c);
    expect(nows).toBe(1);
    // A usage error wins over a missing resource.
    await expect(
      telemetryReplay({ since: 'yesterday' }, ctx({ telemetryStream: undefined, telemetryRules: undefined })),
    ).rejects.toThrow(UsageError);
  });

  test('an entry that cannot be read fails with its key; the others go on', async () => {
    const at = Date.UTC(2026, 6, 10, 11);
    const bad = `fleet_health/2026/07/10/11/${at}-a.json`;
    s3mock
      .on(ListObjectsV2Command)
      .resolves({ Contents: [] })
      .on(ListObjectsV2Command, { Prefix: 'fleet_health/' })
      .resolves({ Contents: [{ Key: bad }] })
      .on(GetObjectCommand)
      .rejects(Object.assign(new Error('gone'), { name: 'NoSuchKey' }));
    const r = await telemetryReplay({}, ctx());
    expect(r.entries.failed).toEqual([
      { key: bad, rule: 'fleet_health', problem: 'reading it failed (NoSuchKey: gone)' },
    ]);
    expect(r.exitCode).toBe(1);
    expect(kmock.calls()).toHaveLength(0);
  });
});
