import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { STACK_OUTPUTS } from '../core/stack-outputs';
import { FleetConfig, ringSharesOf } from './config';
import { FleetProvisioning } from './provisioning/fleet-provisioning';
import { RegistryTables } from './traceability/registry-tables';

export interface FleetStackProps extends StackProps {
  /** Resolved configuration (see `resolveFleetConfig`). */
  readonly config: FleetConfig;
}

/** The fleet stack: composes the capability constructs and exports their names. */
export class FleetStack extends Stack {
  public readonly config: FleetConfig;
  public readonly registry: RegistryTables;
  public readonly provisioning: FleetProvisioning;

  constructor(scope: Construct, id: string, props: FleetStackProps) {
    super(scope, id, props);
    const config = props.config;
    this.config = config;
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
      ringShares: ringSharesOf(config),
      basicIngestRuleNames: config.basicIngestRuleNames,
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
      STACK_OUTPUTS.provisioningTemplates,
      this.toJsonString(this.provisioning.templateOutputs()),
      'JSON array of provisioning templates (name, claim policy, thing type, claim client id prefix)',
    );
  }
}
