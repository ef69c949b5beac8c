/**
 * The time-series options in the lab's rules engine, as the stack synthesizes them: the health
 * rule (its SQL unchanged) puts a report on the stream and republishes it; the republished message
 * goes back through the "broker" (here: straight to the engine, as the lab runtime's broker does)
 * to the time-series rule, whose SET / get_registry_data / WHERE isUndefined() / Timestream and
 * InfluxDB actions write the local stores. Also the Republish action's and isUndefined()'s own
 * rules.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TIME_SERIES } from '../../../core/time-series';
import {
  RuleLoadError,
  RulesEngine,
  type RuleEngineDeps,
  type TopicRulePayload,
} from '../../../lab/rules/engine';
import { runStatement, type MessageContext } from '../../../lab/rules/evaluate';
import { parseSql } from '../../../lab/rules/sql';
import { resolve, type IntrinsicContext } from '../../../lab/runtime/intrinsics';
import { TimeSeriesStore } from '../../../lab/runtime/time-series';
import { resourcesOf, synthFleet } from '../constructs/helpers';

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
const HEALTH = 'fleet_health';
const TS_RULE = 'fleet_health_timeseries';
const DESTINATION = `arn:aws:iot:${REGION}:${ACCOUNT}:ruledestination/influxdb/dest-1`;

const timestream = { enabled: true, databaseName: 'fleet_db', tableName: 'health' };
const influxdb = {
  enabled: true,
  endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
  secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
  databaseName: 'fleet',
  tableName: 'health',
};

/** The stack's topic rules, intrinsics resolved as the lab resolves them. */
function stackRules(telemetry: Record<string, unknown>): Record<string, TopicRulePayload> {
  const { template } = synthFleet({ telemetry });
  const ctx: IntrinsicContext = {
    region: REGION,
    accountId: ACCOUNT,
    stackName: 'TestFleet',
    parameters: {},
    ref: (id) => id,
    getAtt: (id, attr) =>
      template.toJSON().Resources[id]?.Type === 'AWS::IoT::TopicRuleDestination'
        ? DESTINATION
        : `arn:aws:iam::${ACCOUNT}:role/${id}.${attr}`,
  };
  const out: Record<string, TopicRulePayload> = {};
  for (const r of Object.values(resourcesOf(template, 'AWS::IoT::TopicRule'))) {
    const name = r.Properties.RuleName as string | undefined;
    if (name) out[name] = resolve(r.Properties.TopicRulePayload, ctx) as TopicRulePayload;
  }
  return out;
}

const report = {
  ts: Date.UTC(2026, 6, 10, 11, 59),
  fw: '1.4.0',
  bootId: 'b-1',
  uptimeS: 600,
  resetReason: 'POWER_ON',
  heapFreeB: 81_000,
  heapMinB: 40_000,
  rssiDbm: -61,
};

