import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { RulesEngine } from '../../../lab/rules/engine';
import type { CloudAssembly } from '../../../lab/runtime/cdk-out';
import { checkInvokePermission } from '../../../lab/runtime/handlers/lambda';
import type { ResourceHandler } from '../../../lab/runtime/handlers/types';
import type { IotCoreLike } from '../../../lab/runtime/iot-core';
import { LabKinesis } from '../../../lab/runtime/kinesis-client';
import { LambdaRunner } from '../../../lab/runtime/lambda-runner';
import { QueueStore } from '../../../lab/runtime/queues';
import { LabS3 } from '../../../lab/runtime/s3-client';
import { TimeSeriesStore } from '../../../lab/runtime/time-series';
import {
  buildTopology,
  DEFAULT_HANDLERS,
  generatedName,
  handlerRegistry,
} from '../../../lab/runtime/topology';

function fakeIot() {
  const registry = {
    policies: new Map<string, unknown>(),
    groups: [] as string[],
    types: [] as string[],
    templates: [] as unknown[],
  };
  const iot: IotCoreLike = {
    controlPlaneUrl: 'http://127.0.0.1:9',
    mqtt: { host: '127.0.0.1', port: 9, caPem: '' },
    registry: {
      putPolicy: (n, d) => registry.policies.set(n, d),
      putThingType: (n) => registry.types.push(n),
      putThingGroup: (n) => registry.groups.push(n),
      putProvisioningTemplate: (t) => registry.templates.push(t),
    },
    onMessage: () => undefined,
    publish: async () => undefined,
    stats: () => ({}),
    stop: async () => undefined,
  };
  return { iot, registry };
}

const assembly = (
  resources: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): CloudAssembly => ({
  dir: '/nowhere',
  stacks: [
    {
      id: 'S',
      stackName: 'S',
      templateFile: '/nowhere/S.template.json',
      template: { Resources: resources, ...extra } as never,
      assets: new Map(),
      tags: {},
    },
  ],
  assetForS3Key: () => undefined,
});

