import { rmSync } from 'node:fs';
import { DescribeTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { IotRegistry } from '../../../lab/iot/state';
import type { StartIotCoreOptions } from '../../../lab/runtime/iot-core';
import {
  LambdaFunctionError,
  loadCloudAssembly,
  startLabRuntime,
  type LabRuntime,
} from '../../../lab/runtime';
import { fakeIotCore, writeFixtureAssembly } from './fixture';

jest.setTimeout(60_000);

/** Wait for a condition that depends on asynchronous lab work (not a timing assertion). */
async function eventually<T>(probe: () => Promise<T | undefined>, attempts = 200): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not reached');
}

describe('lab runtime on a synthetic cdk.out', () => {
  let dir: string;
  let lab: LabRuntime;
  let iot: ReturnType<typeof fakeIotCore>;
  /** What the runtime handed IoT Core: how IoT invokes a pre-provisioning hook, region, account. */
  let iotOptions: StartIotCoreOptions;
  let ddb: DynamoDBClient;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = writeFixtureAssembly();
    iot = fakeIotCore();
    lab = await startLabRuntime({
      projectDir: dir,
      cdkOut: '.',
      synth: false,
      iotCore: async (opts) => {
        iotOptions = opts;
        return iot;
      },
      logDir: false,
      labDir: `${dir}/.lab`,
      schedules: 'manual',
      onFunctionLog: (fn, line) => logs.push(`${fn} ${line}`),
    });
    ddb = new DynamoDBClient({
      endpoint: lab.endpoints.dynamodb,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
  });

  afterAll(async () => {
    ddb?.destroy();
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('creates the tables with key schema and GSIs in the DynamoDB emulator', async () => {
    const name = lab.topology.tables.Table;
    expect(name).toMatch(/^Lab-Table-[A-Z0-9]{13}$/);
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: name }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    expect(Table?.GlobalSecondaryIndexes?.map((g) => g.IndexName)).toEqual(['byThing']);
    expect(lab.env.AWS_ENDPOINT_URL_DYNAMODB).toBe(lab.endpoints.dynamodb);
    expect(lab.topology.outputsByStack.Lab.TableName).toBe(name);
  });

  test('the summary lists what runs and the unsupported types', () => {
    const summary = lab.summary();
    expect(summary.join('\n')).toMatch(/UNSUPPORTED AWS::SNS::Topic AlarmTopic/);
    expect(summary.join('\n')).toMatch(/rule +GoodRule → Lab_GoodRule_/);
    expect(summary[1]).toMatch(/1 UNSUPPORTED/);
    expect(summary.join('\n')).toMatch(
      /alias +WorkerLive → .*:function:Lab-Worker-[A-Z0-9]+:live \(.*→ version 1; provisioned concurrency 2 accepted, not emulated/,
    );
  });

  describe('a pre-provisioning hook behind an alias (provisioned concurrency)', () => {
    const hookEvent = (template: string) => ({
      claimCertificateId: 'claim',
      certificateId: 'cert',
      templateArn: `${lab.outputsByStack.Lab.TemplateArnPrefix}${template}`,
      parameters: { SerialNumber: 'S1' },
    });

    test('IoT invokes the function through the alias ARN, allowed by the permission on the alias', async () => {
      const alias = lab.outputsByStack.Lab.HookAlias;
      expect(alias).toBe(`${lab.topology.functions.Worker.arn}:live`);
      const out = await iotOptions.invokeLambda(alias, hookEvent('live-hook'));
      expect(out).toMatchObject({
        fn: lab.topology.functions.Worker.name,
        event: { templateArn: expect.stringMatching(/:provisioningtemplate\/live-hook$/) },
      });
    });

    test('the permission on the alias does not let IoT invoke the unqualified function', async () => {
      await expect(
        iotOptions.invokeLambda(lab.topology.functions.Worker.arn, hookEvent('bare-hook')),
      ).rejects.toMatchObject({
        code: 'AccessDeniedException',
        message: expect.stringContaining('iot.amazonaws.com is not authorized to invoke'),
      });
    });

    test('a permission scoped to one template does not let another template invoke the alias', async () => {
      await expect(
        iotOptions.invokeLambda(lab.outputsByStack.Lab.HookAlias, hookEvent('bare-hook')),
      ).rejects.toMatchObject({
        code: 'AccessDeniedException',
      });
    });

    test("the template ARNs IoT Core sends the hook start with the stack's arn:${Partition}:iot:${Region}:${AccountId}:provisioningtemplate/", () => {
      // lab/iot builds its registry from the region and account the runtime hands it.
      const registry = new IotRegistry(iotOptions.region, iotOptions.accountId);
      const { templateArn } = registry.putProvisioningTemplate({
        name: 'live-hook',
        body: '{}',
        enabled: true,
      });
      expect(lab.outputsByStack.Lab.TemplateArnPrefix).toBe(
        'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/',
      );
      expect(templateArn).toBe(`${lab.outputsByStack.Lab.TemplateArnPrefix}live-hook`);
    });
  });

  test('invoke runs the bundled asset in a worker with resolved environment and a Lambda context', async () => {
    const out = (await lab.invoke('Worker', { mode: 'ok', n: 1 })) as Record<string, unknown>;
    expect(out).toMatchObject({
      table: lab.topology.tables.Table,
      queue: lab.topology.queues.Dlq.url,
      region: 'us-east-1',
      fn: lab.topology.functions.Worker.name,
      endpoint: lab.endpoints.dynamodb,
      event: { mode: 'ok', n: 1 },
    });
    expect(out.remaining).toBeGreaterThan(0);
    expect(out.remaining).toBeLessThanOrEqual(1000);
    expect(await lab.invoke(lab.topology.functions.Worker.arn, { mode: 'ok' })).toMatchObject({
      fn: lab.topology.functions.Worker.name,
    });
  });

  test('a handler error comes back as a Lambda function error', async () => {
    await expect(lab.invoke('Worker', { mode: 'throw' })).rejects.toMatchObject({
      errorType: 'TypeError',
      errorMessage: 'boom from handler',
    });
  });

  test('the function timeout is enforced and the sandbox is replaced', async () => {
    const before =
      lab.runner.stats().find((s) => s.functionName === lab.topology.functions.Worker.name)?.coldStarts ?? 0;
    const err = await lab.invoke('Worker', { mode: 'hang' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LambdaFunctionError);
    expect(err).toMatchObject({
      errorType: 'Sandbox.Timedout',
      errorMessage: expect.stringContaining('Task timed out after 1.00 seconds'),
    });
    await expect(lab.invoke('Worker', { mode: 'ok' })).resolves.toMatchObject({ event: { mode: 'ok' } });
    const after =
      lab.runner.stats().find((s) => s.functionName === lab.topology.functions.Worker.name)?.coldStarts ?? 0;
    expect(after).toBe(before + 1);
  });

  test('invocations beyond the per-function concurrency wait for a slot before they start', async () => {
    const name = lab.topology.functions.Worker.name;
    const starts = (): number => logs.filter((l) => l.startsWith(`${name} START RequestId`)).length;
    const before = starts();
    const calls = Array.from({ length: 6 }, () =>
      lab.invoke('Worker', { mode: 'hang' }).catch((e: unknown) => e),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(starts() - before).toBe(4); // the default cap; two wait
    const results = await Promise.all(calls);
    expect(starts() - before).toBe(6);
    for (const r of results) expect(r).toMatchObject({ errorType: 'Sandbox.Timedout' });
  });

  test('a matching message runs the rule, which invokes the Lambda in its worker', async () => {
    iot.emit({ topic: 'dev/d1/data', payload: Buffer.from(JSON.stringify({ temp: 3 })), clientId: 'd1' });
    iot.emit({ topic: 'dev/d2/data', payload: Buffer.from(JSON.stringify({ temp: -3 })), clientId: 'd2' });
    await lab.idle();
    expect(logs.some((l) => l.includes('"thing":"d1"'))).toBe(true);
    expect(logs.some((l) => l.includes('"thing":"d2"'))).toBe(false);
    expect(lab.stats().rules.find((r) => r.ruleName === lab.topology.rules.GoodRule)).toMatchObject({
      matched: 1,
      actionFailures: 0,
    });
  });

  test('a Lambda action the function may not be invoked by fails, and the error action delivers to the queue', async () => {
    const payload = Buffer.from(JSON.stringify({ hello: 'np' }));
    iot.emit({ topic: 'np/x', payload, clientId: 'dev-np' });
    await lab.idle();
    const dead = lab
      .deadLetters('Dlq')
      .filter((m) => (m.json as { ruleName?: string }).ruleName === 'no_permission');
    expect(dead).toHaveLength(1);
    expect(dead[0].json).toEqual({
      ruleName: 'no_permission',
      topic: 'np/x',
      cloudwatchTraceId: expect.any(String),
      clientId: 'dev-np',
      base64OriginalPayload: payload.toString('base64'),
      failures: [
        {
          failedAction: 'LambdaAction',
          failedResource: lab.topology.functions.Worker.arn,
          errorMessage: expect.stringContaining('not authorized to invoke'),
        },
      ],
    });
  });

  test('Kinesis rule action → stream → event-source mapping → consumer Lambda writes through the SDK', async () => {
    iot.emit({
      topic: 'tele/dev-7',
      payload: Buffer.from(JSON.stringify({ temp: 42, noise: true })),
      clientId: 'dev-7',
    });
    await lab.idle();
    const item = await eventually(async () => {
      const r = await ddb.send(
        new GetItemCommand({ TableName: lab.topology.tables.Table, Key: { pk: { S: 'dev-7' } } }),
      );
      return r.Item;
    });
    expect(item).toEqual({ pk: { S: 'dev-7' }, thing: { S: 'dev-7' }, temp: { N: '42' } });
  });

  test('schedules can be fired by hand with their target input', async () => {
    const [result] = await lab.fireSchedule('Nightly');
    expect(result).toMatchObject({ event: { mode: 'ok', from: 'schedule' } });
  });
});

describe("lab runtime with lambdaInvocation 'request-response'", () => {
  test('a failing Lambda routes to the rule error action', async () => {
    const dir = writeFixtureAssembly();
    const iot = fakeIotCore();
    const lab = await startLabRuntime({
      assembly: loadCloudAssembly(dir),
      projectDir: dir,
      iotCore: iot,
      logDir: false,
      labDir: `${dir}/.lab`,
      schedules: 'manual',
      lambdaInvocation: 'request-response',
    });
    try {
      iot.emit({
        topic: 'dev/d3/data',
        payload: Buffer.from(JSON.stringify({ temp: 1, mode: 'throw' })),
        clientId: 'd3',
      });
      await lab.idle();
      const dead = lab.deadLetters();
      expect(dead).toHaveLength(1);
      expect(dead[0].json).toMatchObject({
        ruleName: lab.topology.rules.GoodRule,
        topic: 'dev/d3/data',
        failures: [
          { failedAction: 'LambdaAction', errorMessage: expect.stringContaining('boom from handler') },
        ],
      });
    } finally {
      await lab.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(iot.stopped).toBe(true);
  });
});
