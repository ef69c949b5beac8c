import {
  RuleLoadError,
  RulesEngine,
  TIMESTREAM_MAX_VALUES,
  type RuleEngineDeps,
  type TimestreamRecord,
  type TopicRulePayload,
} from '../../../lab/rules/engine';

function harness(overrides: Partial<RuleEngineDeps> = {}) {
  const calls: { kind: string; args: unknown[] }[] = [];
  const deps: RuleEngineDeps = {
    accountId: '123456789012',
    region: 'us-east-1',
    invokeLambda: async (arn, event) => {
      calls.push({ kind: 'lambda', args: [arn, event] });
      return null;
    },
    publish: async (topic, payload) => {
      calls.push({ kind: 'publish', args: [topic, payload.toString()] });
    },
    kinesisPutRecord: async (stream, pk, data) => {
      calls.push({ kind: 'kinesis', args: [stream, pk, data.toString()] });
    },
    sqsSendMessage: async (url, body) => {
      calls.push({ kind: 'sqs', args: [url, body] });
    },
    dynamoPutItem: async (table, item) => {
      calls.push({ kind: 'ddb', args: [table, item] });
    },
    s3PutObject: async (bucket, key, body) => {
      calls.push({ kind: 's3', args: [bucket, key, body.toString()] });
    },
    timestreamWrite: async (db, table, records) => {
      calls.push({ kind: 'timestream', args: [db, table, records] });
    },
    influxDbWrite: async (destination, target, lines) => {
      calls.push({ kind: 'influx', args: [destination, target, lines] });
    },
    ...overrides,
  };
  return { engine: new RulesEngine(deps), calls };
}

const FN = 'arn:aws:lambda:us-east-1:123456789012:function:fn';
const DLQ = 'https://sqs.us-east-1.amazonaws.com/123456789012/dlq';

const rule = (
  sql: string,
  actions: Record<string, unknown>[],
  errorAction?: Record<string, unknown>,
): TopicRulePayload => ({
  Sql: sql,
  AwsIotSqlVersion: '2016-03-23',
  Actions: actions,
  ErrorAction: errorAction,
});

