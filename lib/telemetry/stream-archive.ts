import { ArnFormat, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { secureBucket } from '../common/secure-bucket';
import { acknowledgeWildcardResource } from '../common/nag';
import { ACCESS_LOG_REASON } from './error-store';
import type { TelemetryStream } from './telemetry-stream';
import { FLEET_DEFAULTS } from '../config';

/** Defaults of the props: FLEET_DEFAULTS is the one place they live. */
const A = FLEET_DEFAULTS.telemetry.archive;

/** Stable CloudFormation logical id of the archive bucket (a test pins it). */
export const ARCHIVE_BUCKET_LOGICAL_ID = 'TelemetryArchiveBucket';

/** Hour partitions of the archive, in Firehose's `!{timestamp:…}` namespace (UTC arrival time). */
const HOUR_PARTITIONS =
  'year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/';
/** Key prefix of archived records: Hive-style hour partitions Athena can prune. */
export const ARCHIVE_PREFIX = `records/${HOUR_PARTITIONS}`;
/** Key prefix of records Firehose could not deliver, by error type. */
export const ARCHIVE_ERROR_PREFIX = `errors/!{firehose:error-output-type}/${HOUR_PARTITIONS}`;
/** Name of the delivery log stream in the archive's log group. */
export const ARCHIVE_LOG_STREAM = 'S3Delivery';

export interface StreamArchiveProps {
  /** The stream to archive. */
  readonly source: TelemetryStream;
  /** Seconds Firehose buffers before it writes an object (0 to 900). @default 300 */
  readonly bufferingIntervalSeconds?: number;
  /** MiB Firehose buffers before it writes an object (1 to 128). @default 64 */
  readonly bufferingSizeMiB?: number;
  /** Days after which archived objects move to S3 Standard-IA. @default - they stay in Standard */
  readonly transitionToInfrequentAccessDays?: number;
  /** Retention of the delivery log group. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the bucket and the log group. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The stream archive (default durable sink): a Firehose delivery stream that reads the telemetry
 * stream and writes GZIP objects of newline-delimited JSON records to its own bucket, under
 * hour partitions (`records/year=…/month=…/day=…/hour=…/`), queryable with Athena. Partitions by
 * record type would need dynamic partitioning; the `type` field is in every record instead.
 *
 * - The source has its own role (read this stream), the destination its own (write this bucket,
 *   log delivery errors to this log stream).
 * - The bucket is encrypted (SSE-S3), TLS only, versioned, without public access, and retained
 *   outside dev. Firehose-side SSE does not apply to a Kinesis stream source: records are
 *   encrypted at rest in the source stream and in the bucket.
 */
export class StreamArchive extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly deliveryStream: firehose.CfnDeliveryStream;
  /** Role Firehose reads the stream with. */
  public readonly sourceRole: iam.Role;
  /** Role Firehose writes the bucket and its delivery log with. */
  public readonly deliveryRole: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: StreamArchiveProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.bucket = secureBucket(this, 'Bucket', {
      removalPolicy,
      lifecycleRules: [
        {
          id: 'archive-housekeeping',
          abortIncompleteMultipartUploadAfter: Duration.days(1),
          noncurrentVersionExpiration: Duration.days(30),
          transitions:
            props.transitionToInfrequentAccessDays === undefined
              ? undefined
              : [
                  {
                    storageClass: s3.StorageClass.INFREQUENT_ACCESS,
                    transitionAfter: Duration.days(props.transitionToInfrequentAccessDays),
                  },
                ],
        },
      ],
    });
    (this.bucket.node.defaultChild as s3.CfnBucket).overrideLogicalId(ARCHIVE_BUCKET_LOGICAL_ID);
    Validations.of(this.bucket).acknowledge({ id: 'AwsSolutions-S1', reason: ACCESS_LOG_REASON });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    const logStream = new logs.LogStream(this, 'DeliveryLogStream', {
      logGroup: this.logGroup,
      logStreamName: ARCHIVE_LOG_STREAM,
      removalPolicy,
    });

    const firehosePrincipal = () =>
      new iam.ServicePrincipal('firehose.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      });
    this.sourceRole = new iam.Role(this, 'SourceRole', {
      assumedBy: firehosePrincipal(),
      description: 'Lets the archive delivery stream read the telemetry stream',
    });
    props.source.grantArchiveRead(this.sourceRole);

    this.deliveryRole = new iam.Role(this, 'DeliveryRole', {
      assumedBy: firehosePrincipal(),
      description: 'Lets the archive delivery stream write the archive bucket and its delivery log',
    });
    // https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3
    this.deliveryRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
        resources: [this.bucket.bucketArn],
      }),
    );
    const objects = this.bucket.arnForObjects('*');
    this.deliveryRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'],
        resources: [objects],
      }),
    );
    acknowledgeWildcardResource(
      this.deliveryRole,
      objects,
      'Firehose writes objects under generated keys (hour partitions and a unique suffix); the grant is this bucket only.',
    );
    this.deliveryRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:PutLogEvents'],
        resources: [
          stack.formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: `${this.logGroup.logGroupName}:log-stream:${logStream.logStreamName}`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );

    this.deliveryStream = new firehose.CfnDeliveryStream(this, 'Resource', {
      deliveryStreamType: 'KinesisStreamAsSource',
      kinesisStreamSourceConfiguration: {
        kinesisStreamArn: props.source.stream.streamArn,
        roleArn: this.sourceRole.roleArn,
      },
      extendedS3DestinationConfiguration: {
        bucketArn: this.bucket.bucketArn,
        roleArn: this.deliveryRole.roleArn,
        prefix: ARCHIVE_PREFIX,
        errorOutputPrefix: ARCHIVE_ERROR_PREFIX,
        compressionFormat: 'GZIP',
        bufferingHints: {
          intervalInSeconds: props.bufferingIntervalSeconds ?? A.bufferingIntervalSeconds,
          sizeInMBs: props.bufferingSizeMiB ?? A.bufferingSizeMiB,
        },
        // One JSON record per line, so Athena's JSON SerDe reads the objects as they are
        // (https://docs.aws.amazon.com/firehose/latest/APIReference/API_Processor.html).
        processingConfiguration: {
          enabled: true,
          processors: [{ type: 'AppendDelimiterToRecord' }],
        },
        cloudWatchLoggingOptions: {
          enabled: true,
          logGroupName: this.logGroup.logGroupName,
          logStreamName: logStream.logStreamName,
        },
      },
    });
    // Firehose checks its roles when the delivery stream is created.
    this.deliveryStream.node.addDependency(this.sourceRole, this.deliveryRole);
    Validations.of(this.deliveryStream).acknowledge({
      id: 'AwsSolutions-KDF1',
      reason:
        'Firehose server-side encryption cannot be set on a delivery stream whose source is a Kinesis stream; ' +
        'records are encrypted at rest in the source stream (alias/aws/kinesis) and in the archive bucket (SSE-S3).',
    });
  }

  /** The delivery stream's name (CloudFormation-generated). */
  public get deliveryStreamName(): string {
    return this.deliveryStream.ref;
  }
}
