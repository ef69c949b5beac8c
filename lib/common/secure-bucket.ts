import { type RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/**
 * The house defaults of every bucket the stack keeps data in: SSE-S3 encryption, TLS only, no
 * public access, objects owned by the bucket owner, versioning, and the removal policy of the
 * stage (RETAIN outside dev). Callers add their lifecycle rules and anything else.
 */
export function secureBucket(
  scope: Construct,
  id: string,
  props: { removalPolicy: RemovalPolicy } & Omit<s3.BucketProps, 'removalPolicy'>,
): s3.Bucket {
  return new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    versioned: true,
    ...props,
  });
}
