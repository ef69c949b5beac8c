/**
 * A small synthetic cloud assembly (what `cdk synth` writes) for the lab runtime tests: a
 * table with a GSI, a stream, a dead-letter queue, two functions whose bundled assets are tiny
 * handler files, topic rules with error actions, a Kinesis event-source mapping, a schedule,
 * a version and an alias with provisioned concurrency serving as a provisioning template's
 * pre-provisioning hook (permission on the alias), a second template whose hook IoT may not
 * invoke, and one type the lab does not support.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IotCoreLike, IotMessage } from '../../../lab/runtime/iot-core';

const WORKER_HASH = 'a'.repeat(64);
const CONSUMER_HASH = 'b'.repeat(64);

const WORKER_CODE = `
exports.handler = async (event, context) => {
  if (event && event.mode === 'throw') throw new TypeError('boom from handler');
  if (event && event.mode === 'hang') await new Promise((r) => setTimeout(r, 10000));
  const out = { table: process.env.TABLE_NAME, queue: process.env.DLQ_URL, region: process.env.AWS_REGION,
    fn: context.functionName, remaining: context.getRemainingTimeInMillis(), requestId: context.awsRequestId,
    endpoint: process.env.AWS_ENDPOINT_URL_DYNAMODB, event };
  console.log(JSON.stringify({ level: 'INFO', message: 'handled', thing: event && event.thing }));
  return out;
};
`;

const consumerCode = (sdkPath: string): string => `
const { DynamoDBClient, PutItemCommand } = require(${JSON.stringify(sdkPath)});
const client = new DynamoDBClient({});
exports.handler = async (event) => {
  for (const r of event.Records) {
    const body = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8'));
    await client.send(new PutItemCommand({ TableName: process.env.TABLE_NAME,
      Item: { pk: { S: r.kinesis.partitionKey }, thing: { S: r.kinesis.partitionKey }, temp: { N: String(body.temp) } } }));
  }
  return { batchItemFailures: [] };
};
`;

/** A function's Code property for the bundled asset `hash` (as cdk synth writes it). */
export const code = (hash: string) => ({
  S3Bucket: { 'Fn::Sub': 'cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}' },
  S3Key: `${hash}.zip`,
});

/** A Node.js function whose code is the asset `hash`, 10 s timeout. */
export const nodeFunction = (hash: string) => ({
  Type: 'AWS::Lambda::Function',
  Properties: { Code: code(hash), Handler: 'index.handler', Runtime: 'nodejs22.x', Timeout: 10 },
});

/** An event-source mapping of the function `fn` (a logical id) on the stream `Stream`, from TRIM_HORIZON. */
export const streamMapping = (fn: string, properties: Record<string, unknown>) => ({
  Type: 'AWS::Lambda::EventSourceMapping',
  Properties: {
    FunctionName: { Ref: fn },
    EventSourceArn: { 'Fn::GetAtt': ['Stream', 'Arn'] },
    StartingPosition: 'TRIM_HORIZON',
    ...properties,
  },
});

/**
 * Write a cloud assembly with one stack `Lab` (its template) and directory assets (hash →
 * index.js source) to a new temporary directory; returns the directory.
 */
export function writeAssembly(template: Record<string, unknown>, assets: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'lab-cdkout-'));
  for (const [hash, source] of Object.entries(assets)) {
    mkdirSync(join(dir, `asset.${hash}`));
    writeFileSync(join(dir, `asset.${hash}`, 'index.js'), source);
  }
  writeFileSync(join(dir, 'Lab.template.json'), JSON.stringify(template));
  const dest = (hash: string) => ({
    'current_account-current_region': { bucketName: 'cdk-assets', objectKey: `${hash}.zip` },
  });
  writeFileSync(
    join(dir, 'Lab.assets.json'),
    JSON.stringify({
      version: '48.0.0',
      files: Object.fromEntries(
        Object.keys(assets).map((hash) => [
          hash,
          { source: { path: `asset.${hash}`, packaging: 'zip' }, destinations: dest(hash) },
        ]),
      ),
    }),
  );
  writeFileSync(
    join(dir, 'manifest.json'),
    JSON.stringify({
      version: '48.0.0',
      artifacts: {
        'Lab.assets': { type: 'cdk:asset-manifest', properties: { file: 'Lab.assets.json' } },
        Lab: {
          type: 'aws:cloudformation:stack',
          properties: { templateFile: 'Lab.template.json' },
          dependencies: ['Lab.assets'],
        },
      },
    }),
  );
  return dir;
}