describe('health rule → republish → time-series rule → local stores', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lab-ts-chain-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** An engine with the stack's rules; `publish` feeds the engine again, as the lab broker does. */
  function lab(telemetry: Record<string, unknown>, overrides: Partial<RuleEngineDeps> = {}) {
    const store = new TimeSeriesStore(dir);
    store.addInfluxDestination({
      arn: DESTINATION,
      endpoint: influxdb.endpoint,
      version: 'V3',
      enabled: true,
    });
    const kinesis: { partitionKey: string; record: Record<string, unknown> }[] = [];
    const errors: { key: string; doc: { ruleName: string; failures: { failedAction: string }[] } }[] = [];
    const published: { topic: string; qos: number; payload: Record<string, unknown> }[] = [];
    const logs: { level: string; msg: string; [k: string]: unknown }[] = [];
    const deps: RuleEngineDeps = {
      accountId: ACCOUNT,
      region: REGION,
      invokeLambda: async () => null,
      publish: async (topic, payload, qos) => {
        published.push({ topic, qos, payload: JSON.parse(payload.toString()) });
        void engine.handleMessage({ topic, payload });
      },
      kinesisPutRecord: async (_stream, partitionKey, data) => {
        kinesis.push({ partitionKey, record: JSON.parse(data.toString()) });
      },
      s3PutObject: async (_bucket, key, body) => {
        errors.push({ key, doc: JSON.parse(body.toString()) });
      },
      timestreamWrite: (db, table, records) => store.writeTimestream(db, table, records),
      influxDbWrite: (destination, target, lines) => store.writeInflux(destination, target, lines),
      registryData: (api, thing) =>
        api === 'DescribeThing' && thing.startsWith('fleet-')
          ? { thingName: thing, attributes: { lot: 'LOT-7', ring: 'canary' } }
          : undefined,
      log: (e) => void logs.push(e),
      ...overrides,
    };
    const engine = new RulesEngine(deps);
    for (const [name, payload] of Object.entries(stackRules(telemetry))) engine.addRule(name, payload);
    const send = async (topic: string, payload: unknown, clientId = 'fleet-SN1') => {
      await engine.handleMessage({ topic, payload: JSON.stringify(payload), clientId, principal: 'cert-1' });
      await engine.idle();
    };
    const stats = (rule: string) => engine.stats().find((s) => s.ruleName === rule)!;
    return { engine, store, kinesis, errors, published, logs, send, stats };
  }

  test('a Basic Ingest report: the stream gets the rule record, Timestream the measures with lot and ring', async () => {
    const { store, kinesis, published, send, stats } = lab({ timestream });
    await send(`$aws/rules/${HEALTH}/dt/fleet/fleet-SN1/health`, report);

    expect(kinesis).toHaveLength(1);
    expect(kinesis[0].partitionKey).toBe('fleet-SN1');
    expect(kinesis[0].record).toMatchObject({
      ...report,
      type: 'health',
      thing: 'fleet-SN1',
      principal: 'cert-1',
    });
    expect(kinesis[0].record).not.toHaveProperty('timestamp');

    expect(published.map((p) => [p.topic, p.qos])).toEqual([[TIME_SERIES.topic('fleet', 'fleet-SN1'), 1]]);
    expect(published[0].payload).toEqual(kinesis[0].record);

    const records = store.timestreamRecords('fleet_db', 'health');
    expect(records.map((r) => [r.MeasureName, r.MeasureValue, r.MeasureValueType])).toEqual([
      ['uptimeS', '600', 'BIGINT'],
      ['heapFreeB', '81000', 'BIGINT'],
      ['heapMinB', '40000', 'BIGINT'],
      ['rssiDbm', '-61', 'BIGINT'],
    ]);
    for (const r of records) {
      expect(r.Dimensions.map((d) => [d.Name, d.Value])).toEqual([
        ['thingName', 'fleet-SN1'],
        ['firmware', '1.4.0'],
        ['lot', 'LOT-7'],
        ['ring', 'canary'],
      ]);
      expect([r.Time, r.TimeUnit]).toEqual([String(report.ts), 'MILLISECONDS']);
    }
    for (const rule of [HEALTH, TS_RULE])
      expect(stats(rule)).toMatchObject({ matched: 1, actionFailures: 0, errorActions: 0 });
  });

  test('both on: one point in InfluxDB (tags, measure fields, the report time) beside the Timestream records', async () => {
    const { store, send } = lab({ timestream, influxdb });
    await send('dt/fleet/fleet-SN2/health', report);
    expect(store.influxLines('fleet', 'health')).toEqual([
      `health,firmware=1.4.0,lot=LOT-7,ring=canary,thingName=fleet-SN2 uptimeS=600i,heapFreeB=81000i,heapMinB=40000i,rssiDbm=-61i ${report.ts}`,
    ]);
    // The InfluxDB action takes its time from `timestamp`; with both on, Timestream stores it too.
    expect(store.timestreamRecords('fleet_db', 'health').map((r) => r.MeasureName)).toEqual([
      'uptimeS',
      'heapFreeB',
      'heapMinB',
      'rssiDbm',
      'timestamp',
    ]);
  });

  test('a Last Will reaches the stream; the time-series rule leaves it out, nothing fails', async () => {
    const { store, kinesis, published, send, stats } = lab({ timestream, influxdb });
    await send('dt/fleet/fleet-SN3/health', { connection: 'lost' });
    expect(kinesis.map((k) => k.record.connection)).toEqual(['lost']);
    expect(published).toHaveLength(1);
    expect(store.timestreamRecords('fleet_db', 'health')).toEqual([]);
    expect(store.influxLines('fleet', 'health')).toEqual([]);
    expect(stats(HEALTH)).toMatchObject({ matched: 1, actionFailures: 0 });
    expect(stats(TS_RULE)).toMatchObject({ matched: 0, actionFailures: 0 });
  });

  test('a failing registry call drops the message from the time series only: the stream still gets it', async () => {
    const { store, kinesis, errors, send, stats, logs } = lab(
      { timestream },
      {
        registryData: () => {
          throw new Error('ThrottlingException: Rate exceeded');
        },
      },
    );
    await send('dt/fleet/fleet-SN4/health', report);
    expect(kinesis).toHaveLength(1);
    expect(stats(HEALTH)).toMatchObject({ matched: 1, actionFailures: 0 });
    // As in AWS: a failed SQL function runs no action, not even the error action.
    expect(store.timestreamRecords('fleet_db', 'health')).toEqual([]);
    expect(errors).toEqual([]);
    expect(logs).toEqual([expect.objectContaining({ msg: 'rule SQL evaluation failed', rule: TS_RULE })]);
  });

  test('a Kinesis outage: the health rule’s error action names Kinesis only; the time series still gets the report', async () => {
    const { store, errors, send } = lab(
      { timestream },
      {
        kinesisPutRecord: async () => {
          throw new Error('ServiceUnavailable');
        },
      },
    );
    await send('dt/fleet/fleet-SN5/health', report);
    expect(errors.map((e) => [e.key.split('/')[0], e.doc.failures.map((f) => f.failedAction)])).toEqual([
      [HEALTH, ['KinesisAction']],
    ]);
    expect(store.timestreamRecords('fleet_db', 'health')).toHaveLength(4);
  });

  test('a failed time-series write goes to the time-series rule’s own error-store prefix', async () => {
    const { errors, kinesis, send, stats } = lab(
      { timestream },
      {
        timestreamWrite: async () => {
          throw new Error('ResourceNotFoundException: no table');
        },
      },
    );
    await send('dt/fleet/fleet-SN6/health', report);
    expect(kinesis).toHaveLength(1);
    expect(
      errors.map((e) => [e.key.split('/')[0], e.doc.ruleName, e.doc.failures.map((f) => f.failedAction)]),
    ).toEqual([[TS_RULE, TS_RULE, ['TimestreamAction']]]);
    expect(stats(HEALTH)).toMatchObject({ actionFailures: 0, errorActions: 0 });
    expect(stats(TS_RULE)).toMatchObject({ actionFailures: 1, errorActions: 1, errorActionFailures: 0 });
  });
});

