import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { JobTemplatesOutput } from '../../core/stack-outputs';
import type { OtaConfig } from '../config';
import { acknowledgeWildcardResource } from '../common/nag';
import { FirmwareBucket } from './firmware-bucket';
import { FirmwarePackage } from './firmware-package';
import { JobEventConfiguration } from './job-event-configuration';
import { OtaJobTemplates } from './job-templates';

export interface FleetOtaProps {
  /** The resolved `ota` section of the fleet configuration. */
  readonly settings: OtaConfig;
  /** Prefix of the fixed AWS IoT names (job template ids). @default 'fleet' */
  readonly thingNamePrefix?: string;
  /** Retention of the custom resource's log group. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the firmware bucket and the log group. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The release side of staged OTA: the firmware bucket, the firmware package in the Software
 * Package Catalog, a job template per stage class with its presigned-URL role, and (unless
 * `manageJobEvents` is off) the custom resource that turns on the account's job events.
 */
export class FleetOta extends Construct {
  public readonly firmware: FirmwareBucket;
  public readonly package: FirmwarePackage;
  public readonly jobTemplates: OtaJobTemplates;
  /** Absent when `settings.manageJobEvents` is false. */
  public readonly jobEvents?: JobEventConfiguration;

  constructor(scope: Construct, id: string, props: FleetOtaProps) {
    super(scope, id);
    const s = props.settings;
    this.firmware = new FirmwareBucket(this, 'Firmware', { removalPolicy: props.removalPolicy });
    this.package = new FirmwarePackage(this, 'Package', { packageName: s.packageName });
    this.jobTemplates = new OtaJobTemplates(this, 'JobTemplates', {
      firmware: this.firmware,
      idPrefix: props.thingNamePrefix,
      presignedUrlExpiresInSec: s.presignedUrlExpiresInSec,
      stageClasses: s.stageClasses,
    });
    if (s.manageJobEvents) {
      this.jobEvents = new JobEventConfiguration(this, 'JobEvents', {
        logRetention: props.logRetention,
        logRemovalPolicy: props.removalPolicy,
      });
    }
  }

  /** ARN pattern of the firmware package's versions (`…:package/<name>/version/*`). */
  public packageVersionsArn(): string {
    return Stack.of(this).formatArn({
      service: 'iot',
      resource: 'package',
      resourceName: `${this.package.packageName}/version/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /**
   * What `fleet firmware publish` needs, for a release engineer's or CI role: write and read the
   * firmware images, read the package, and create, read and publish its versions. Nothing else
   * of the account's catalog, and no delete.
   */
  public grantPublishReleases(grantee: iam.IGrantable): iam.Grant {
    const images = this.firmware.imagesArn;
    const s3 = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject', 's3:GetObject', 's3:GetObjectVersion'],
      resourceArns: [images],
    });
    const versions = this.packageVersionsArn();
    iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'iot:GetPackage',
        'iot:GetPackageVersion',
        'iot:CreatePackageVersion',
        'iot:UpdatePackageVersion',
      ],
      resourceArns: [this.package.packageArn, versions],
    });
    if (grantee.grantPrincipal instanceof iam.Role) {
      acknowledgeWildcardResource(
        grantee.grantPrincipal,
        images,
        'Release engineers publish one image per version under firmware/<version>/; the grant is this bucket and prefix only.',
      );
      acknowledgeWildcardResource(
        grantee.grantPrincipal,
        versions,
        "Each release is a new version of this stack's firmware package; the grant is that package's versions only.",
      );
    }
    return s3;
  }

  /** Job template ARN per stage class. */
  public templateArns(): JobTemplatesOutput {
    return this.jobTemplates.templateArns();
  }
}