export function writeFixtureAssembly(): string {
  const template = {
    Parameters: {
      BootstrapVersion: {
        Type: 'AWS::SSM::Parameter::Value<String>',
        Default: '/cdk-bootstrap/hnb659fds/version',
      },
    },
    Resources: {
      Table: {
        Type: 'AWS::DynamoDB::Table',
        Properties: {
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'thing', AttributeType: 'S' },
          ],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          GlobalSecondaryIndexes: [
            {
              IndexName: 'byThing',
              KeySchema: [{ AttributeName: 'thing', KeyType: 'HASH' }],
              Projection: { ProjectionType: 'KEYS_ONLY' },
            },
          ],
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        },
      },
      Stream: { Type: 'AWS::Kinesis::Stream', Properties: { ShardCount: 1 } },
      Dlq: { Type: 'AWS::SQS::Queue', Properties: {} },
      Role: { Type: 'AWS::IAM::Role', Properties: { AssumeRolePolicyDocument: {} } },
      AlarmTopic: { Type: 'AWS::SNS::Topic', Properties: {} },
      Worker: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          Code: code(WORKER_HASH),
          Handler: 'index.handler',
          Runtime: 'nodejs22.x',
          Timeout: 1,
          MemorySize: 256,
          Role: { 'Fn::GetAtt': ['Role', 'Arn'] },
          Environment: { Variables: { TABLE_NAME: { Ref: 'Table' }, DLQ_URL: { Ref: 'Dlq' } } },
        },
      },
      Consumer: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          Code: code(CONSUMER_HASH),
          Handler: 'index.handler',
          Runtime: 'nodejs22.x',
          Timeout: 10,
          Environment: { Variables: { TABLE_NAME: { Ref: 'Table' } } },
        },
      },
      WorkerPermission: {
        Type: 'AWS::Lambda::Permission',
        Properties: {
          Action: 'lambda:InvokeFunction',
          FunctionName: { 'Fn::GetAtt': ['Worker', 'Arn'] },
          Principal: 'iot.amazonaws.com',
          SourceAccount: { Ref: 'AWS::AccountId' },
          SourceArn: { 'Fn::GetAtt': ['GoodRule', 'Arn'] },
        },
      },
      GoodRule: {
        Type: 'AWS::IoT::TopicRule',
        Properties: {
          TopicRulePayload: {
            Sql: "SELECT *, topic(2) AS thing FROM 'dev/+/data' WHERE temp > 0",
            AwsIotSqlVersion: '2016-03-23',
            Actions: [{ Lambda: { FunctionArn: { 'Fn::GetAtt': ['Worker', 'Arn'] } } }],
            ErrorAction: {
              Sqs: { QueueUrl: { Ref: 'Dlq' }, RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] }, UseBase64: false },
            },
          },
        },
      },
      NoPermissionRule: {
        Type: 'AWS::IoT::TopicRule',
        Properties: {
          RuleName: 'no_permission',
          TopicRulePayload: {
            Sql: "SELECT * FROM 'np/#'",
            Actions: [{ Lambda: { FunctionArn: { 'Fn::GetAtt': ['Worker', 'Arn'] } } }],
            ErrorAction: { Sqs: { QueueUrl: { Ref: 'Dlq' }, RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] } } },
          },
        },
      },
      TelemetryRule: {
        Type: 'AWS::IoT::TopicRule',
        Properties: {
          RuleName: 'telemetry',
          TopicRulePayload: {
            Sql: "SELECT temp FROM 'tele/+'",
            Actions: [
              {
                Kinesis: {
                  StreamName: { Ref: 'Stream' },
                  PartitionKey: '${topic(2)}',
                  RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] },
                },
              },
            ],
            ErrorAction: { Sqs: { QueueUrl: { Ref: 'Dlq' }, RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] } } },
          },
        },
      },
      ConsumerMapping: streamMapping('Consumer', {
        BatchSize: 10,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      }),
      WorkerVersion: { Type: 'AWS::Lambda::Version', Properties: { FunctionName: { Ref: 'Worker' } } },
      WorkerLive: {
        Type: 'AWS::Lambda::Alias',
        Properties: {
          FunctionName: { Ref: 'Worker' },
          FunctionVersion: { 'Fn::GetAtt': ['WorkerVersion', 'Version'] },
          Name: 'live',
          ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
        },
      },
      WorkerLivePermission: {
        Type: 'AWS::Lambda::Permission',
        Properties: {
          Action: 'lambda:InvokeFunction',
          FunctionName: { Ref: 'WorkerLive' },
          Principal: 'iot.amazonaws.com',
          SourceAccount: { Ref: 'AWS::AccountId' },
          SourceArn: { 'Fn::GetAtt': ['LiveTemplate', 'TemplateArn'] },
        },
      },
      LiveTemplate: {
        Type: 'AWS::IoT::ProvisioningTemplate',
        Properties: {
          TemplateName: 'live-hook',
          Enabled: true,
          TemplateBody: JSON.stringify({ Parameters: {}, Resources: {} }),
          ProvisioningRoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] },
          PreProvisioningHook: { PayloadVersion: '2020-04-01', TargetArn: { Ref: 'WorkerLive' } },
        },
      },
      BareTemplate: {
        Type: 'AWS::IoT::ProvisioningTemplate',
        Properties: {
          TemplateName: 'bare-hook',
          Enabled: true,
          TemplateBody: JSON.stringify({ Parameters: {}, Resources: {} }),
          ProvisioningRoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] },
          PreProvisioningHook: {
            PayloadVersion: '2020-04-01',
            TargetArn: { 'Fn::GetAtt': ['Worker', 'Arn'] },
          },
        },
      },
      Nightly: {
        Type: 'AWS::Events::Rule',
        Properties: {
          ScheduleExpression: 'rate(1 day)',
          Targets: [
            { Arn: { 'Fn::GetAtt': ['Worker', 'Arn'] }, Id: 'T', Input: '{"mode":"ok","from":"schedule"}' },
          ],
        },
      },
    },
    Outputs: {
      TableName: { Value: { Ref: 'Table' } },
      HookAlias: { Value: { Ref: 'WorkerLive' } },
      TemplateArnPrefix: {
        Value: {
          'Fn::Sub': 'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:provisioningtemplate/',
        },
      },
    },
  };

  return writeAssembly(template, {
    [WORKER_HASH]: WORKER_CODE,
    [CONSUMER_HASH]: consumerCode(require.resolve('@aws-sdk/client-dynamodb')),
  });
}