describe('topology', () => {
  let labDir: string;
  beforeAll(() => {
    labDir = mkdtempSync(join(tmpdir(), 'lab-topology-'));
  });
  afterAll(() => rmSync(labDir, { recursive: true, force: true }));

  async function build(
    resources: Record<string, unknown>,
    extra: Record<string, unknown> = {},
    handlers?: ResourceHandler[],
    cloudAssembly: CloudAssembly = assembly(resources, extra),
  ) {
    const { iot, registry } = fakeIot();
    const queues = new QueueStore();
    const runner = new LambdaRunner({ region: 'us-east-1', accountId: '123456789012', endpoints: {} });
    const rules = new RulesEngine({
      accountId: '123456789012',
      region: 'us-east-1',
      invokeLambda: async () => null,
      publish: async () => undefined,
      sqsSendMessage: async () => undefined,
    });
    const out = await buildTopology({
      assembly: cloudAssembly,
      region: 'us-east-1',
      accountId: '123456789012',
      labDir,
      dynamodb: new DynamoDBClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' }),
      kinesis: new LabKinesis('http://127.0.0.1:9'),
      iot,
      runner,
      rules,
      queues,
      s3: new LabS3('http://127.0.0.1:9', 'us-east-1'),
      timeSeries: new TimeSeriesStore(labDir),
      handlers: handlers ? handlerRegistry([...DEFAULT_HANDLERS, ...handlers]) : undefined,
    });
    return { ...out, registry, queues, rules, runner };
  }

  test('every type is either handled or listed as UNSUPPORTED', async () => {
    const { topology, registry } = await build(
      {
        Dlq: { Type: 'AWS::SQS::Queue', Properties: {} },
        DevicePolicy: {
          Type: 'AWS::IoT::Policy',
          Properties: {
            PolicyDocument: {
              Statement: [
                {
                  Effect: 'Allow',
                  Action: 'iot:Connect',
                  Resource: {
                    'Fn::Join': [
                      '',
                      [
                        'arn:aws:iot:',
                        { Ref: 'AWS::Region' },
                        ':',
                        { Ref: 'AWS::AccountId' },
                        ':client/${iot:Connection.Thing.ThingName}',
                      ],
                    ],
                  },
                },
              ],
            },
          },
        },
        Group: { Type: 'AWS::IoT::ThingGroup', Properties: { ThingGroupName: 'canary' } },
        Role: { Type: 'AWS::IAM::Role', Properties: {} },
        Alarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { AlarmActions: [{ Ref: 'Topic' }] } },
        Topic: { Type: 'AWS::SNS::Topic', Properties: {} },
        Rule: {
          Type: 'AWS::IoT::TopicRule',
          Properties: {
            RuleName: 'presence',
            TopicRulePayload: {
              Sql: "SELECT * FROM 'a'",
              Actions: [{ Republish: { Topic: 'b', RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] } } }],
              ErrorAction: { Sqs: { QueueUrl: { Ref: 'Dlq' } } },
            },
          },
        },
      },
      {
        Outputs: {
          PolicyName: { Value: { Ref: 'DevicePolicy' } },
          DlqArn: { Value: { 'Fn::GetAtt': ['Dlq', 'Arn'] } },
        },
      },
    );
    expect(topology.unsupported.map((r) => [r.logicalId, r.type])).toEqual([['Topic', 'AWS::SNS::Topic']]);
    expect(topology.summary.filter((l) => l.includes('UNSUPPORTED'))).toEqual([
      expect.any(String),
      '  UNSUPPORTED AWS::SNS::Topic Topic: no lab handler for this type',
    ]);
    expect(topology.summary[0]).toMatch(/1 UNSUPPORTED/);
    expect(topology.summary.join('\n')).toMatch(/acknowledged: .*AWS::CloudWatch::Alarm ×1/);
    expect(topology.rules).toEqual({ Rule: 'presence' });
    expect(topology.thingGroups).toEqual({ Group: 'canary' });
    const policyName = generatedName('S', 'DevicePolicy', 128);
    expect(topology.policies).toEqual({ DevicePolicy: policyName });
    expect(JSON.stringify(registry.policies.get(policyName))).toContain(
      'arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}',
    );
    expect(topology.outputsByStack.S).toEqual({
      PolicyName: policyName,
      DlqArn: `arn:aws:sqs:us-east-1:123456789012:${topology.queues.Dlq.name}`,
    });
    expect(topology.queues.Dlq.url).toBe(
      `https://sqs.us-east-1.amazonaws.com/123456789012/${topology.queues.Dlq.name}`,
    );
  });

  test('a new type is one handler away', async () => {
    const created: string[] = [];
    const snsHandler: ResourceHandler = {
      types: ['AWS::SNS::Topic'],
      phase: 10,
      nameProperty: 'TopicName',
      ref: (name, c) => `arn:aws:sns:${c.region}:${c.accountId}:${name}`,
      create: (ctx) => {
        created.push(ctx.physicalName);
        return { status: 'created' };
      },
    };
    const { topology } = await build(
      { Topic: { Type: 'AWS::SNS::Topic', Properties: { TopicName: 'alarms' } } },
      { Outputs: { T: { Value: { Ref: 'Topic' } } } },
      [snsHandler],
    );
    expect(created).toEqual(['alarms']);
    expect(topology.unsupported).toEqual([]);
    expect(topology.outputsByStack.S.T).toBe('arn:aws:sns:us-east-1:123456789012:alarms');
  });

  test('each stack keeps its own outputs, also under the same output name', async () => {
    const stack = (name: string, tableName: string) => ({
      id: name,
      stackName: name,
      templateFile: `/nowhere/${name}.template.json`,
      template: {
        Resources: { Table: { Type: 'AWS::SQS::Queue', Properties: { QueueName: tableName } } },
        Outputs: { QueueName: { Value: { 'Fn::GetAtt': ['Table', 'QueueName'] } }, Only: { Value: name } },
      } as never,
      assets: new Map(),
      tags: {},
    });
    const { topology } = await build({}, {}, undefined, {
      dir: '/nowhere',
      stacks: [stack('Fleet', 'fleet-dlq'), stack('Other', 'other-dlq')],
      assetForS3Key: () => undefined,
    });
    expect(topology.stacks).toEqual(['Fleet', 'Other']);
    expect(topology.outputsByStack).toEqual({
      Fleet: { QueueName: 'fleet-dlq', Only: 'Fleet' },
      Other: { QueueName: 'other-dlq', Only: 'Other' },
    });
  });

  test('resources whose condition is false are skipped and listed', async () => {
    const { topology } = await build(
      { Q: { Type: 'AWS::SQS::Queue', Condition: 'Never', Properties: {} } },
      {
        Parameters: { Stage: { Type: 'String', Default: 'dev' } },
        Conditions: { Never: { 'Fn::Equals': [{ Ref: 'Stage' }, 'prod'] } },
      },
    );
    expect(topology.resources[0]).toMatchObject({ status: 'skipped', detail: 'condition Never is false' });
    expect(topology.queues).toEqual({});
  });

  test('an unsupported rule action fails the start, naming the rule and resource', async () => {
    await expect(
      build({
        R: {
          Type: 'AWS::IoT::TopicRule',
          Properties: {
            RuleName: 'ts',
            TopicRulePayload: { Sql: "SELECT * FROM 'a'", Actions: [{ Firehose: {} }] },
          },
        },
      }),
    ).rejects.toThrow(
      /lab start failed at R \(AWS::IoT::TopicRule\): topic rule ts: .*Firehose is not supported/,
    );
  });

  describe('versions and aliases (a hook with provisioned concurrency)', () => {
    const fnArn = (name: string) => `arn:aws:lambda:us-east-1:123456789012:function:${name}`;
    const resources = {
      Hook: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          FunctionName: 'hook',
          Code: { ZipFile: 'exports.handler = async () => 1;' },
          Handler: 'index.handler',
          Runtime: 'nodejs22.x',
        },
      },
      HookVersion: { Type: 'AWS::Lambda::Version', Properties: { FunctionName: { Ref: 'Hook' } } },
      HookLive: {
        Type: 'AWS::Lambda::Alias',
        Properties: {
          FunctionName: { Ref: 'Hook' },
          FunctionVersion: { 'Fn::GetAtt': ['HookVersion', 'Version'] },
          Name: 'live',
          ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
        },
      },
      HookPermission: {
        Type: 'AWS::Lambda::Permission',
        Properties: {
          Action: 'lambda:InvokeFunction',
          FunctionName: { Ref: 'HookLive' },
          Principal: 'iot.amazonaws.com',
          SourceAccount: { Ref: 'AWS::AccountId' },
        },
      },
      Template: {
        Type: 'AWS::IoT::ProvisioningTemplate',
        Properties: {
          TemplateName: 'acme-sensor',
          Enabled: true,
          TemplateBody: '{}',
          PreProvisioningHook: { PayloadVersion: '2020-04-01', TargetArn: { Ref: 'HookLive' } },
        },
      },
    };
    const outputs = {
      Outputs: {
        AliasRef: { Value: { Ref: 'HookLive' } },
        AliasArn: { Value: { 'Fn::GetAtt': ['HookLive', 'AliasArn'] } },
        VersionRef: { Value: { Ref: 'HookVersion' } },
        VersionNumber: { Value: { 'Fn::GetAtt': ['HookVersion', 'Version'] } },
      },
    };

    test('Ref and GetAtt of an alias or version are qualified ARNs of the function', async () => {
      const { topology } = await build(resources, outputs);
      expect(topology.outputsByStack.S).toEqual({
        AliasRef: `${fnArn('hook')}:live`,
        AliasArn: `${fnArn('hook')}:live`,
        VersionRef: `${fnArn('hook')}:1`,
        VersionNumber: '1',
      });
      expect(topology.functionQualifiers).toEqual({
        HookVersion: { arn: `${fnArn('hook')}:1`, functionArn: fnArn('hook') },
        HookLive: { arn: `${fnArn('hook')}:live`, functionArn: fnArn('hook') },
      });
      expect(topology.unsupported).toEqual([]);
    });

    test('the template accepts the alias as its hook; the summary says provisioned concurrency is not emulated', async () => {
      const { topology, registry } = await build(resources, outputs);
      expect(registry.templates).toEqual([
        expect.objectContaining({ name: 'acme-sensor', hookArn: `${fnArn('hook')}:live` }),
      ]);
      expect(topology.summary.join('\n')).toMatch(
        /alias +HookLive → .*:function:hook:live \(.*→ version 1; provisioned concurrency 2 accepted, not emulated/,
      );
    });

    test('the permission is recorded on the alias, not on the function', async () => {
      const { topology } = await build(resources, outputs);
      expect(topology.permissions).toEqual([
        expect.objectContaining({ functionArn: `${fnArn('hook')}:live`, principal: 'iot.amazonaws.com' }),
      ]);
      const allowed = (target: string) =>
        checkInvokePermission(topology.permissions, target, 'iot.amazonaws.com', 'arn:any', '123456789012');
      expect(allowed(`${fnArn('hook')}:live`)).toBeUndefined();
      expect(allowed(fnArn('hook'))).toMatch(/^AccessDeniedException: .* not authorized to invoke/);
    });

    test.each([
      ['the unqualified ARN', fnArn('hook'), fnArn('hook')],
      ['$LATEST', `${fnArn('hook')}:$LATEST`, fnArn('hook')],
      ['the alias ARN', `${fnArn('hook')}:live`, `${fnArn('hook')}:live`],
      ['the version ARN', `${fnArn('hook')}:1`, `${fnArn('hook')}:1`],
      ['name:alias', 'hook:live', `${fnArn('hook')}:live`],
    ])('%s resolves to the function', async (_what, ref, qualifiedArn) => {
      const { runner } = await build(resources, outputs);
      expect(runner.resolveQualified(ref)).toMatchObject({ functionArn: fnArn('hook'), qualifiedArn });
    });

    test('a qualifier the stack does not declare does not resolve', async () => {
      const { runner } = await build(resources, outputs);
      expect(runner.resolveQualified(`${fnArn('hook')}:2`)).toBeUndefined();
      expect(runner.resolveQualified(`${fnArn('hook')}:staging`)).toBeUndefined();
    });

    test('an alias on a version the stack does not declare fails the start, naming the fix', async () => {
      const { HookVersion: _dropped, ...withoutVersion } = resources;
      await expect(
        build({
          ...withoutVersion,
          HookLive: {
            ...resources.HookLive,
            Properties: { ...resources.HookLive.Properties, FunctionVersion: '7' },
          },
        }),
      ).rejects.toThrow(
        /HookLive .*version 7 of .*hook is not declared by the stack \(add the AWS::Lambda::Version\)/,
      );
    });
  });

  test.each<[string, string, number, RegExp]>([
    ['S', 'Table', 255, /^S-Table-[A-Z0-9]{13}$/],
    [
      'AVeryLongStackNameForTesting',
      'AndAnEvenLongerLogicalIdOfAFunction1234ABCD',
      64,
      /^.{50}-[A-Z0-9]{13}$/,
    ],
  ])('generatedName(%s, %s, %d)', (stack, id, max, pattern) => {
    const name = generatedName(stack, id, max);
    expect(name).toMatch(pattern);
    expect(name.length).toBeLessThanOrEqual(max);
    expect(generatedName(stack, id, max)).toBe(name);
  });
});
