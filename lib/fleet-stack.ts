import { CfnOutput, Stack, StackProps, Stage, Token } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RINGS, thingGroupNames } from '../core/model';
import { formatRingShares } from '../core/rings';
import { STACK_OUTPUTS } from '../core/stack-outputs';
import { FleetConfig, FleetConfigError } from './config';
import { FleetOta } from './ota/fleet-ota';
import { RolloutController } from './ota/rollout-controller';
import { RolloutTable } from './ota/rollout-table';
import { FleetProvisioning } from './provisioning/fleet-provisioning';
import { FleetTelemetry } from './telemetry/fleet-telemetry';
import { RegistryTables } from './traceability/registry-tables';

export interface FleetStackProps extends StackProps {
  /** Resolved configuration (see `resolveFleetConfig`). */
  readonly config: FleetConfig;
}

/**
 * Names AWS IoT keeps per account and region that a fleet stack creates or claims: provisioning
 * templates, thing types, thing groups, topic rules, and the name patterns of its things and lot
 * groups.
 */
export function fixedNamesOf(config: FleetConfig): string[] {
  const p = config.thingNamePrefix;
  return [
    ...config.provisioning.templates.map((t) => `provisioning template ${t.name}`),
    ...[...new Set(config.provisioning.templates.map((t) => t.thingTypeName))].map((n) => `thing type ${n}`),
    ...RINGS.map((r) => `thing group ${thingGroupNames.ring(p, r)}`),
    ...Object.values(config.telemetry.ruleNames).map((n) => `topic rule ${n}`),
    `software package ${config.ota.packageName}`,
    `job templates ${p}-ota-*`,
    `thing group ${thingGroupNames.quarantine(p)}`,
    `lot groups ${thingGroupNames.lot(p, '*')}`,
    `things ${p}-*`,
  ];
}

/** The fleet stack: composes the capability constructs and exports their names. */
export class FleetStack extends Stack {
  public readonly config: FleetConfig;
  public readonly registry: RegistryTables;
  public readonly provisioning: FleetProvisioning;
  public readonly telemetry: FleetTelemetry;
  public readonly ota: FleetOta;
  public readonly rollouts: RolloutTable;
  public readonly rolloutController: RolloutController;

