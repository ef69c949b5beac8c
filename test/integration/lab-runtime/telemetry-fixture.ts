/**
 * A synthetic cloud assembly shaped like the stack's telemetry and health path: a two-shard
 * stream, the telemetry and health topic rules (Kinesis actions keyed by `${topic(3)}`, S3 error
 * actions to an error bucket under the parse_time key, and on the health rule a Timestream and an
 * InfluxDB action, its SQL enriched with get_registry_data), a Timestream database and table, an
 * InfluxDB topic rule destination in a VPC, a Firehose stream archiving the stream to a bucket
 * (GZIP, newline-delimited, timestamp prefix), a second one with a Lambda transformation and an
 * error output, two Lambda event-source mappings with filters (a
 * health consumer with partial batch responses, and a consumer that throws on a poison record,
 * with bisect, one retry and an SQS on-failure destination), and the types the lab only
 * acknowledges (alarm, bucket policy, KMS key, log group, secret, VPC, subnet, security group).
 */
import { nodeFunction, streamMapping, writeAssembly } from './fixture';

const HEALTH_HASH = 'c'.repeat(64);
const POISON_HASH = 'd'.repeat(64);
const TRANSFORM_HASH = 'e'.repeat(64);

export const ROLE = 'arn:aws:iam::123456789012:role/lab-rules';
export const THINGS = {
  'fleet-001': { lot: 'LAB-A', ring: 'canary' },
  'fleet-002': { lot: 'LAB-B', ring: 'broad' },
};

/** Logs each record it processes; reports records of firmware 9.9.9 as failed. */
const HEALTH_CODE = `
exports.handler = async (event) => {
  const failures = [];
  for (const r of event.Records) {
    const rec = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8'));
    if (rec.fw === '9.9.9') { failures.push({ itemIdentifier: r.kinesis.sequenceNumber }); continue; }
    console.log(JSON.stringify({ processed: r.kinesis.sequenceNumber, type: rec.type, thing: rec.thing, bootId: rec.bootId }));
  }
  return { batchItemFailures: failures };
};
`;

/** Throws on a batch holding a record of firmware 6.6.6, else logs the batch. */
const POISON_CODE = `
exports.handler = async (event) => {
  const docs = event.Records.map((r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')));
  if (docs.some((d) => d.fw === '6.6.6')) throw new Error('poison record in the batch');
  console.log(JSON.stringify({ poisonBatch: docs.map((d) => d.bootId) }));
  return {};
};
`;

/** Firehose transformation: telemetry dropped, health of firmware 9.9.9 failed, other health marked. */
const TRANSFORM_CODE = `
exports.handler = async (event) => ({
  records: event.records.map((r) => {
    const rec = JSON.parse(Buffer.from(r.data, 'base64').toString('utf8'));
    if (rec.type === 'telemetry') return { recordId: r.recordId, result: 'Dropped' };
    if (rec.fw === '9.9.9') return { recordId: r.recordId, result: 'ProcessingFailed', data: r.data };
    const out = { ...rec, transformedFrom: r.kinesisRecordMetadata.sequenceNumber };
    return { recordId: r.recordId, result: 'Ok', data: Buffer.from(JSON.stringify(out)).toString('base64') };
  }),
});
`;

const HEALTH_FIELDS = 'ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm, connection';
const ENVELOPE = (type: string) =>
  `'${type}' AS type, topic(3) AS thing, clientid() AS clientId, principal() AS principal, timestamp() AS receivedAt, traceid() AS traceId`;
const REGISTRY = (attr: string) =>
  `get_registry_data('DescribeThing', topic(3), '${ROLE}').attributes.${attr}`;
const errorKey = (rule: string) =>
  `${rule}/\${parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")}/\${timestamp()}-\${newuuid()}.json`;
const errorAction = (rule: string) => ({
  S3: { BucketName: { Ref: 'ErrorBucket' }, Key: errorKey(rule), RoleArn: ROLE },
});
/** A Firehose stream reading `Stream` into the bucket `bucket` (a logical id), as `destination` adds. */
const archiveOfStream = (bucket: string, destination: Record<string, unknown>) => ({
  Type: 'AWS::KinesisFirehose::DeliveryStream',
  Properties: {
    DeliveryStreamType: 'KinesisStreamAsSource',
    KinesisStreamSourceConfiguration: {
      KinesisStreamARN: { 'Fn::GetAtt': ['Stream', 'Arn'] },
      RoleARN: ROLE,
    },
    ExtendedS3DestinationConfiguration: {
      BucketARN: { 'Fn::GetAtt': [bucket, 'Arn'] },
      RoleARN: ROLE,
      ...destination,
    },
  },
});