describe('Republish action and isUndefined() in the lab', () => {
  const deps = (publish: RuleEngineDeps['publish']): RuleEngineDeps => ({
    accountId: ACCOUNT,
    region: REGION,
    invokeLambda: async () => null,
    publish,
  });
  const rule = (topic: string, qos?: unknown): TopicRulePayload => ({
    Sql: "SELECT * FROM 'a/+'",
    AwsIotSqlVersion: '2016-03-23',
    Actions: [{ Republish: { Topic: topic, RoleArn: 'r', ...(qos === undefined ? {} : { Qos: qos }) } }],
  });

  test('templates in the topic, $$ for a reserved topic, Qos 0 by default', async () => {
    const sent: [string, number][] = [];
    const engine = new RulesEngine(deps(async (t, _p, q) => void sent.push([t, q])));
    engine.addRule('r1', rule('copy/${topic(2)}/x', 1));
    engine.addRule('r2', rule('$$aws/things/${topic(2)}/shadow/update'));
    await engine.handleMessage({ topic: 'a/thing-1', payload: '{}' });
    expect(sent.sort()).toEqual([
      ['$aws/things/thing-1/shadow/update', 0],
      ['copy/thing-1/x', 1],
    ]);
  });

  test.each([
    ['$aws/things/t/shadow/update', undefined, /write a reserved topic as \$\$/],
    ['$$aws/rules/other/dt/x', undefined, /a Basic Ingest topic .* is not a republish target/],
    ['$$aws/things/t/jobs/get', undefined, /reserved Jobs topics is not supported/],
    ['ok', 2, /Qos 2 is not valid \(0 or 1\)/],
  ])('%s (Qos %s) is refused at load', (topic, qos, message) => {
    const engine = new RulesEngine(deps(async () => undefined));
    expect(() => engine.addRule('bad', rule(topic, qos))).toThrow(RuleLoadError);
    expect(() => engine.addRule('bad', rule(topic, qos))).toThrow(message);
  });

  test('a topic that evaluates to a wildcard fails the action (the error action runs)', async () => {
    const engine = new RulesEngine(deps(async () => undefined));
    engine.addRule('w', rule('copy/${name}'));
    await engine.handleMessage({ topic: 'a/b', payload: '{"name":"#"}' });
    expect(engine.stats()[0]).toMatchObject({ matched: 1, actionFailures: 1 });
  });

  test('isUndefined(): true for a missing field only; NOT isUndefined() in WHERE', () => {
    const ctx = (payload: unknown): MessageContext => ({
      topic: 'a/b',
      payload: Buffer.from(JSON.stringify(payload)),
      accountId: ACCOUNT,
      timestamp: 1,
      traceId: 't',
    });
    const stmt = parseSql(
      "SELECT isUndefined(fw) AS u, isUndefined(x) AS n FROM 'a/+' WHERE NOT isUndefined(fw)",
    );
    expect(runStatement(stmt, ctx({ fw: '1.0.0', x: null }))).toEqual({
      matched: true,
      json: { u: false, n: false },
    });
    expect(runStatement(stmt, ctx({ connection: 'lost' }))).toEqual({ matched: false });
    expect(() => parseSql("SELECT isUndefined(a, b) FROM 'a'")).toThrow(/takes 1 argument/);
  });
});
