import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
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

/** The S3 server access log finding, acknowledged on every telemetry bucket with this reason. */
export const ACCESS_LOG_REASON =
  'Written only by AWS IoT rule error actions and Firehose through roles of this stack, read by operators ' +
  'with their own credentials; object-level access is recorded by CloudTrail data events where the account ' +
  'enables them. A server-access-log bucket per stack would itself need this exception.';

/**
 * The error store: every topic rule's error action writes the message it could not deliver as one
 * object (AWS IoT's error-action document, holding the original payload) under
 * `<ruleName>/<yyyy>/<MM>/<dd>/<HH>/…` (core/telemetry.ts ERROR_STORE), so `fleet telemetry replay
 * --since` lists hour prefixes. S3 rather than SQS: nothing is lost in an outage longer than
 * SQS's 14 days (docs/decisions.md D16). Encrypted (SSE-S3), TLS only, no public access,
 * versioned, and every entry (current or noncurrent) expires after the retention.
 */
export class TelemetryErrorStore extends Construct {
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: TelemetryErrorStoreProps = {}) {
    super(scope, id);
    const days = Duration.days(props.retentionDays ?? FLEET_DEFAULTS.telemetry.errorStore.retentionDays);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
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