export function writeTelemetryAssembly(): string {
  const template = {
    Resources: {
      Key: { Type: 'AWS::KMS::Key', Properties: { KeyPolicy: {} } },
      Stream: {
        Type: 'AWS::Kinesis::Stream',
        Properties: {
          ShardCount: 2,
          RetentionPeriodHours: 24,
          StreamEncryption: { EncryptionType: 'KMS', KeyId: { 'Fn::GetAtt': ['Key', 'Arn'] } },
        },
      },
      ErrorBucket: {
        Type: 'AWS::S3::Bucket',
        Properties: {
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } },
            ],
          },
          LifecycleConfiguration: { Rules: [{ ExpirationInDays: 30, Status: 'Enabled' }] },
          PublicAccessBlockConfiguration: { BlockPublicAcls: true },
        },
      },
      ErrorBucketPolicy: {
        Type: 'AWS::S3::BucketPolicy',
        Properties: { Bucket: { Ref: 'ErrorBucket' }, PolicyDocument: { Statement: [] } },
      },
      ArchiveBucket: { Type: 'AWS::S3::Bucket', Properties: {} },
      Dlq: { Type: 'AWS::SQS::Queue', Properties: {} },
      Logs: { Type: 'AWS::Logs::LogGroup', Properties: { RetentionInDays: 7 } },
      TelemetryRule: {
        Type: 'AWS::IoT::TopicRule',
        Properties: {
          RuleName: 'fleet_telemetry',
          TopicRulePayload: {
            AwsIotSqlVersion: '2016-03-23',
            Sql: `SELECT seq, readings, ${ENVELOPE('telemetry')} FROM 'dt/fleet/+/telemetry'`,
            Actions: [
              { Kinesis: { StreamName: { Ref: 'Stream' }, PartitionKey: '${topic(3)}', RoleArn: ROLE } },
            ],
            ErrorAction: errorAction('fleet_telemetry'),
          },
        },
      },
      HealthRule: {
        Type: 'AWS::IoT::TopicRule',
        Properties: {
          RuleName: 'fleet_health',
          TopicRulePayload: {
            AwsIotSqlVersion: '2016-03-23',
            Sql: `SELECT ${HEALTH_FIELDS}, ${ENVELOPE('health')}, ${REGISTRY('lot')} AS lot, ${REGISTRY('ring')} AS ring FROM 'dt/fleet/+/health'`,
            Actions: [
              { Kinesis: { StreamName: { Ref: 'Stream' }, PartitionKey: '${topic(3)}', RoleArn: ROLE } },
              {
                Timestream: {
                  DatabaseName: { Ref: 'Db' },
                  TableName: { 'Fn::GetAtt': ['HealthTable', 'Name'] },
                  Dimensions: [
                    { Name: 'thing', Value: '${topic(3)}' },
                    { Name: 'lot', Value: `\${${REGISTRY('lot')}}` },
                  ],
                  RoleArn: ROLE,
                },
              },
              {
                InfluxDB: {
                  DatabaseName: 'fleet',
                  TableName: 'health',
                  DestinationArn: { Ref: 'InfluxDestination' },
                  Tags: { thing: '${topic(3)}' },
                  RoleArn: ROLE,
                },
              },
            ],
            ErrorAction: errorAction('fleet_health'),
          },
        },
      },
      Db: { Type: 'AWS::Timestream::Database', Properties: {} },
      HealthTable: {
        Type: 'AWS::Timestream::Table',
        Properties: {
          DatabaseName: { Ref: 'Db' },
          RetentionProperties: {
            MemoryStoreRetentionPeriodInHours: '24',
            MagneticStoreRetentionPeriodInDays: '30',
          },
        },
      },
      InfluxSecret: { Type: 'AWS::SecretsManager::Secret', Properties: {} },
      Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.0.0.0/16' } },
      Subnet: {
        Type: 'AWS::EC2::Subnet',
        Properties: { VpcId: { Ref: 'Vpc' }, CidrBlock: '10.0.1.0/24' },
      },
      InfluxSg: {
        Type: 'AWS::EC2::SecurityGroup',
        Properties: { GroupDescription: 'influx', VpcId: { Ref: 'Vpc' } },
      },
      InfluxDestination: {
        Type: 'AWS::IoT::TopicRuleDestination',
        Properties: {
          Status: 'ENABLED',
          InfluxDBProperties: {
            Endpoint: 'https://influx.fleet.internal:8086',
            InfluxDBVersion: 'V3',
            SecretId: { Ref: 'InfluxSecret' },
          },
          VpcProperties: {
            VpcId: { Ref: 'Vpc' },
            SubnetIds: [{ Ref: 'Subnet' }],
            SecurityGroups: [{ 'Fn::GetAtt': ['InfluxSg', 'GroupId'] }],
            RoleArn: ROLE,
          },
        },
      },
      Archive: archiveOfStream('ArchiveBucket', {
        Prefix:
          'records/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/',
        ErrorOutputPrefix: 'errors/!{firehose:error-output-type}/year=!{timestamp:yyyy}/',
        BufferingHints: { IntervalInSeconds: 300, SizeInMBs: 5 },
        CompressionFormat: 'GZIP',
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'AppendDelimiterToRecord',
              Parameters: [{ ParameterName: 'Delimiter', ParameterValue: '\\n' }],
            },
          ],
        },
      }),
      ProcessedBucket: { Type: 'AWS::S3::Bucket', Properties: {} },
      Transform: nodeFunction(TRANSFORM_HASH),
      Processed: archiveOfStream('ProcessedBucket', {
        Prefix: 'health/',
        ErrorOutputPrefix: 'errors/!{firehose:error-output-type}/',
        BufferingHints: { IntervalInSeconds: 60, SizeInMBs: 1 },
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'Lambda',
              Parameters: [
                { ParameterName: 'LambdaArn', ParameterValue: { 'Fn::GetAtt': ['Transform', 'Arn'] } },
                { ParameterName: 'NumberOfRetries', ParameterValue: '1' },
              ],
            },
            { Type: 'AppendDelimiterToRecord', Parameters: [] },
          ],
        },
      }),
      Health: nodeFunction(HEALTH_HASH),
      HealthMapping: streamMapping('Health', {
        BatchSize: 50,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: 1,
        MaximumRecordAgeInSeconds: 3600,
        ParallelizationFactor: 2,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['Dlq', 'Arn'] } } },
        FilterCriteria: { Filters: [{ Pattern: '{"data":{"type":["health"]}}' }] },
      }),
      Poison: nodeFunction(POISON_HASH),
      PoisonMapping: streamMapping('Poison', {
        BatchSize: 10,
        MaximumBatchingWindowInSeconds: 5,
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: 1,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['Dlq', 'Arn'] } } },
        FilterCriteria: {
          Filters: [{ Pattern: JSON.stringify({ data: { type: ['health'], fw: [{ prefix: '6.' }] } }) }],
        },
      }),
      BacklogAlarm: {
        Type: 'AWS::CloudWatch::Alarm',
        Properties: {
          Namespace: 'AWS/Kinesis',
          MetricName: 'GetRecords.IteratorAgeMilliseconds',
          Threshold: 60000,
          EvaluationPeriods: 1,
          ComparisonOperator: 'GreaterThanThreshold',
        },
      },
    },
    Outputs: {
      ErrorBucket: { Value: { Ref: 'ErrorBucket' } },
      ArchiveBucket: { Value: { Ref: 'ArchiveBucket' } },
      ProcessedBucket: { Value: { Ref: 'ProcessedBucket' } },
      ArchiveBucketArn: { Value: { 'Fn::GetAtt': ['ArchiveBucket', 'Arn'] } },
      TimestreamTable: { Value: { Ref: 'HealthTable' } },
      InfluxDestination: { Value: { Ref: 'InfluxDestination' } },
      Secret: { Value: { Ref: 'InfluxSecret' } },
      SecurityGroup: { Value: { 'Fn::GetAtt': ['InfluxSg', 'GroupId'] } },
    },
  };
  return writeAssembly(template, {
    [HEALTH_HASH]: HEALTH_CODE,
    [POISON_HASH]: POISON_CODE,
    [TRANSFORM_HASH]: TRANSFORM_CODE,
  });
}
