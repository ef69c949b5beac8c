import { RemovalPolicy } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { RingShares } from '../../core/rings';
import type { ProvisioningTemplateOutput } from '../../core/stack-outputs';
import type { ProvisioningTemplateConfig } from '../config';
import type { RegistryTables } from '../traceability/registry-tables';
import { ActivationGate } from './activation-gate';
import { DevicePolicy } from './device-policy';
import { FleetProvisioningTemplate } from './provisioning-template';
import { ProvisioningRole } from './provisioning-role';
import { FleetThingGroups } from './thing-groups';
import { FleetThingType } from './thing-type';

/** Description of every fleet thing type. Never derived from config: changing it would replace the type. */
export const THING_TYPE_DESCRIPTION = 'Fleet devices enrolled by AWS IoT fleet provisioning';

export interface FleetProvisioningProps {
  /** Templates to create (at least one; names unique). */
  readonly templates: readonly ProvisioningTemplateConfig[];
  /** Registry the hook and the presence function use. */
  readonly registry: RegistryTables;
  /**
   * Thing names are `<prefix>-<serial>`; thing groups, thing types and template names start with
   * `<prefix>-` (a contract with the CLI and the hook, so no construct default: see FLEET_DEFAULTS).
   */
  readonly thingNamePrefix: string;
  /** MQTT topic prefix of the device policy and the template's device configuration. */
  readonly topicPrefix: string;
  /** Serial number regular expression (source) the hook enforces. */
  readonly serialPattern: string;
  /** Ring shares the hook assigns devices without a manifest ring by. */
  readonly ringShares: RingShares;
  /** Days the audit trail keeps entries of serials that are not on the manifest (DynamoDB TTL). */
  readonly unlistedSerialRetentionDays: number;
  /** Basic Ingest rules devices may publish to. @default - none */
  readonly basicIngestRuleNames?: readonly string[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of policies, thing types/groups, queues and log groups. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Zero-touch provisioning capability: the device policy, thing types and groups, the
 * provisioning role, one template (with hook and claim policy) per configured template, and the
 * activation gate.
 */
export class FleetProvisioning extends Construct {
  public readonly devicePolicy: DevicePolicy;
  public readonly thingGroups: FleetThingGroups;
  /** Thing types by name. */
  public readonly thingTypes: ReadonlyMap<string, FleetThingType>;
  public readonly provisioningRole: ProvisioningRole;
  public readonly templates: readonly FleetProvisioningTemplate[];
  public readonly activationGate: ActivationGate;

  constructor(scope: Construct, id: string, props: FleetProvisioningProps) {
    super(scope, id);
    if (props.templates.length === 0) {
      throw new Error(
        'FleetProvisioning needs at least one template: set provisioning.templates in the config',
      );
    }
    const names = new Set(props.templates.map((t) => t.name));
    if (names.size !== props.templates.length) {
      throw new Error('FleetProvisioning template names must be unique: rename the duplicates');
    }
    const { thingNamePrefix, topicPrefix } = props;
    for (const t of props.templates) {
      for (const [what, name] of [
        ['template name', t.name],
        ['thing type name', t.thingTypeName],
      ] as const) {
        if (!name.startsWith(`${thingNamePrefix}-`)) {
          throw new Error(
            `FleetProvisioning ${what} "${name}" must start with the thing-name prefix "${thingNamePrefix}-": rename it`,
          );
        }
      }
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.devicePolicy = new DevicePolicy(this, 'DevicePolicy', {
      topicPrefix,
      basicIngestRuleNames: props.basicIngestRuleNames,
      removalPolicy,
    });
    this.thingGroups = new FleetThingGroups(this, 'ThingGroups', { thingNamePrefix, removalPolicy });

    const types = new Map<string, FleetThingType>();
    for (const t of props.templates) {
      if (types.has(t.thingTypeName)) continue;
      types.set(
        t.thingTypeName,
        new FleetThingType(this, `ThingType${types.size}`, {
          thingTypeName: t.thingTypeName,
          // Constant on purpose: thing-type properties change only by replacement, and a named
          // thing type cannot be replaced.
          description: THING_TYPE_DESCRIPTION,
          removalPolicy,
        }),
      );
    }
    this.thingTypes = types;

    this.provisioningRole = new ProvisioningRole(this, 'ProvisioningRole', {
      thingNamePrefix,
      devicePolicy: this.devicePolicy,
    });

    this.templates = props.templates.map(
      (t, i) =>
        new FleetProvisioningTemplate(this, `Template${i}`, {
          template: t,
          thingNamePrefix,
          topicPrefix,
          serialPattern: props.serialPattern,
          ringShares: props.ringShares,
          unlistedSerialRetentionDays: props.unlistedSerialRetentionDays,
          registry: props.registry,
          devicePolicyName: this.devicePolicy.policyName,
          provisioningRole: this.provisioningRole.role,
          dependsOn: [
            this.provisioningRole,
            types.get(t.thingTypeName)!,
            this.thingGroups,
            this.devicePolicy,
          ],
          logRetention: props.logRetention,
          removalPolicy,
        }),
    );

    this.activationGate = new ActivationGate(this, 'ActivationGate', {
      registry: props.registry,
      thingNamePrefix,
      logRetention: props.logRetention,
      removalPolicy,
    });
  }

  /** The `ProvisioningTemplates` stack output entries (the claim policy name is a token). */
  public templateOutputs(): ProvisioningTemplateOutput[] {
    return this.templates.map((t) => ({
      templateName: t.templateName,
      claimPolicyName: t.claimPolicy.policyName,
      thingTypeName: t.thingTypeName,
      claimClientIdPrefix: t.claimClientIdPrefix,
    }));
  }
}
