import { App, Stack } from 'aws-cdk-lib';
import { ENV } from '../../../core/env';
import { METRICS } from '../../../core/metrics';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import { ERROR_STORE, ruleSql } from '../../../core/telemetry';
import { ERROR_STORE_LOGICAL_ID } from '../../../lib/telemetry/error-store';
import { INFLUXDB_TIMESTAMP_PROJECTION } from '../../../lib/telemetry/influxdb-sink';
import {
  ARCHIVE_BUCKET_LOGICAL_ID,
  ARCHIVE_ERROR_PREFIX,
  ARCHIVE_PREFIX,
} from '../../../lib/telemetry/stream-archive';
import { rebootRateQuery, ruleActionQuery } from '../../../lib/telemetry/telemetry-alarms';
import { TELEMETRY_STREAM_LOGICAL_ID, TelemetryStream } from '../../../lib/telemetry/telemetry-stream';
import {
  ACCOUNT,
  asArray,
  CfnResourceJson,
  flat,
  Loose,
  one,
  PolicyStatement,
  REGION,
  resourcesOf,
  synthFleet,
} from './helpers';
import type { Template } from 'aws-cdk-lib/assertions';

const { template, stack } = synthFleet();
const RULES = { telemetry: 'fleet_telemetry', health: 'fleet_health' } as const;

/** The topic rule named `name`. */
function ruleNamed(t: Template, name: string): CfnResourceJson {
  const found = Object.values(resourcesOf(t, 'AWS::IoT::TopicRule')).filter(
    (r) => r.Properties.RuleName === name,
  );
  expect(found).toHaveLength(1);
  return found[0];
}

