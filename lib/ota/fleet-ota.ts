import { RemovalPolicy } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { JobTemplatesOutput } from '../../core/stack-outputs';
import type { OtaConfig } from '../config';
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

  /** Job template ARN per stage class. */
  public templateArns(): JobTemplatesOutput {
    return this.jobTemplates.templateArns();
  }
}