describe('RulesEngine', () => {
  test('routes a matching message to every action with substitution templates', async () => {
    const { engine, calls } = harness();
    engine.addRule(
      'Telemetry',
      rule("SELECT *, topic(3) AS thing FROM 'dt/fleet/+/telemetry' WHERE temp > 0", [
        { Lambda: { FunctionArn: FN } },
        { Republish: { Topic: 'copy/${topic(3)}', Qos: 0 } },
        { Kinesis: { StreamName: 's', PartitionKey: '${clientid()}', RoleArn: 'r' } },
        { DynamoDBv2: { PutItem: { TableName: 't' }, RoleArn: 'r' } },
      ]),
    );
    await engine.handleMessage({
      topic: 'dt/fleet/d1/telemetry',
      payload: Buffer.from('{"temp":5}'),
      clientId: 'd1',
    });
    await engine.idle();
    expect(calls).toEqual(
      expect.arrayContaining([
        { kind: 'lambda', args: [FN, { temp: 5, thing: 'd1' }] },
        { kind: 'publish', args: ['copy/d1', '{"temp":5,"thing":"d1"}'] },
        { kind: 'kinesis', args: ['s', 'd1', '{"temp":5,"thing":"d1"}'] },
        { kind: 'ddb', args: ['t', { temp: { N: '5' }, thing: { S: 'd1' } }] },
      ]),
    );
    await engine.handleMessage({ topic: 'dt/fleet/d1/telemetry', payload: Buffer.from('{"temp":-1}') });
    await engine.handleMessage({ topic: 'dt/fleet/d1/health', payload: Buffer.from('{"temp":5}') });
    expect(engine.stats()[0].matched).toBe(1);
  });

  test('a failed action runs the error action once with the AWS error payload', async () => {
    const { engine, calls } = harness({
      kinesisPutRecord: async () => {
        throw new Error('ResourceNotFoundException: stream s not found');
      },
      publish: async () => {
        throw new Error('publish refused');
      },
    });
    engine.addRule(
      'R1',
      rule("SELECT * FROM 'a/#'", [{ Kinesis: { StreamName: 's' } }, { Republish: { Topic: 'b' } }], {
        Sqs: { QueueUrl: DLQ, UseBase64: false },
      }),
    );
    await engine.handleMessage({ topic: 'a/x', payload: Buffer.from('{"v":1}'), clientId: 'dev-1' });
    const sqs = calls.filter((c) => c.kind === 'sqs');
    expect(sqs).toHaveLength(1);
    const body = JSON.parse(sqs[0].args[1] as string);
    expect(body).toEqual({
      ruleName: 'R1',
      topic: 'a/x',
      cloudwatchTraceId: expect.any(String),
      clientId: 'dev-1',
      base64OriginalPayload: Buffer.from('{"v":1}').toString('base64'),
      failures: [
        {
          failedAction: 'KinesisAction',
          failedResource: 's',
          errorMessage: expect.stringContaining('stream s not found'),
        },
        {
          failedAction: 'RepublishAction',
          failedResource: 'b',
          errorMessage: expect.stringContaining('publish refused'),
        },
      ],
    });
    expect(engine.stats()[0]).toMatchObject({ actionFailures: 2, errorActions: 1 });
  });

  test('Lambda action without permission fails and reaches the error action; handler errors (Event invoke) do not', async () => {
    const { engine, calls } = harness({
      checkLambdaInvoke: (arn) =>
        arn === FN ? undefined : `AccessDeniedException: no permission for ${arn}`,
      invokeLambda: async () => {
        throw new Error('handler blew up');
      },
    });
    engine.addRule(
      'Ok',
      rule("SELECT * FROM 'a'", [{ Lambda: { FunctionArn: FN } }], { Sqs: { QueueUrl: DLQ } }),
    );
    engine.addRule(
      'Denied',
      rule("SELECT * FROM 'a'", [{ Lambda: { FunctionArn: `${FN}2` } }], { Sqs: { QueueUrl: DLQ } }),
    );
    await engine.handleMessage({ topic: 'a', payload: Buffer.from('{}') });
    await engine.idle();
    const bodies = calls.filter((c) => c.kind === 'sqs').map((c) => JSON.parse(c.args[1] as string));
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({
      ruleName: 'Denied',
      failures: [{ failedAction: 'LambdaAction', errorMessage: expect.stringContaining('AccessDenied') }],
    });
    expect(engine.stats().find((s) => s.ruleName === 'Ok')?.lambdaAsyncErrors).toBe(1);
  });

  test("lambdaInvocation 'request-response' routes handler errors to the error action", async () => {
    const { engine, calls } = harness({
      lambdaInvocation: 'request-response',
      invokeLambda: async () => {
        throw new Error('handler blew up');
      },
    });
    engine.addRule(
      'R',
      rule("SELECT * FROM 'a'", [{ Lambda: { FunctionArn: FN } }], {
        Sqs: { QueueUrl: DLQ, UseBase64: true },
      }),
    );
    await engine.handleMessage({ topic: 'a', payload: Buffer.from('{}') });
    const sqs = calls.filter((c) => c.kind === 'sqs');
    expect(JSON.parse(Buffer.from(sqs[0].args[1] as string, 'base64').toString())).toMatchObject({
      failures: [{ errorMessage: expect.stringContaining('handler blew up') }],
    });
  });

  test('Basic Ingest triggers only the named rule, and topic() omits the prefix', async () => {
    const { engine, calls } = harness();
    engine.addRule(
      'Ingest',
      rule("SELECT topic(3) AS thing FROM 'dt/fleet/+/telemetry'", [{ Republish: { Topic: 'out' } }]),
    );
    engine.addRule('Other', rule("SELECT * FROM '#'", [{ Republish: { Topic: 'other' } }]));
    await engine.handleMessage({
      topic: '$aws/rules/Ingest/dt/fleet/d9/telemetry',
      payload: Buffer.from('{}'),
    });
    expect(calls).toEqual([{ kind: 'publish', args: ['out', '{"thing":"d9"}'] }]);
  });

  test('disabled rules do not run', async () => {
    const { engine, calls } = harness();
    engine.addRule('Off', {
      ...rule("SELECT * FROM 'a'", [{ Republish: { Topic: 'b' } }]),
      RuleDisabled: true,
    });
    await engine.handleMessage({ topic: 'a', payload: Buffer.from('{}') });
    expect(calls).toEqual([]);
  });

  test.each<[string, TopicRulePayload, RegExp]>([
    [
      'unsupported action',
      rule("SELECT * FROM 'a'", [{ CloudwatchMetric: { MetricName: 'd' } }]),
      /topic rule Bad: Actions\[0\]\.CloudwatchMetric: action CloudwatchMetric is not supported/,
    ],
    [
      'unsupported error action',
      rule("SELECT * FROM 'a'", [{ Republish: { Topic: 'x' } }], { Firehose: { DeliveryStreamName: 'b' } }),
      /ErrorAction\.Firehose: action Firehose is not supported/,
    ],
    [
      'unsupported SQL function',
      rule("SELECT aws_lambda('x', *) FROM 'a'", [{ Republish: { Topic: 'x' } }]),
      /topic rule Bad: SQL not supported: function aws_lambda/,
    ],
    [
      'bad topic filter',
      rule("SELECT * FROM 'a/#/b'", [{ Republish: { Topic: 'x' } }]),
      /topic rule Bad: FROM not supported/,
    ],
    [
      'bad template',
      rule("SELECT * FROM 'a'", [{ Republish: { Topic: '${get_thing_shadow()}' } }]),
      /topic rule Bad: Actions\[0\]\.Republish\.Topic/,
    ],
    ['no actions', rule("SELECT * FROM 'a'", []), /has no actions/],
  ])('fails loudly at load: %s', (_n, payload, message) => {
    const { engine } = harness();
    expect(() => engine.addRule('Bad', payload)).toThrow(RuleLoadError);
    expect(() => engine.addRule('Bad', payload)).toThrow(message);
  });
});

