import {
  RuleLoadError,
  RulesEngine,
  type RuleEngineDeps,
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
