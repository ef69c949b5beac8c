import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { FIRMWARE_KEY_PREFIX } from '../../core/stack-outputs';
import { acknowledgeWildcardResource } from '../common/nag';
import { secureBucket } from '../common/secure-bucket';

/** Stable CloudFormation logical id of the firmware bucket (a test pins it). */
export const FIRMWARE_BUCKET_LOGICAL_ID = 'FirmwareBucket';

export interface FirmwareBucketProps {
  /** Removal policy of the bucket. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Days a replaced or deleted image version is kept before S3 expires it. @default - kept forever */
  readonly noncurrentVersionExpirationDays?: number;
}

/**
 * The bucket of the firmware images: SSE-S3, TLS only, no public access, versioned (a job
 * document names the key, the release record also the version id), retained outside dev. Images
 * live under `firmware/<version>/image.bin` (core/stack-outputs.ts `firmwareObjectKey`).
 */
export class FirmwareBucket extends Construct {
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: FirmwareBucketProps = {}) {
    super(scope, id);
    if (props.noncurrentVersionExpirationDays !== undefined && props.noncurrentVersionExpirationDays < 1) {
      throw new Error(
        `FirmwareBucket: noncurrentVersionExpirationDays ${props.noncurrentVersionExpirationDays} is invalid; use at least 1, or omit it to keep replaced versions`,
      );
    }
    this.bucket = secureBucket(this, 'Bucket', {
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'firmware-housekeeping',
          abortIncompleteMultipartUploadAfter: Duration.days(1),
          noncurrentVersionExpiration:
            props.noncurrentVersionExpirationDays === undefined
              ? undefined
              : Duration.days(props.noncurrentVersionExpirationDays),
        },
      ],
    });
    (this.bucket.node.defaultChild as s3.CfnBucket).overrideLogicalId(FIRMWARE_BUCKET_LOGICAL_ID);
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Written only by release engineers through `fleet firmware publish` and read through presigned URLs of the ' +
        "stack's own role; object-level access is recorded by CloudTrail data events where the account enables them. " +
        'A server-access-log bucket per stack would itself need this exception.',
    });
  }

  /** ARN pattern of the firmware images (everything below `firmware/`). */
  public get imagesArn(): string {
    return this.bucket.arnForObjects(`${FIRMWARE_KEY_PREFIX}*`);
  }

  /**
   * Let `grantee` read the firmware images, and nothing else: what AWS IoT Jobs' presigned-URL
   * role needs (`s3:GetObject` on `firmware/*` of this bucket).
   */
  public grantReadImages(grantee: iam.IGrantable): iam.Grant {
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [this.imagesArn],
    });
    if (grantee.grantPrincipal instanceof iam.Role) {
      acknowledgeWildcardResource(
        grantee.grantPrincipal,
        this.imagesArn,
        'Firmware images have one key per version (firmware/<version>/image.bin), published after deploy; the grant is read-only and limited to this bucket and prefix.',
      );
    }
    return grant;
  }
}
