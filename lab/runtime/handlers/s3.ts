/**
 * AWS::S3::Bucket → a bucket in the S3 emulator (a folder under `<labDir>/s3/`). Encryption,
 * versioning, lifecycle rules, notifications, replication, object lock and public-access
 * settings are accepted and listed as not emulated; bucket policies are acknowledged (IAM is not
 * evaluated by the lab).
 */
import { arn, type NamingContext, type ResourceHandler } from './types';

/** Bucket names: 3-63 characters, lower-case letters, digits, dots and hyphens. */
function bucketName(generated: string): string {
  const n = generated
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return n.slice(0, 63).replace(/[^a-z0-9]+$/, '');
}

const s3Arn = (name: string, c: NamingContext): string =>
  arn('s3', c, name, { region: false, account: false });

/** What the summary says the lab does not do for a bucket's configuration. */
function notEmulated(p: Record<string, unknown>): string[] {
  const notes: string[] = [];
  if (p.BucketEncryption) notes.push('encryption');
  if ((p.VersioningConfiguration as { Status?: string } | undefined)?.Status === 'Enabled')
    notes.push('versioning');
  const rules = (p.LifecycleConfiguration as { Rules?: unknown[] } | undefined)?.Rules;
  if (rules?.length) notes.push(`${rules.length} lifecycle rule(s)`);
  if (p.NotificationConfiguration) notes.push('notifications');
  if (p.ReplicationConfiguration) notes.push('replication');
  if (p.ObjectLockEnabled === true) notes.push('object lock');
  if (p.PublicAccessBlockConfiguration || p.OwnershipControls || p.AccessControl)
    notes.push('access settings');
  if (p.LoggingConfiguration) notes.push('access logging');
  if (p.IntelligentTieringConfigurations || p.InventoryConfigurations || p.MetricsConfigurations)
    notes.push('tiering/inventory/metrics');
  return notes;
}

export const s3BucketHandler: ResourceHandler = {
  types: ['AWS::S3::Bucket'],
  phase: 10,
  nameProperty: 'BucketName',
  maxNameLength: 63,
  sanitizeName: (n) => bucketName(n),
  attributes: (name, c) => ({
    Arn: s3Arn(name, c),
    DomainName: `${name}.s3.amazonaws.com`,
    RegionalDomainName: `${name}.s3.${c.region}.amazonaws.com`,
    DualStackDomainName: `${name}.s3.dualstack.${c.region}.amazonaws.com`,
    WebsiteURL: `http://${name}.s3-website-${c.region}.amazonaws.com`,
  }),
  async create(ctx) {
    await ctx.s3.createBucket(ctx.physicalName);
    const notes = notEmulated(ctx.properties);
    return {
      status: 'created',
      detail: `s3 bucket${notes.length ? `; not emulated: ${notes.join(', ')}` : ''}`,
    };
  },
};
