import { RemovalPolicy } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ProvisioningTemplateOutput } from '../../core/stack-outputs';
import type { ProvisioningTemplateConfig } from '../config';
import type { RegistryTables } from '../traceability/registry-tables';
import { ActivationGate } from './activation-gate';
import { DevicePolicy } from './device-policy';
import { FleetProvisioningTemplate } from './provisioning-template';
import { ProvisioningRole } from './provisioning-role';
import { FleetThingGroups } from './thing-groups';
import { FleetThingType } from './thing-type';

export interface FleetProvisioningProps {
  /** Templates to create (at least one; names unique). */
  readonly templates: readonly ProvisioningTemplateConfig[];
  /** Registry the hook and the presence function use. */
  readonly registry: RegistryTables;
  /** @default 'fleet' */
  readonly thingNamePrefix?: string;
  /** @default 'fleet' */
  readonly topicPrefix?: string;
  /** Serial number regular expression (source) the hook enforces. */
  readonly serialPattern: string;
  /** Ring shares `<canary>:<early>`. @default '2:18' */
  readonly ringShares?: string;
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
    const thingNamePrefix = props.thingNamePrefix ?? 'fleet';
    const topicPrefix = props.topicPrefix ?? 'fleet';
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
          description: `Devices enrolled through ${t.name}`,
          removalPolicy,
        }),
      );
    }
    this.thingTypes = types;

    this.provisioningRole = new ProvisioningRole(this, 'ProvisioningRole', {
      thingNamePrefix,
      devicePolicy: this.devicePolicy,
      thingGroups: this.thingGroups,
      thingTypes: [...types.values()],
    });

    this.templates = props.templates.map(
      (t, i) =>
        new FleetProvisioningTemplate(this, `Template${i}`, {
          template: t,
          thingNamePrefix,
          topicPrefix,
          serialPattern: props.serialPattern,
          ringShares: props.ringShares ?? '2:18',
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