  constructor(scope: Construct, id: string, props: FleetStackProps) {
    super(scope, id, props);
    const config = props.config;
    this.config = config;
    this.refuseSharedNames();
    const logRetention = config.logRetentionDays as unknown as logs.RetentionDays;

    this.registry = new RegistryTables(this, 'Registry', {
      removalPolicy: config.removalPolicy,
      deletionProtection: config.deletionProtection,
    });

    this.provisioning = new FleetProvisioning(this, 'Provisioning', {
      templates: config.provisioning.templates,
      registry: this.registry,
      thingNamePrefix: config.thingNamePrefix,
      topicPrefix: config.topicPrefix,
      serialPattern: config.serialPattern,
      ringShares: config.rings,
      unlistedSerialRetentionDays: config.trail.unlistedSerialRetentionDays,
      basicIngestRuleNames: config.telemetry.basicIngest ? Object.values(config.telemetry.ruleNames) : [],
      logRetention,
      removalPolicy: config.removalPolicy,
    });

    this.telemetry = new FleetTelemetry(this, 'Telemetry', {
      settings: config.telemetry,
      registry: this.registry,
      thingNamePrefix: config.thingNamePrefix,
      topicPrefix: config.topicPrefix,
      logRetention,
      removalPolicy: config.removalPolicy,
    });

    this.ota = new FleetOta(this, 'Ota', {
      settings: config.ota,
      thingNamePrefix: config.thingNamePrefix,
      logRetention,
      removalPolicy: config.removalPolicy,
    });

    this.rollouts = new RolloutTable(this, 'Rollouts', {
      removalPolicy: config.removalPolicy,
      deletionProtection: config.deletionProtection,
    });
    this.rolloutController = new RolloutController(this, 'RolloutController', {
      table: this.rollouts,
      registry: this.registry,
      ota: this.ota,
      thingNamePrefix: config.thingNamePrefix,
      logRetention,
      removalPolicy: config.removalPolicy,
    });

    const out = (key: string, value: string, description: string) =>
      new CfnOutput(this, key, { key, value, description });
    out(STACK_OUTPUTS.devicesTable, this.registry.devices.tableName, 'Devices registry table');
    out(STACK_OUTPUTS.lotsTable, this.registry.lots.tableName, 'Lots table');
    out(STACK_OUTPUTS.eventsTable, this.registry.events.tableName, 'Device event trail table');
    out(
      STACK_OUTPUTS.devicePolicy,
      this.provisioning.devicePolicy.policyName,
      'IoT policy of enrolled devices',
    );
    out(STACK_OUTPUTS.thingNamePrefix, config.thingNamePrefix, 'Thing names are <prefix>-<serial>');
    out(STACK_OUTPUTS.topicPrefix, config.topicPrefix, 'MQTT topic prefix');
    out(
      STACK_OUTPUTS.serialPattern,
      config.serialPattern,
      'Regular expression (source) serial numbers must match: the hook enforces it, manifest import checks it',
    );
    out(
      STACK_OUTPUTS.ringShares,
      formatRingShares(config.rings),
      'Ring shares <canaryPercent>:<earlyPercent> (broad takes the rest), as the hook assigns them',
    );
    out(
      STACK_OUTPUTS.provisioningTemplates,
      this.toJsonString(this.provisioning.templateOutputs()),
      'JSON array of provisioning templates (name, claim policy, thing type, claim client id prefix)',
    );
    out(
      STACK_OUTPUTS.telemetryStream,
      this.telemetry.stream.stream.streamName,
      'Kinesis stream of telemetry and health records',
    );
    out(
      STACK_OUTPUTS.telemetryRules,
      this.toJsonString(this.telemetry.rulesOutput()),
      'JSON {telemetry, health}: topic rule name per record type (Basic Ingest: $aws/rules/<rule>/dt/…)',
    );
    out(
      STACK_OUTPUTS.telemetryErrorBucket,
      this.telemetry.errorStore.bucket.bucketName,
      'S3 bucket of messages the topic rules could not deliver (<rule>/<yyyy>/<MM>/<dd>/<HH>/…)',
    );
    if (this.telemetry.archive) {
      out(
        STACK_OUTPUTS.telemetryArchiveBucket,
        this.telemetry.archive.bucket.bucketName,
        'S3 bucket of the stream archive (records/year=…/month=…/day=…/hour=…/, GZIP JSON lines)',
      );
    }
    out(
      STACK_OUTPUTS.healthDeadLetterQueue,
      this.telemetry.consumer.deadLetterQueue.queueUrl,
      'SQS queue of health records the consumer could not use and batches it gave up on',
    );
    out(
      STACK_OUTPUTS.firmwareBucket,
      this.ota.firmware.bucket.bucketName,
      'S3 bucket of the firmware images (firmware/<version>/image.bin, versioned)',
    );
    out(
      STACK_OUTPUTS.firmwarePackage,
      this.ota.package.packageName,
      'Software Package Catalog package of the firmware (fleet firmware publish adds its versions)',
    );
    out(
      STACK_OUTPUTS.otaJobTemplates,
      this.toJsonString(this.ota.templateArns()),
      'JSON {canary, early, broad}: job template ARN per stage class',
    );
    out(
      STACK_OUTPUTS.otaPresignedUrlRole,
      this.ota.jobTemplates.presignedUrlRole.roleArn,
      'Role AWS IoT Jobs presigns firmware download URLs with',
    );
    out(STACK_OUTPUTS.rolloutsTable, this.rollouts.table.tableName, 'Table of the staged OTA rollouts');
    out(
      STACK_OUTPUTS.rolloutApiFunction,
      this.rolloutController.api.functionName,
      'Rollout API function: invoke with {"action":"start"|"status"|"pause"|"resume"|"approve"|"abort"|"list", …}',
    );
  }

  /**
   * Two fleet stacks of one app in the same environment (account and region, or both
   * environment-agnostic) must not claim the same fixed IoT names: thing names are
   * `<prefix>-<serial>` and every other fixed name but the topic rules' starts with `<prefix>-`,
   * so their prefixes must not overlap (neither `<a>-` may start with `<b>-`), and their topic
   * rule names must differ.
   */
  private refuseSharedNames(): void {
    const stage = Stage.of(this);
    if (!stage) return;
    const envKey = (s: Stack) =>
      `${Token.isUnresolved(s.account) ? '*' : s.account}/${Token.isUnresolved(s.region) ? '*' : s.region}`;
    const mine = `${this.config.thingNamePrefix}-`;
    for (const other of stage.node.findAll()) {
      if (other === this || !(other instanceof FleetStack) || envKey(other) !== envKey(this)) continue;
      const theirs = `${other.config.thingNamePrefix}-`;
      const overlap = mine.startsWith(theirs) || theirs.startsWith(mine);
      const shared = new Set(fixedNamesOf(other.config));
      const same = fixedNamesOf(this.config).filter((n) => shared.has(n));
      if (!overlap && same.length === 0) continue;
      const where = envKey(this) === '*/*' ? 'environment-agnostic' : `in ${envKey(this)}`;
      const suggest = (s: Stack) =>
        `"${`${this.config.thingNamePrefix}${s.node.id.toLowerCase().replace(/[^a-z0-9_]/g, '')}`.slice(0, 32)}"`;
      // Prefixes apart, only topic rule names can still meet (set by hand, or prefixes that differ
      // in "-" against "_" only, e.g. "acme-eu" and "acme_eu").
      const fix = overlap
        ? `give each stack its own thingNamePrefix, neither one followed by "-" starting the other (e.g. ${suggest(other)} and ${suggest(this)})`
        : 'give each stack its own telemetry.ruleNames';
      throw new FleetConfigError([
        `stacks ${other.node.path} and ${this.node.path} (both ${where}) would claim the same AWS IoT names ` +
          `(${same.length > 0 ? same.join(', ') : `things "${theirs}*" and "${mine}*" overlap`}); ${fix}`,
      ]);
    }
  }
}
