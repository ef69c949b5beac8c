import { CustomResource, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { FleetFunction } from '../common/fleet-function';

/** Handler of the custom resource, relative to the repository root. */
export const JOB_EVENTS_HANDLER_ENTRY = 'lambda/ota/event-configuration.handler.ts';

/** The custom resource type name in the template. */
export const JOB_EVENTS_RESOURCE_TYPE = 'Custom::IotJobEventConfiguration';

export interface JobEventConfigurationProps {
  /** Retention of the handler's log group. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the handler's log group. @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * Turns on the account's AWS IoT `JOB` and `JOB_EXECUTION` event messages
 * (`$aws/events/job/…`, `$aws/events/jobExecution/…`), which the rollout controller listens to.
 * CloudFormation has no resource for the account's event configuration, so a Lambda-backed
 * custom resource calls `UpdateEventConfigurations`: it keeps the settings it found in its
 * physical id and restores them on Delete (lambda/ota/event-configuration.ts). It manages only
 * these two event types; the others stay as they are.
 *
 * The event configuration is one per account and region: deploy one such resource per account
 * (the `ota.manageJobEvents` setting turns it off in the other stacks).
 */
export class JobEventConfiguration extends Construct {
  public readonly handler: FleetFunction;
  public readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: JobEventConfigurationProps = {}) {
    super(scope, id);
    this.handler = new FleetFunction(this, 'Handler', {
      entry: JOB_EVENTS_HANDLER_ENTRY,
      serviceName: 'fleet-ota-job-events',
      description: 'Custom resource: enables AWS IoT JOB and JOB_EXECUTION events, restores them on delete',
      timeout: Duration.seconds(60),
      memorySize: 256,
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
    });
    const actions = ['iot:DescribeEventConfigurations', 'iot:UpdateEventConfigurations'];
    this.handler.executionRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: ['*'] }));
    Validations.of(this.handler.executionRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'iot:DescribeEventConfigurations and iot:UpdateEventConfigurations act on the account-wide event ' +
        'configuration and support no resource-level permissions (Service Authorization Reference, AWS IoT); ' +
        'besides them only the X-Ray statement of every fleet function has a wildcard resource, a test asserts it.',
    });

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.handler.functionArn,
      resourceType: JOB_EVENTS_RESOURCE_TYPE,
      properties: { EventTypes: ['JOB', 'JOB_EXECUTION'] },
    });
    // The role's policy must exist before CloudFormation invokes the function (and after it on delete).
    this.resource.node.addDependency(this.handler.executionRole);
  }
}