/** Statements of the inline policies attached to the role `roleId`. */
function statementsOfRole(t: Template, roleId: string): PolicyStatement[] {
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Loose[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
}

const roleIdOf = (arn: Loose): string => arn['Fn::GetAtt'][0];
const trustOf = (t: Template, roleId: string): Loose =>
  t.toJSON().Resources[roleId].Properties.AssumeRolePolicyDocument.Statement;
const arnOf = (type: string, name: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:${type}/${name}`;

test('logical ids of the stream and buckets are pinned (a new id would replace them, and outside dev orphan the old)', () => {
  expect([TELEMETRY_STREAM_LOGICAL_ID, ERROR_STORE_LOGICAL_ID, ARCHIVE_BUCKET_LOGICAL_ID]).toEqual([
    'TelemetryStream',
    'TelemetryErrorBucket',
    'TelemetryArchiveBucket',
  ]);
  const resources = template.toJSON().Resources;
  expect(resources.TelemetryStream.Type).toBe('AWS::Kinesis::Stream');
  expect(resources.TelemetryErrorBucket.Type).toBe('AWS::S3::Bucket');
  expect(resources.TelemetryArchiveBucket.Type).toBe('AWS::S3::Bucket');
});

describe('telemetry stream', () => {
  const stream = template.toJSON().Resources[TELEMETRY_STREAM_LOGICAL_ID];

  test('is KMS-encrypted with the AWS managed key, on-demand, 24 h retention, pinned logical id', () => {
    expect(stream.Type).toBe('AWS::Kinesis::Stream');
    expect(stream.Properties).toEqual({
      RetentionPeriodHours: 24,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
    });
  });

  test.each([
    ['dev', 'Delete'],
    ['staging', 'Retain'],
    ['prod', 'Retain'],
  ])('%s: removal policy %s for the stream and both buckets', (stage, policy) => {
    const resources = synthFleet({ stage }).template.toJSON().Resources;
    for (const id of [TELEMETRY_STREAM_LOGICAL_ID, ERROR_STORE_LOGICAL_ID, ARCHIVE_BUCKET_LOGICAL_ID]) {
      expect(resources[id].DeletionPolicy).toBe(policy);
    }
  });

  test('provisioned mode takes its shard count and retention from the config', () => {
    const resources = synthFleet({
      telemetry: { stream: { mode: 'PROVISIONED', shardCount: 3, retentionHours: 72 } },
    }).template.toJSON().Resources;
    expect(resources[TELEMETRY_STREAM_LOGICAL_ID].Properties).toMatchObject({
      ShardCount: 3,
      RetentionPeriodHours: 72,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
    });
  });

  test('the construct refuses a shard count for an on-demand stream, naming the fix', () => {
    expect(() => new TelemetryStream(new Stack(new App(), 'S'), 'T', { shardCount: 2 })).toThrow(
      /ON_DEMAND stream takes no shardCount; remove it or use mode PROVISIONED/,
    );
  });
});

describe('topic rules', () => {
  test.each(Object.entries(RULES))('%s rule: fixed name, core SQL, SQL 2016-03-23', (type, name) => {
    const rule = ruleNamed(template, name);
    expect(rule.Properties.TopicRulePayload).toMatchObject({
      Sql: ruleSql(type as 'telemetry' | 'health', 'fleet'),
      AwsIotSqlVersion: '2016-03-23',
      RuleDisabled: false,
    });
  });

  test.each(Object.entries(RULES))(
    '%s rule: one Kinesis action onto the stream, partitioned by thing name',
    (_type, name) => {
      const { Actions } = ruleNamed(template, name).Properties.TopicRulePayload;
      expect(Actions).toHaveLength(1);
      expect(Actions[0].Kinesis).toMatchObject({
        StreamName: { Ref: TELEMETRY_STREAM_LOGICAL_ID },
        PartitionKey: '${topic(3)}',
      });
    },
  );

  test('every topic rule of the stack has an error action; the telemetry ones write the error store', () => {
    for (const r of Object.values(resourcesOf(template, 'AWS::IoT::TopicRule'))) {
      expect(r.Properties.TopicRulePayload.ErrorAction).toBeDefined();
    }
    for (const name of Object.values(RULES)) {
      const { ErrorAction, Actions } = ruleNamed(template, name).Properties.TopicRulePayload;
      expect(ErrorAction).toEqual({
        S3: {
          BucketName: { Ref: ERROR_STORE_LOGICAL_ID },
          Key: ERROR_STORE.keyTemplate(name),
          RoleArn: expect.anything(),
        },
      });
      expect(ErrorAction.S3.Key.startsWith(`${name}/`)).toBe(true);
      expect(ErrorAction.S3.RoleArn).toEqual(Actions[0].Kinesis.RoleArn);
    }
  });

  test.each(Object.values(RULES))(
    'the role of %s is assumed by AWS IoT for this rule of this account only',
    (name) => {
      const roleId = roleIdOf(
        ruleNamed(template, name).Properties.TopicRulePayload.Actions[0].Kinesis.RoleArn,
      );
      const [trust] = trustOf(template, roleId);
      expect(trust.Principal).toEqual({ Service: 'iot.amazonaws.com' });
      expect(trust.Condition.StringEquals).toEqual({ 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
      expect(flat(trust.Condition.ArnEquals['aws:SourceArn'])).toBe(arnOf('rule', name));
    },
  );

  test.each(Object.values(RULES))(
    'the role of %s may put records on the stream and write its own error prefix, nothing else',
    (name) => {
      const roleId = roleIdOf(
        ruleNamed(template, name).Properties.TopicRulePayload.Actions[0].Kinesis.RoleArn,
      );
      const statements = statementsOfRole(template, roleId).map((s) => ({
        actions: asArray(s.Action),
        resources: asArray(s.Resource).map((r) => flat(r)),
      }));
      expect(statements).toEqual([
        { actions: ['kinesis:PutRecord'], resources: [`<${TELEMETRY_STREAM_LOGICAL_ID}.Arn>`] },
        { actions: ['s3:PutObject'], resources: [`<${ERROR_STORE_LOGICAL_ID}.Arn>/${name}/*`] },
      ]);
    },
  );

  test('the device policy allows Basic Ingest to exactly these rules', () => {
    const [, policy] = one(template, 'AWS::IoT::Policy', 'DevicePolicy');
    const resources = (policy.Properties.PolicyDocument.Statement as PolicyStatement[])
      .flatMap((s) => asArray(s.Resource))
      .map((r) => flat(r))
      .filter((r) => r.includes('$aws/rules/'));
    expect(resources).toEqual(
      Object.values(RULES).map((n) =>
        arnOf('topic', `$aws/rules/${n}/dt/fleet/\${iot:Connection.Thing.ThingName}/*`),
      ),
    );
  });

  test('configured rule names and topic prefix reach the rules, the device policy and the output', () => {
    const custom = synthFleet({
      topicPrefix: 'acme',
      telemetry: { ruleNames: { telemetry: 'acme_data', health: 'acme_health_v2' } },
    }).template;
    expect(ruleNamed(custom, 'acme_data').Properties.TopicRulePayload.Sql).toBe(ruleSql('telemetry', 'acme'));
    expect(ruleNamed(custom, 'acme_health_v2').Properties.TopicRulePayload.Sql).toBe(
      ruleSql('health', 'acme'),
    );
    const [, policy] = one(custom, 'AWS::IoT::Policy', 'DevicePolicy');
    expect(JSON.stringify(policy)).toContain('$aws/rules/acme_health_v2/dt/acme/');
    const outputs = custom.toJSON().Outputs;
    expect(JSON.parse(outputs[STACK_OUTPUTS.telemetryRules].Value)).toEqual({
      telemetry: 'acme_data',
      health: 'acme_health_v2',
    });
  });
});

describe('error store', () => {
  const bucket = template.toJSON().Resources[ERROR_STORE_LOGICAL_ID];

  test('encrypted, versioned, no public access, entries expire after the retention', () => {
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          ExpirationInDays: 90,
          NoncurrentVersionExpiration: { NoncurrentDays: 90 },
        }),
      ]),
    );
  });

  test('refuses requests without TLS', () => {
    const [, policy] = one(template, 'AWS::S3::BucketPolicy', 'ErrorStore');
    expect(policy.Properties.PolicyDocument.Statement).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    );
  });

  test('the retention comes from the config', () => {
    const rules = synthFleet({ telemetry: { errorStore: { retentionDays: 400 } } }).template.toJSON()
      .Resources[ERROR_STORE_LOGICAL_ID].Properties.LifecycleConfiguration.Rules;
    expect(rules[0]).toMatchObject({
      ExpirationInDays: 400,
      NoncurrentVersionExpiration: { NoncurrentDays: 400 },
    });
  });
});

describe('archive (Firehose to S3)', () => {
  const [, delivery] = one(template, 'AWS::KinesisFirehose::DeliveryStream');
  const s3 = delivery.Properties.ExtendedS3DestinationConfiguration;

  test('reads the telemetry stream with its own role', () => {
    expect(delivery.Properties.DeliveryStreamType).toBe('KinesisStreamAsSource');
    const source = delivery.Properties.KinesisStreamSourceConfiguration;
    expect(source.KinesisStreamARN).toEqual({ 'Fn::GetAtt': [TELEMETRY_STREAM_LOGICAL_ID, 'Arn'] });
    const sourceRole = roleIdOf(source.RoleARN);
    expect(sourceRole).not.toBe(roleIdOf(s3.RoleARN));
    expect(statementsOfRole(template, sourceRole)).toEqual([
      {
        Effect: 'Allow',
        Action: [
          'kinesis:DescribeStream',
          'kinesis:GetShardIterator',
          'kinesis:GetRecords',
          'kinesis:ListShards',
        ],
        Resource: { 'Fn::GetAtt': [TELEMETRY_STREAM_LOGICAL_ID, 'Arn'] },
      },
    ]);
    for (const role of [sourceRole, roleIdOf(s3.RoleARN)]) {
      expect(trustOf(template, role)).toEqual([
        expect.objectContaining({
          Principal: { Service: 'firehose.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        }),
      ]);
    }
  });

  test('writes GZIP newline-delimited records under hour partitions, errors apart, with delivery logging', () => {
    expect(s3).toMatchObject({
      BucketARN: { 'Fn::GetAtt': [ARCHIVE_BUCKET_LOGICAL_ID, 'Arn'] },
      CompressionFormat: 'GZIP',
      Prefix: ARCHIVE_PREFIX,
      ErrorOutputPrefix: ARCHIVE_ERROR_PREFIX,
      BufferingHints: { IntervalInSeconds: 300, SizeInMBs: 64 },
      ProcessingConfiguration: { Enabled: true, Processors: [{ Type: 'AppendDelimiterToRecord' }] },
      CloudWatchLoggingOptions: { Enabled: true },
    });
    expect(ARCHIVE_PREFIX).toBe(
      'records/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/',
    );
    expect(ARCHIVE_ERROR_PREFIX.startsWith('errors/!{firehose:error-output-type}/year=')).toBe(true);
  });

  test('the delivery role writes this bucket and its own log stream only', () => {
    const resources = statementsOfRole(template, roleIdOf(s3.RoleARN))
      .flatMap((s) => asArray(s.Resource))
      .map((r) => flat(r));
    for (const r of resources) {
      expect(r).toMatch(
        new RegExp(
          `^(<${ARCHIVE_BUCKET_LOGICAL_ID}\\.Arn>(/\\*)?|arn:aws:logs:${REGION}:${ACCOUNT}:log-group:<TelemetryArchiveLogs\\w+>:log-stream:<TelemetryArchiveDeliveryLogStream\\w+>)$`,
        ),
      );
    }
  });

  test('the bucket is encrypted, TLS only, versioned and private', () => {
    const bucket = template.toJSON().Resources[ARCHIVE_BUCKET_LOGICAL_ID];
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true },
    });
    const [, policy] = one(template, 'AWS::S3::BucketPolicy', 'Archive');
    expect(JSON.stringify(policy.Properties.PolicyDocument)).toContain('aws:SecureTransport');
  });

  test('buffering and the Standard-IA transition come from the config', () => {
    const t = synthFleet({
      telemetry: {
        archive: { bufferingIntervalSeconds: 60, bufferingSizeMiB: 5, transitionToInfrequentAccessDays: 45 },
      },
    }).template;
    const [, d] = one(t, 'AWS::KinesisFirehose::DeliveryStream');
    expect(d.Properties.ExtendedS3DestinationConfiguration.BufferingHints).toEqual({
      IntervalInSeconds: 60,
      SizeInMBs: 5,
    });
    expect(
      t.toJSON().Resources[ARCHIVE_BUCKET_LOGICAL_ID].Properties.LifecycleConfiguration.Rules[0].Transitions,
    ).toEqual([{ StorageClass: 'STANDARD_IA', TransitionInDays: 45 }]);
  });

  test('turned off: no delivery stream, no archive bucket, no archive output or alarms', () => {
    const t = synthFleet({ telemetry: { archive: { enabled: false } } }).template;
    expect(resourcesOf(t, 'AWS::KinesisFirehose::DeliveryStream')).toEqual({});
    expect(t.toJSON().Resources[ARCHIVE_BUCKET_LOGICAL_ID]).toBeUndefined();
    const outputs = t.toJSON().Outputs as Record<string, unknown>;
    expect(Object.keys(outputs).sort()).toEqual(
      Object.values(STACK_OUTPUTS)
        .filter((k) => k !== STACK_OUTPUTS.telemetryArchiveBucket)
        .sort(),
    );
    expect(JSON.stringify(resourcesOf(t, 'AWS::CloudWatch::Alarm'))).not.toContain('AWS/Firehose');
  });
});

describe('health consumer', () => {
  const [fnId, fn] = one(template, 'AWS::Lambda::Function', 'HealthConsumer');
  const [, mapping] = one(template, 'AWS::Lambda::EventSourceMapping', 'HealthConsumer');
  const [queueId, queue] = one(template, 'AWS::SQS::Queue', 'HealthConsumer');

  test('the mapping reads the stream from the trim horizon, filtered to health records', () => {
    expect(mapping.Properties).toMatchObject({
      EventSourceArn: { 'Fn::GetAtt': [TELEMETRY_STREAM_LOGICAL_ID, 'Arn'] },
      FunctionName: { Ref: fnId },
      StartingPosition: 'TRIM_HORIZON',
      FilterCriteria: { Filters: [{ Pattern: JSON.stringify({ data: { type: ['health'] } }) }] },
    });
  });

  test('partial batch failures, bisect on error, retries bounded by age, given-up batches to the error store', () => {
    expect(mapping.Properties).toMatchObject({
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: -1,
      MaximumRecordAgeInSeconds: 21600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [ERROR_STORE_LOGICAL_ID, 'Arn'] } } },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 5,
      ParallelizationFactor: 1,
    });
  });

  test('mapping and function settings come from the config', () => {
    const t = synthFleet({
      telemetry: {
        consumer: {
          batchSize: 250,
          maxBatchingWindowSeconds: 1,
          parallelizationFactor: 2,
          retryAttempts: 7,
          maxRecordAgeSeconds: 3600,
          memorySize: 1024,
          timeoutSeconds: 120,
        },
      },
    }).template;
    const [, m] = one(t, 'AWS::Lambda::EventSourceMapping', 'HealthConsumer');
    expect(m.Properties).toMatchObject({
      BatchSize: 250,
      MaximumBatchingWindowInSeconds: 1,
      ParallelizationFactor: 2,
      MaximumRetryAttempts: 7,
      MaximumRecordAgeInSeconds: 3600,
    });
    const [, f] = one(t, 'AWS::Lambda::Function', 'HealthConsumer');
    expect(f.Properties).toMatchObject({ MemorySize: 1024, Timeout: 120 });
  });

  test('the dead-letter queue is encrypted, TLS only and keeps messages 14 days', () => {
    expect(queue.Properties).toEqual({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86400 });
    const [, qp] = one(template, 'AWS::SQS::QueuePolicy', 'HealthConsumer');
    expect(qp.Properties.PolicyDocument.Statement).toEqual([
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
  });

  test('the function gets its environment contract', () => {
    expect(fn.Properties.Environment.Variables).toMatchObject({
      [ENV.devicesTable]: { Ref: 'RegistryDevicesTable' },
      [ENV.eventsTable]: { Ref: 'RegistryEventsTable' },
      [ENV.thingNamePrefix]: 'fleet',
      [ENV.lastSeenIntervalSeconds]: '900',
      [ENV.lowHeapBytes]: '16384',
      [ENV.weakRssiDbm]: '-85',
      [ENV.maxFirmwareDimensions]: '50',
      [ENV.healthDeadLetterQueueUrl]: { Ref: queueId },
      POWERTOOLS_SERVICE_NAME: 'health-consumer',
    });
    const custom = synthFleet({
      telemetry: {
        lastSeenIntervalSeconds: 600,
        thresholds: { lowHeapBytes: 8192, weakRssiDbm: -90 },
        maxFirmwareDimensions: 20,
      },
    }).template;
    const [, f] = one(custom, 'AWS::Lambda::Function', 'HealthConsumer');
    expect(f.Properties.Environment.Variables).toMatchObject({
      [ENV.lastSeenIntervalSeconds]: '600',
      [ENV.lowHeapBytes]: '8192',
      [ENV.weakRssiDbm]: '-90',
      [ENV.maxFirmwareDimensions]: '20',
    });
  });

  test('registry grant: devices GetItem/BatchGetItem/UpdateItem, events PutItem; DLQ SendMessage; stream read', () => {
    const roleId = roleIdOf(fn.Properties.Role);
    const byResource = new Map<string, string[]>();
    for (const s of statementsOfRole(template, roleId)) {
      for (const r of asArray(s.Resource).map((x) => flat(x)))
        byResource.set(r, [...(byResource.get(r) ?? []), ...asArray(s.Action)]);
    }
    expect(byResource.get('<RegistryDevicesTable.Arn>')?.sort()).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:UpdateItem',
    ]);
    expect(byResource.get('<RegistryEventsTable.Arn>')).toEqual(['dynamodb:PutItem']);
    expect(byResource.get(`<${queueId}.Arn>`)).toContain('sqs:SendMessage');
    expect(byResource.get(`<${TELEMETRY_STREAM_LOGICAL_ID}.Arn>`)).toEqual(
      expect.arrayContaining(['kinesis:GetRecords', 'kinesis:GetShardIterator']),
    );
    expect(byResource.get(`<${TELEMETRY_STREAM_LOGICAL_ID}.Arn>`)).not.toContain('kinesis:PutRecord');
  });
});

describe('alarms', () => {
  const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'));
  const byExpression = (expression: string) =>
    alarms.filter((a) =>
      (a.Properties.Metrics as Loose[] | undefined)?.some((m) => m.Expression === expression),
    );
  const byMetric = (namespace: string, metricName: string) =>
    alarms.filter((a) => a.Properties.Namespace === namespace && a.Properties.MetricName === metricName);

  test('none has actions yet (the observability capability adds them); missing data is not breaching', () => {
    for (const a of alarms) {
      expect(a.Properties.AlarmActions).toBeUndefined();
      expect(a.Properties.TreatMissingData).toBe('notBreaching');
    }
  });

  test('unexpected reboot rate per firmware version (Metrics Insights, GROUP BY) and fleet-wide', () => {
    expect(rebootRateQuery(true)).toBe(
      `SELECT AVG(${METRICS.unexpectedRebootRate.name}) FROM SCHEMA("IotFleet", FirmwareVersion, Ring, service) GROUP BY FirmwareVersion`,
    );
    for (const perFirmware of [true, false]) {
      const [alarm] = byExpression(rebootRateQuery(perFirmware));
      expect(alarm.Properties).toMatchObject({
        Threshold: 5,
        EvaluationPeriods: 3,
        ComparisonOperator: 'GreaterThanThreshold',
        Metrics: [expect.objectContaining({ Period: 300, ReturnData: true })],
      });
    }
  });

  test('reboot-rate threshold, evaluation periods and period (health interval) come from the config', () => {
    const t = synthFleet({
      telemetry: {
        healthIntervalSeconds: 90,
        alarms: { unexpectedRebootRatePercent: 2.5, rebootRateEvaluationPeriods: 4 },
      },
    }).template;
    const alarm = Object.values(resourcesOf(t, 'AWS::CloudWatch::Alarm')).find((a) =>
      (a.Properties.Metrics as Loose[] | undefined)?.some((m) => m.Expression === rebootRateQuery(true)),
    );
    expect(alarm?.Properties).toMatchObject({
      Threshold: 2.5,
      EvaluationPeriods: 4,
      Metrics: [expect.objectContaining({ Period: 120 })],
    });
  });

  test.each(Object.values(RULES))('rule %s: action failures and error-action failures', (name) => {
    for (const metric of ['Failure', 'ErrorActionFailure'] as const) {
      const found = byExpression(ruleActionQuery(metric, name));
      expect(found).toHaveLength(1);
      expect(found[0].Properties).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
    expect(ruleActionQuery('Failure', name)).toBe(
      `SELECT SUM(Failure) FROM SCHEMA("AWS/IoT", ActionType, RuleName) WHERE RuleName = '${name}'`,
    );
  });

  test('stream and consumer iterator age, consumer errors, DLQ depth, archive freshness and lag', () => {
    expect(byMetric('AWS/Kinesis', 'GetRecords.IteratorAgeMilliseconds')[0].Properties).toMatchObject({
      Statistic: 'Maximum',
      Threshold: 300000,
      Dimensions: [{ Name: 'StreamName', Value: { Ref: TELEMETRY_STREAM_LOGICAL_ID } }],
    });
    expect(byMetric('AWS/Lambda', 'IteratorAge')[0].Properties).toMatchObject({
      Statistic: 'Maximum',
      Threshold: 300000,
    });
    expect(byMetric('AWS/Lambda', 'Errors')[0].Properties).toMatchObject({ Statistic: 'Sum', Threshold: 0 });
    expect(byMetric('AWS/SQS', 'ApproximateNumberOfMessagesVisible')).toHaveLength(1);
    expect(byMetric('AWS/Firehose', 'DeliveryToS3.DataFreshness')[0].Properties).toMatchObject({
      Threshold: 1800,
    });
    expect(byMetric('AWS/Firehose', 'KinesisMillisBehindLatest')[0].Properties).toMatchObject({
      Threshold: 300000,
    });
  });

  test('iterator-age and freshness thresholds come from the config', () => {
    const t = synthFleet({
      telemetry: { alarms: { iteratorAgeMs: 60000, archiveFreshnessSeconds: 900 } },
    }).template;
    const all = Object.values(resourcesOf(t, 'AWS::CloudWatch::Alarm'));
    const threshold = (ns: string, name: string) =>
      all.find((a) => a.Properties.Namespace === ns && a.Properties.MetricName === name)?.Properties
        .Threshold;
    expect(threshold('AWS/Kinesis', 'GetRecords.IteratorAgeMilliseconds')).toBe(60000);
    expect(threshold('AWS/Lambda', 'IteratorAge')).toBe(60000);
    expect(threshold('AWS/Firehose', 'DeliveryToS3.DataFreshness')).toBe(900);
  });

  test('the construct exposes every alarm by name', () => {
    expect(Object.keys(stack.telemetry.alarms.alarms).sort()).toEqual(
      [
        'archiveFreshness',
        'archiveReadLag',
        'consumerErrors',
        'consumerIteratorAge',
        'deadLetterQueueDepth',
        'healthRuleActionFailures',
        'healthRuleErrorActionFailures',
        'streamIteratorAge',
        'telemetryRuleActionFailures',
        'telemetryRuleErrorActionFailures',
        'unexpectedRebootRateByFirmware',
        'unexpectedRebootRateFleet',
      ].sort(),
    );
    expect(alarms).toHaveLength(12);
  });
});

describe('stack outputs', () => {
  const outputs = template.toJSON().Outputs as Record<string, { Value: Loose }>;

  test('name the stream, the rules, the buckets and the dead-letter queue', () => {
    expect(outputs[STACK_OUTPUTS.telemetryStream].Value).toEqual({ Ref: TELEMETRY_STREAM_LOGICAL_ID });
    expect(JSON.parse(flat(outputs[STACK_OUTPUTS.telemetryRules].Value))).toEqual(RULES);
    expect(outputs[STACK_OUTPUTS.telemetryErrorBucket].Value).toEqual({ Ref: ERROR_STORE_LOGICAL_ID });
    expect(outputs[STACK_OUTPUTS.telemetryArchiveBucket].Value).toEqual({ Ref: ARCHIVE_BUCKET_LOGICAL_ID });
    const [queueId] = one(template, 'AWS::SQS::Queue', 'HealthConsumer');
    expect(outputs[STACK_OUTPUTS.healthDeadLetterQueue].Value).toEqual({ Ref: queueId });
  });
});

describe('time-series options', () => {
  const SECRET = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf';
  const influx = {
    enabled: true,
    endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
    secretArn: SECRET,
    databaseName: 'fleet',
    tableName: 'health',
  };
  const timestream = { enabled: true, databaseName: 'fleet_db', tableName: 'health' };
  const healthActions = (t: Template): Loose[] =>
    ruleNamed(t, RULES.health).Properties.TopicRulePayload.Actions;
  /** The time-series rule (test/unit/constructs/time-series-rule.test.ts covers its wiring). */
  const TS_RULE = `${RULES.health}_timeseries`;
  const tsActions = (t: Template): Loose[] => ruleNamed(t, TS_RULE).Properties.TopicRulePayload.Actions;

  test('absent by default: no extra actions, no destination, no registry enrichment, core SQL unchanged', () => {
    expect(healthActions(template).map((a) => Object.keys(a))).toEqual([['Kinesis']]);
    expect(resourcesOf(template, 'AWS::IoT::TopicRuleDestination')).toEqual({});
    expect(JSON.stringify(template.toJSON())).not.toMatch(/timestream:|secretsmanager:|get_registry_data/);
    expect(
      Object.keys(template.toJSON().Resources).filter((id) => id.includes('RegistryEnrichment')),
    ).toEqual([]);
    expect(stack.telemetry.timestream).toBeUndefined();
    expect(stack.telemetry.influxdb).toBeUndefined();
  });

  describe('Timestream (LiveAnalytics) enabled', () => {
    const { template: t } = synthFleet({ telemetry: { timestream } });
    const rule = ruleNamed(t, TS_RULE).Properties.TopicRulePayload;
    const action = tsActions(t).find((a) => a.Timestream)?.Timestream;

    test('the time-series rule gets the Timestream action with its own error action; the health rule only a republish', () => {
      expect(healthActions(t).map((a) => Object.keys(a)[0])).toEqual(['Kinesis', 'Republish']);
      expect(tsActions(t).map((a) => Object.keys(a)[0])).toEqual(['Timestream']);
      expect(ruleNamed(t, RULES.telemetry).Properties.TopicRulePayload.Actions).toHaveLength(1);
      expect(rule.ErrorAction.S3.Key).toBe(ERROR_STORE.keyTemplate(TS_RULE));
      expect(action).toMatchObject({
        DatabaseName: 'fleet_db',
        TableName: 'health',
        Timestamp: { Value: '${ts}', Unit: 'MILLISECONDS' },
      });
    });

    test('dimensions: thing from the topic, firmware from the report, lot and ring from one registry call', () => {
      expect(action.Dimensions).toEqual([
        { Name: 'thingName', Value: '${topic(3)}' },
        { Name: 'firmware', Value: '${fw}' },
        { Name: 'lot', Value: '${@registry.attributes.lot}' },
        { Name: 'ring', Value: '${@registry.attributes.ring}' },
      ]);
      const sql = flat(rule.Sql);
      expect(sql).toMatch(
        /^SET @registry = get_registry_data\('DescribeThing', topic\(3\), '<TelemetryTimeSeriesRegistryEnrichmentRole\w+\.Arn>'\) SELECT /,
      );
      expect(sql.match(/get_registry_data/g)).toHaveLength(1);
      expect(flat(ruleNamed(t, RULES.health).Properties.TopicRulePayload.Sql)).toBe(
        ruleSql('health', 'fleet'),
      );
    });

    test('the Timestream role writes that table only (DescribeEndpoints has no resource scope) and trusts the time-series rule', () => {
      const roleId = roleIdOf(action.RoleArn);
      expect(statementsOfRole(t, roleId).map((s) => [s.Action, flat(s.Resource)])).toEqual([
        ['timestream:WriteRecords', `arn:aws:timestream:${REGION}:${ACCOUNT}:database/fleet_db/table/health`],
        ['timestream:DescribeEndpoints', '*'],
      ]);
      expect(flat(trustOf(t, roleId)[0].Condition.ArnEquals['aws:SourceArn'])).toBe(arnOf('rule', TS_RULE));
    });

    test('the enrichment role may describe this fleet’s things only, for the time-series rule only', () => {
      const [roleId] = one(t, 'AWS::IAM::Role', 'RegistryEnrichment');
      expect(statementsOfRole(t, roleId).map((s) => [s.Action, flat(s.Resource)])).toEqual([
        ['iot:DescribeThing', arnOf('thing', 'fleet-*')],
      ]);
      expect(trustOf(t, roleId)[0].Condition.StringEquals).toEqual({
        'aws:SourceAccount': { Ref: 'AWS::AccountId' },
      });
      expect(flat(trustOf(t, roleId)[0].Condition.ArnEquals['aws:SourceArn'])).toBe(arnOf('rule', TS_RULE));
    });

    test('no Timestream database or table is created', () => {
      expect(JSON.stringify(t.toJSON())).not.toContain('AWS::Timestream::');
    });
  });

  describe('InfluxDB enabled', () => {
    const vpc = {
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      securityGroupIds: ['sg-0123456789abcdef0'],
    };
    const { template: t } = synthFleet({ telemetry: { influxdb: { ...influx, ...vpc } } });
    const [destinationId, destination] = one(t, 'AWS::IoT::TopicRuleDestination');
    const action = tsActions(t).find((a) => a.InfluxDB ?? a.InfluxDb);
    const influxAction = action?.InfluxDB ?? action?.InfluxDb;

    test('a destination with the endpoint, version and token secret, inside the configured VPC', () => {
      expect(destination.Properties.InfluxDBProperties).toEqual({
        Endpoint: influx.endpoint,
        InfluxDBVersion: 'V3',
        SecretId: SECRET,
      });
      expect(destination.Properties.VpcProperties).toMatchObject({
        VpcId: vpc.vpcId,
        SubnetIds: vpc.subnetIds,
        SecurityGroups: vpc.securityGroupIds,
      });
    });

    test('the time-series rule writes through it with thing, firmware, lot and ring tags and the report time', () => {
      expect(influxAction).toMatchObject({
        DestinationArn: { 'Fn::GetAtt': [destinationId, 'Arn'] },
        DatabaseName: 'fleet',
        TableName: 'health',
        TimestampUnit: 'ms',
        Tags: {
          thingName: '${topic(3)}',
          firmware: '${fw}',
          lot: '${@registry.attributes.lot}',
          ring: '${@registry.attributes.ring}',
        },
      });
      const sql = flat(ruleNamed(t, TS_RULE).Properties.TopicRulePayload.Sql);
      expect(sql).toContain(`, ${INFLUXDB_TIMESTAMP_PROJECTION} FROM `);
      expect(flat(ruleNamed(t, RULES.health).Properties.TopicRulePayload.Sql)).toBe(
        ruleSql('health', 'fleet'),
      );
      expect(flat(ruleNamed(t, RULES.telemetry).Properties.TopicRulePayload.Sql)).toBe(
        ruleSql('telemetry', 'fleet'),
      );
    });

    test('the action role may read the token secret only', () => {
      const roleId = roleIdOf(influxAction.RoleArn);
      expect(statementsOfRole(t, roleId).map((s) => [s.Action, flat(s.Resource)])).toEqual([
        ['secretsmanager:GetSecretValue', SECRET],
      ]);
    });

    test('the VPC role manages network interfaces in the configured subnets, security groups and VPC', () => {
      const roleId = roleIdOf(destination.Properties.VpcProperties.RoleArn);
      const statements = statementsOfRole(t, roleId);
      const wildcard = statements.filter((s) => asArray(s.Resource).includes('*'));
      expect(wildcard.flatMap((s) => asArray(s.Action)).every((a) => a.startsWith('ec2:Describe'))).toBe(
        true,
      );
      const create = statements.find(
        (s) => asArray(s.Action).includes('ec2:CreateNetworkInterface') && !s.Condition,
      );
      expect(asArray(create?.Resource).map((r) => flat(r))).toEqual([
        `arn:aws:ec2:${REGION}:${ACCOUNT}:subnet/subnet-0123456789abcdef0`,
        `arn:aws:ec2:${REGION}:${ACCOUNT}:subnet/subnet-0123456789abcdef1`,
        `arn:aws:ec2:${REGION}:${ACCOUNT}:security-group/sg-0123456789abcdef0`,
      ]);
      const interfaces = statements.find((s) => s.Condition);
      expect(flat(interfaces?.Condition?.StringEquals['ec2:Vpc'])).toBe(
        `arn:aws:ec2:${REGION}:${ACCOUNT}:vpc/vpc-0123456789abcdef0`,
      );
      expect(trustOf(t, roleId)[0].Condition).toEqual({
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      });
    });

    test('a public endpoint (no VPC) has no VPC properties and no VPC role; V2 passes its organization', () => {
      const pub = synthFleet({
        telemetry: { influxdb: { ...influx, version: 'V2', organization: 'acme' } },
      }).template;
      const [, d] = one(pub, 'AWS::IoT::TopicRuleDestination');
      expect(d.Properties.VpcProperties).toBeUndefined();
      expect(d.Properties.InfluxDBProperties.InfluxDBVersion).toBe('V2');
      const a = tsActions(pub).find((x) => x.InfluxDB ?? x.InfluxDb);
      expect((a.InfluxDB ?? a.InfluxDb).Organization).toBe('acme');
      expect(JSON.stringify(pub.toJSON())).not.toContain('ec2:');
    });
  });

  test('both on: one registry call, one enrichment role, both actions on the time-series rule', () => {
    const { template: t } = synthFleet({ telemetry: { timestream, influxdb: influx } });
    expect(healthActions(t).map((a) => Object.keys(a)[0])).toEqual(['Kinesis', 'Republish']);
    expect(tsActions(t).map((a) => Object.keys(a)[0])).toEqual([
      'Timestream',
      expect.stringMatching(/^InfluxD[Bb]$/),
    ]);
    expect(
      flat(ruleNamed(t, TS_RULE).Properties.TopicRulePayload.Sql).match(/get_registry_data/g),
    ).toHaveLength(1);
    expect(
      Object.keys(resourcesOf(t, 'AWS::IAM::Role')).filter((id) => id.includes('RegistryEnrichment')),
    ).toHaveLength(1);
  });

  test('with a time-series option, the only new wildcard resources are the ones AWS offers no scope for', () => {
    const { template: t } = synthFleet({
      telemetry: {
        timestream,
        influxdb: {
          ...influx,
          vpcId: 'vpc-0123456789abcdef0',
          subnetIds: ['subnet-0123456789abcdef0'],
          securityGroupIds: ['sg-0123456789abcdef0'],
        },
      },
    });
    const statements = Object.values(resourcesOf(t, 'AWS::IAM::Policy')).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as PolicyStatement[],
    );
    for (const s of statements.filter((x) => asArray(x.Resource).includes('*'))) {
      for (const a of asArray(s.Action))
        expect(a).toMatch(
          /^(xray:Put|timestream:DescribeEndpoints$|ec2:Describe|iot:(Describe|Update)EventConfigurations$)/,
        );
    }
    for (const s of statements) for (const a of asArray(s.Action)) expect(a).not.toContain('*');
  });
});