const ROLE = 'arn:aws:iam::123456789012:role/rules';
const ERROR_KEY =
  'fleet_health/${parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")}/${timestamp()}-${newuuid()}.json';

describe('RulesEngine: S3, Timestream and InfluxDB actions, registry data, action timeouts', () => {
  const lots: Record<string, Record<string, string>> = { 'fleet-001': { lot: 'LAB-A', ring: 'canary' } };
  const registryData = (api: string, thing: string): unknown =>
    api === 'DescribeThing' && lots[thing]
      ? { thingName: thing, thingTypeName: 'fleet-device', attributes: lots[thing], version: 1 }
      : undefined;
  const health = {
    ts: 1700000000000,
    fw: '1.2.0',
    bootId: 'b-1',
    uptimeS: 60,
    resetReason: 'POWER_ON',
    heapFreeB: 40000,
    rssiDbm: -61,
  };
  const healthSql =
    "SELECT ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm, connection, 'health' AS type, topic(3) AS thing, " +
    "clientid() AS clientId, timestamp() AS receivedAt, get_registry_data('DescribeThing', topic(3), '" +
    ROLE +
    "').attributes.lot AS lot FROM 'dt/fleet/+/health'";
  const send = (engine: RulesEngine, payload: unknown = health) =>
    engine.handleMessage({
      topic: 'dt/fleet/fleet-001/health',
      payload: Buffer.from(JSON.stringify(payload)),
      clientId: 'fleet-001',
    });

  test('S3: the SELECT output at the Key template', async () => {
    const { engine, calls } = harness();
    engine.addRule(
      'Archive',
      rule("SELECT seq FROM 'dt/fleet/+/telemetry'", [
        {
          S3: {
            BucketName: 'archive',
            Key: 'raw/${topic(3)}/${seq}.json',
            RoleArn: ROLE,
            CannedAcl: 'private',
          },
        },
      ]),
    );
    await engine.handleMessage({ topic: 'dt/fleet/fleet-009/telemetry', payload: Buffer.from('{"seq":4}') });
    expect(calls).toEqual([{ kind: 's3', args: ['archive', 'raw/fleet-009/4.json', '{"seq":4}'] }]);
  });

  test('an S3 error action writes the AWS error message under the parse_time key', async () => {
    const { engine, calls } = harness({
      kinesisPutRecord: async () => {
        throw new Error('ProvisionedThroughputExceededException: slow down');
      },
    });
    engine.addRule(
      'fleet_health',
      rule(healthSql, [{ Kinesis: { StreamName: 's', PartitionKey: '${topic(3)}', RoleArn: ROLE } }], {
        S3: { BucketName: 'errors', Key: ERROR_KEY, RoleArn: ROLE },
      }),
    );
    const before = Date.now();
    await send(engine);
    const s3 = calls.filter((c) => c.kind === 's3');
    expect(s3).toHaveLength(1);
    const [bucket, key, body] = s3[0].args as [string, string, string];
    expect(bucket).toBe('errors');
    const m = /^fleet_health\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d+)-[0-9a-f-]{36}\.json$/.exec(key);
    expect(m).not.toBeNull();
    const receivedAt = Number(m?.[5]);
    expect(receivedAt).toBeGreaterThanOrEqual(before);
    expect(`${m?.[1]}-${m?.[2]}-${m?.[3]}T${m?.[4]}`).toBe(new Date(receivedAt).toISOString().slice(0, 13));
    expect(JSON.parse(body)).toEqual({
      ruleName: 'fleet_health',
      topic: 'dt/fleet/fleet-001/health',
      cloudwatchTraceId: expect.any(String),
      clientId: 'fleet-001',
      base64OriginalPayload: Buffer.from(JSON.stringify(health)).toString('base64'),
      failures: [
        {
          failedAction: 'KinesisAction',
          failedResource: 's',
          errorMessage: expect.stringContaining('ProvisionedThroughputExceededException'),
        },
      ],
    });
  });

  test('Timestream: one single-measure record per non-dimension attribute, typed, dimensions from templates', async () => {
    const { engine, calls } = harness({ registryData });
    engine.addRule(
      'Ts',
      rule(healthSql, [
        {
          Timestream: {
            DatabaseName: 'fleet',
            TableName: 'health',
            RoleArn: ROLE,
            Dimensions: [
              { Name: 'thing', Value: '${topic(3)}' },
              {
                Name: 'lot',
                Value: `\${get_registry_data("DescribeThing", topic(3), "${ROLE}").attributes.lot}`,
              },
            ],
            Timestamp: { Value: '${ts}', Unit: 'MILLISECONDS' },
          },
        },
      ]),
    );
    await send(engine);
    const [call] = calls.filter((c) => c.kind === 'timestream');
    const [db, table, records] = call.args as [string, string, TimestreamRecord[]];
    expect([db, table]).toEqual(['fleet', 'health']);
    const dims = [
      { Name: 'thing', Value: 'fleet-001', DimensionValueType: 'VARCHAR' },
      { Name: 'lot', Value: 'LAB-A', DimensionValueType: 'VARCHAR' },
    ];
    const byName = Object.fromEntries(records.map((r) => [r.MeasureName, r]));
    expect(Object.keys(byName).sort()).toEqual(
      [
        'ts',
        'fw',
        'bootId',
        'uptimeS',
        'resetReason',
        'heapFreeB',
        'rssiDbm',
        'type',
        'clientId',
        'receivedAt',
      ].sort(),
    );
    expect(byName.rssiDbm).toEqual({
      Dimensions: dims,
      MeasureName: 'rssiDbm',
      MeasureValue: '-61',
      MeasureValueType: 'BIGINT',
      Time: '1700000000000',
      TimeUnit: 'MILLISECONDS',
    });
    expect(byName.fw).toMatchObject({ MeasureValue: '1.2.0', MeasureValueType: 'VARCHAR' });
    expect(byName.type).toMatchObject({ MeasureValue: 'health', MeasureValueType: 'VARCHAR' });
  });

  test('Timestream: doubles, booleans, the receive time in the unit, and the limits that fail the action', async () => {
    const { engine, calls } = harness();
    engine.addRule(
      'Ts',
      rule(
        "SELECT * FROM 'm'",
        [
          {
            Timestream: {
              DatabaseName: 'd',
              TableName: 't',
              RoleArn: ROLE,
              Dimensions: [{ Name: 'device', Value: '${device}' }],
              Timestamp: { Value: '${timestamp()}', Unit: 'NANOSECONDS' },
            },
          },
        ],
        { Sqs: { QueueUrl: DLQ } },
      ),
    );
    await engine.handleMessage({ topic: 'm', payload: Buffer.from('{"device":"d1","temp":21.5,"ok":true}') });
    const [, , records] = calls.find((c) => c.kind === 'timestream')?.args as [
      string,
      string,
      TimestreamRecord[],
    ];
    expect(records.map((r) => [r.MeasureName, r.MeasureValue, r.MeasureValueType])).toEqual([
      ['temp', '21.5', 'DOUBLE'],
      ['ok', 'true', 'BOOLEAN'],
    ]);
    expect(records[0].Time).toMatch(/^\d{13}$/); // the template's value, as written
    await engine.handleMessage({ topic: 'm', payload: Buffer.from('{"temp":1}') }); // empty dimension
    const many = Object.fromEntries(
      Array.from({ length: TIMESTREAM_MAX_VALUES + 1 }, (_, i) => [`v${i}`, i]),
    );
    await engine.handleMessage({
      topic: 'm',
      payload: Buffer.from(JSON.stringify({ device: 'd1', ...many })),
    });
    const errors = calls.filter((c) => c.kind === 'sqs').map((c) => JSON.parse(c.args[1] as string));
    expect(errors.map((e) => e.failures[0].errorMessage)).toEqual([
      expect.stringMatching(/dimension device has an empty value/),
      expect.stringMatching(/101 values exceed the 100/),
    ]);
  });

  test('InfluxDB: one line-protocol point, tags from templates, fields typed, the receive time', async () => {
    const { engine, calls } = harness({ registryData });
    const dest = 'arn:aws:iot:us-east-1:123456789012:ruledestination/influxdb/x';
    engine.addRule(
      'Influx',
      rule(healthSql, [
        {
          InfluxDB: {
            DatabaseName: 'fleet',
            TableName: 'health',
            DestinationArn: dest,
            RoleArn: ROLE,
            Tags: { thing: '${topic(3)}', site: 'lab one' },
            TimestampUnit: 'ms',
          },
        },
      ]),
    );
    const before = Date.now();
    await send(engine, { ...health, bootId: 'b "1", x' });
    const [call] = calls.filter((c) => c.kind === 'influx');
    const [destination, target, lines] = call.args as [string, { database: string; table: string }, string[]];
    expect(destination).toBe(dest);
    expect(target).toMatchObject({ database: 'fleet', table: 'health' });
    expect(lines).toHaveLength(1);
    const m = /^health,site=lab\\ one,thing=fleet-001 (.+) (\d+)$/.exec(lines[0]);
    expect(m).not.toBeNull();
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(before);
    expect(m?.[1].split(/,(?=[a-zA-Z]+=)/)).toEqual([
      'ts=1700000000000i',
      'fw="1.2.0"',
      'bootId="b \\"1\\", x"',
      'uptimeS=60i',
      'resetReason="POWER_ON"',
      'heapFreeB=40000i',
      'rssiDbm=-61i',
      'type="health"',
      'clientId="fleet-001"',
      `receivedAt=${m?.[2]}i`,
      'lot="LAB-A"',
    ]);
  });

  test("InfluxDB: the point's time is the result's timestamp key (not a field), in TimestampUnit", async () => {
    const { engine, calls } = harness({ registryData });
    const dest = 'arn:aws:iot:us-east-1:123456789012:ruledestination/influxdb/x';
    engine.addRule(
      'Influx',
      rule(
        `SET @registry = get_registry_data('DescribeThing', topic(3), '${ROLE}') SELECT rssiDbm, ts AS timestamp FROM 'dt/fleet/+/health'`,
        [
          {
            InfluxDB: {
              DatabaseName: 'fleet',
              TableName: 'health',
              DestinationArn: dest,
              RoleArn: ROLE,
              Tags: {
                thing: '${topic(3)}',
                lot: '${@registry.attributes.lot}',
                ring: '${@registry.attributes.ring}',
              },
              TimestampUnit: 'ms',
            },
          },
        ],
      ),
    );
    await send(engine);
    const [, , lines] = calls.find((c) => c.kind === 'influx')?.args as [string, unknown, string[]];
    expect(lines).toEqual(['health,lot=LAB-A,ring=canary,thing=fleet-001 rssiDbm=-61i 1700000000000']);
  });

  test('SET variables reach the action templates and the error-action templates', async () => {
    const { engine, calls } = harness({
      registryData,
      kinesisPutRecord: async () => {
        throw new Error('down');
      },
    });
    engine.addRule(
      'R',
      rule(
        `SET @registry = get_registry_data('DescribeThing', topic(3), '${ROLE}'), @lot = @registry.attributes.lot SELECT @lot AS lot, @registry.attributes.ring AS ring FROM 'dt/fleet/+/health'`,
        [
          { Republish: { Topic: 'lots/${@lot}/${topic(3)}' } },
          { Kinesis: { StreamName: 's', PartitionKey: '${@registry.thingName}' } },
        ],
        { S3: { BucketName: 'errors', Key: 'by-lot/${@lot}/${newuuid()}.json' } },
      ),
    );
    await send(engine);
    expect(calls.find((c) => c.kind === 'publish')?.args).toEqual([
      'lots/LAB-A/fleet-001',
      '{"lot":"LAB-A","ring":"canary"}',
    ]);
    expect(calls.find((c) => c.kind === 's3')?.args[1]).toMatch(/^by-lot\/LAB-A\/[0-9a-f-]{36}\.json$/);
  });

  test('a template reading a variable the SQL does not set fails at load', () => {
    const { engine } = harness();
    expect(() =>
      engine.addRule('Bad', rule("SELECT * FROM 'a'", [{ Republish: { Topic: 'x/${@nope}' } }])),
    ).toThrow(/Republish\.Topic: variable @nope is not set by the rule's SQL/);
  });

  test('an action that does not answer in time fails and the error action runs', async () => {
    const { engine, calls } = harness({
      actionTimeoutMs: 50,
      kinesisPutRecord: () => new Promise<void>(() => undefined), // Kinesis stopped answering
    });
    engine.addRule(
      'fleet_telemetry',
      rule(
        "SELECT * FROM 'dt/fleet/+/telemetry'",
        [{ Kinesis: { StreamName: 'telemetry', RoleArn: ROLE } }],
        {
          S3: { BucketName: 'errors', Key: ERROR_KEY, RoleArn: ROLE },
        },
      ),
    );
    await engine.handleMessage({ topic: 'dt/fleet/d1/telemetry', payload: Buffer.from('{"seq":1}') });
    await engine.idle();
    const [s3] = calls.filter((c) => c.kind === 's3');
    expect(JSON.parse(s3.args[2] as string).failures).toEqual([
      {
        failedAction: 'KinesisAction',
        failedResource: 'telemetry',
        errorMessage: expect.stringContaining('Kinesis action did not complete within 50 ms'),
      },
    ]);
    expect(engine.stats()[0]).toMatchObject({ actionFailures: 1, actionTimeouts: 1, errorActions: 1 });
  });

  test('a Lambda action in request-response mode waits for the function (no action timeout)', async () => {
    const { engine, calls } = harness({
      actionTimeoutMs: 20,
      lambdaInvocation: 'request-response',
      invokeLambda: () => new Promise((r) => setTimeout(() => r(null), 60)),
    });
    engine.addRule(
      'L',
      rule("SELECT * FROM 'a'", [{ Lambda: { FunctionArn: FN } }], { Sqs: { QueueUrl: DLQ } }),
    );
    await engine.handleMessage({ topic: 'a', payload: Buffer.from('{}') });
    expect(calls.filter((c) => c.kind === 'sqs')).toEqual([]);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['S3 without Key', { S3: { BucketName: 'b' } }, /S3\.Key must be a non-empty string/],
    [
      'Timestream without dimensions',
      { Timestream: { DatabaseName: 'd', TableName: 't' } },
      /needs at least one dimension/,
    ],
    [
      'Timestream with a bad unit',
      {
        Timestream: {
          DatabaseName: 'd',
          TableName: 't',
          Dimensions: [{ Name: 'a', Value: 'b' }],
          Timestamp: { Value: '1', Unit: 'DAYS' },
        },
      },
      /Timestamp\.Unit DAYS is not valid/,
    ],
    [
      'InfluxDB without destination',
      { InfluxDB: { DatabaseName: 'd', TableName: 't' } },
      /DestinationArn must be/,
    ],
  ])('fails loudly at load: %s', (_n, action, message) => {
    const { engine } = harness();
    expect(() => engine.addRule('Bad', rule("SELECT * FROM 'a'", [action]))).toThrow(message);
  });
});