/**
 * An IoT Core stand-in: server publishes loop back to listeners, as the broker does; `things`
 * (name → attributes) answer DescribeThing for get_registry_data().
 */
export function fakeIotCore(things: Record<string, Record<string, string>> = {}): IotCoreLike & {
  emit(m: IotMessage): void;
  published: IotMessage[];
  stopped: boolean;
} {
  const listeners: ((m: IotMessage) => void)[] = [];
  const published: IotMessage[] = [];
  const fake = {
    controlPlaneUrl: 'http://127.0.0.1:1',
    mqtt: { host: '127.0.0.1', port: 1, caPem: '' },
    registry: {
      putPolicy: () => undefined,
      putThingType: () => undefined,
      putThingGroup: () => undefined,
      putProvisioningTemplate: () => undefined,
      describeThing: (name: string) =>
        things[name]
          ? {
              defaultClientId: name,
              thingName: name,
              thingId: `id-${name}`,
              thingArn: `arn:aws:iot:us-east-1:123456789012:thing/${name}`,
              thingTypeName: 'fleet-device',
              attributes: things[name],
              version: 1,
            }
          : undefined,
    },
    onMessage: (l: (m: IotMessage) => void) => void listeners.push(l),
    emit: (m: IotMessage) => listeners.forEach((l) => l(m)),
    publish: async (topic: string, payload: Buffer | string) => {
      const m = { topic, payload: Buffer.from(payload) };
      published.push(m);
      listeners.forEach((l) => l(m));
    },
    published,
    stats: () => ({}),
    stopped: false,
    stop: async () => {
      fake.stopped = true;
    },
  };
  return fake;
}
