import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { secureBucket } from '../common/secure-bucket';
import { ERROR_STORE } from '../../core/telemetry';
import { acknowledgeWildcardResource } from '../common/nag';
import { FLEET_DEFAULTS } from '../config';

/** Stable CloudFormation logical id of the bucket (a test pins it: a new id would replace it). */
export const ERROR_STORE_LOGICAL_ID = 'TelemetryErrorBucket';

export interface TelemetryErrorStoreProps {
  /** Days an entry is kept (current and noncurrent versions). @default 90 */
  readonly retentionDays?: number;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Where AWS Lambda writes what an event-source mapping gives up on when its on-failure destination
 * is this bucket: `aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`, one
 * object per batch, holding the invocation record and, in `payload`, the whole event the function
 * got (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
 * `fleet telemetry replay` lists `<ruleName>/` only (and the config refuses a rule named `aws`),
 * so it never takes these objects for rule errors.
 */
export const STREAM_FAILURE_PREFIX = 'aws/lambda/';

/** The S3 server access log finding, acknowledged on every telemetry bucket with this reason. */
export const ACCESS_LOG_REASON =
  'Written only by AWS IoT rule error actions, Firehose and a Lambda event-source mapping through roles of ' +
  'this stack, read by operators ' +
  'with their own credentials; object-level access is recorded by CloudTrail data events where the account ' +
  'enables them. A server-access-log bucket per stack would itself need this exception.';

/**
 * The error store: every topic rule's error action writes the message it could not deliver as one
 * object (AWS IoT's error-action document, holding the original payload) under
 * `<ruleName>/<yyyy>/<MM>/<dd>/<HH>/…` (core/telemetry.ts ERROR_STORE), so `fleet telemetry replay
 * --since` lists hour prefixes. S3 rather than SQS: nothing is lost in an outage longer than
 * SQS's 14 days (docs/decisions.md D16). Encrypted (SSE-S3), TLS only, no public access,
 * versioned, and every entry (current or noncurrent) expires after the retention.
 *
 * It is also the on-failure destination of the health consumer's event-source mapping
 * ({@link streamFailureDestination}): batches Lambda gives up on land under
 * {@link STREAM_FAILURE_PREFIX} with their records (docs/decisions.md D20).
 */
export class TelemetryErrorStore extends Construct {
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: TelemetryErrorStoreProps = {}) {
    super(scope, id);
    const days = Duration.days(props.retentionDays ?? FLEET_DEFAULTS.telemetry.errorStore.retentionDays);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.bucket = secureBucket(this, 'Bucket', {
      removalPolicy,
      autoDeleteObjects: false,
      lifecycleRules: [
        {
          id: 'expire-entries',
          expiration: days,
          noncurrentVersionExpiration: days,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        // An expired entry leaves a delete marker once its noncurrent version is gone.
        { id: 'remove-expired-delete-markers', expiredObjectDeleteMarker: true },
      ],
    });
    (this.bucket.node.defaultChild as s3.CfnBucket).overrideLogicalId(ERROR_STORE_LOGICAL_ID);
    Validations.of(this.bucket).acknowledge({ id: 'AwsSolutions-S1', reason: ACCESS_LOG_REASON });
  }

  /**
   * What the error action of rule `ruleName` needs: `s3:PutObject` under its own prefix only
   * (https://docs.aws.amazon.com/iot/latest/developerguide/s3-rule-action.html).
   */
  public grantRuleErrors(grantee: iam.IGrantable, ruleName: string): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject'],
      resourceArns: [this.prefixArn(ruleName)],
    });
  }

  /** `<bucketArn>/<ruleName>/*`: the keys of {@link ERROR_STORE.keyTemplate}. */
  public prefixArn(ruleName: string): string {
    return this.bucket.arnForObjects(`${ruleName}/*`);
  }

  /**
   * The on-failure destination of a stream event-source mapping: this bucket. Binding it grants
   * the function's execution role what Lambda needs to write there (the Lambda developer guide
   * lists `s3:PutObject` and `s3:ListBucket` on the destination): `s3:PutObject` under
   * {@link STREAM_FAILURE_PREFIX} only, and `s3:ListBucket` on the bucket. Not
   * `S3OnFailureDestination`: its bind grants read, write and delete on the whole bucket, which
   * would let the consumer read and delete the rules' entries.
   */
  public streamFailureDestination(): lambda.IEventSourceDlq {
    return {
      bind: (_target: lambda.IEventSourceMapping, fn: lambda.IFunction): lambda.DlqDestinationConfig => {
        this.grantStreamFailureWrites(fn);
        return { destination: this.bucket.bucketArn };
      },
    };
  }

  /** `s3:PutObject` under {@link STREAM_FAILURE_PREFIX}, `s3:ListBucket` on the bucket, with the IAM5 acknowledgement. */
  public grantStreamFailureWrites(grantee: iam.IGrantable): iam.Grant {
    const objects = this.bucket.arnForObjects(`${STREAM_FAILURE_PREFIX}*`);
    const put = iam.Grant.addToPrincipal({ grantee, actions: ['s3:PutObject'], resourceArns: [objects] });
    iam.Grant.addToPrincipal({ grantee, actions: ['s3:ListBucket'], resourceArns: [this.bucket.bucketArn] });
    const principal = grantee.grantPrincipal;
    if (principal instanceof iam.Role)
      acknowledgeWildcardResource(
        principal,
        objects,
        'AWS Lambda names each on-failure object itself (aws/lambda/<mapping UUID>/<shard>/<date>/…); ' +
          'the grant is PutObject under that prefix only.',
      );
    return put;
  }

  /** Acknowledge the one cdk-nag IAM5 finding a rule role gets for its prefix, with the reason. */
  public acknowledgePrefixGrant(role: iam.IRole & Construct, ruleName: string): void {
    acknowledgeWildcardResource(
      role,
      this.prefixArn(ruleName),
      `Error-action keys are generated per message (${ERROR_STORE.keyTemplate('<rule>')}); ` +
        'the grant is PutObject under this rule prefix only.',
    );
  }
}
