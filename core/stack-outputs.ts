/**
 * Names of the CloudFormation outputs of the fleet stack. The construct that creates a
 * resource exports it under one of these keys; the `fleet` CLI and the lab read them back.
 */
export const STACK_OUTPUTS = {
  devicesTable: 'DevicesTableName',
  lotsTable: 'LotsTableName',
  eventsTable: 'EventsTableName',
  devicePolicy: 'DevicePolicyName',
  thingNamePrefix: 'ThingNamePrefix',
  topicPrefix: 'TopicPrefix',
  /** JSON array of {@link ProvisioningTemplateOutput}. */
  provisioningTemplates: 'ProvisioningTemplates',
  /** Regular expression (source) serial numbers must match: the hook's and the manifest's. */
  serialPattern: 'SerialPattern',
  /** Ring shares in the `<canary>:<early>` form of core/rings.ts (`formatRingShares`). */
  ringShares: 'RingShares',
  /** Kinesis stream the telemetry and health rules write to. */
  telemetryStream: 'TelemetryStreamName',
  /** JSON {@link TelemetryRulesOutput}: the rule name of each record type. */
  telemetryRules: 'TelemetryRules',
  /** S3 bucket the rules' error actions write to (see ERROR_STORE in core/telemetry.ts). */
  telemetryErrorBucket: 'TelemetryErrorBucketName',
  /** S3 bucket of the stream archive (absent when the archive is off). */
  telemetryArchiveBucket: 'TelemetryArchiveBucketName',
  /** SQS queue of health records the consumer could not use and batches it gave up on. */
  healthDeadLetterQueue: 'HealthDeadLetterQueueUrl',
  /** Versioned S3 bucket of the firmware images (see {@link firmwareObjectKey}). */
  firmwareBucket: 'FirmwareBucketName',
  /** Software Package Catalog package of the firmware. */
  firmwarePackage: 'FirmwarePackageName',
  /** JSON {@link JobTemplatesOutput}: job template ARN per stage class. */
  otaJobTemplates: 'OtaJobTemplates',
  /** Role AWS IoT Jobs presigns firmware URLs with. */
  otaPresignedUrlRole: 'OtaPresignedUrlRoleArn',
  /** Table of the staged OTA rollouts (controller state and operator commands). */
  rolloutsTable: 'RolloutsTableName',
  /** Rollout API function (`aws lambda invoke` with `{"action": …}`; the console's test events). */
  rolloutApiFunction: 'RolloutApiFunctionName',
} as const;

/** The `TelemetryRules` output: topic rule name per record type. */
export interface TelemetryRulesOutput {
  telemetry: string;
  health: string;
}

/** One provisioning template as exported in the `ProvisioningTemplates` output. */
export interface ProvisioningTemplateOutput {
  /** Fixed template name devices publish to. */
  templateName: string;
  /** IoT policy to attach to this template's claim certificates. */
  claimPolicyName: string;
  /** Thing type the template assigns. */
  thingTypeName: string;
  /** MQTT client id prefix claim connections must use. */
  claimClientIdPrefix: string;
}

/** Default stack name (bin/app.ts) and CLI default. */
export const DEFAULT_STACK_NAME = 'IotFleetStack';

/** The `OtaJobTemplates` output: job template ARN per stage class. */
export interface JobTemplatesOutput {
  canary: string;
  early: string;
  broad: string;
}

/** Key prefix of the firmware images in the firmware bucket; the presigned-URL role reads only below it. */
export const FIRMWARE_KEY_PREFIX = 'firmware/';

/** Object key of a firmware image: `firmware/<version>/image.bin`. */
export function firmwareObjectKey(version: string): string {
  return `${FIRMWARE_KEY_PREFIX}${version}/image.bin`;
}
