import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../../core/env';
import { FleetFunction } from '../common/fleet-function';
import type { RegistryTables } from '../traceability/registry-tables';
import { SERVICES } from '../../core/metrics';

/** Entry of the presence (lifecycle) handler, relative to the repository root. */
export const PRESENCE_ENTRY = 'lambda/provisioning/presence.handler.ts';
/** Connected and disconnected lifecycle events of every client. */
export const PRESENCE_SQL = "SELECT * FROM '$aws/events/presence/+/+'";

export interface ActivationGateProps {
  /** Registry the presence function updates. */
  readonly registry: RegistryTables;
  readonly thingNamePrefix: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The activation gate: a topic rule on the AWS IoT presence events invokes the presence
 * function, which moves a device from PROVISIONING to ACTIVE on its first connect with the new
 * certificate and records connectivity. Events the rule cannot deliver (error action) and
 * invocations the function keeps failing (async dead letter) land in one encrypted queue, so
 * nothing is lost.
 */
export class ActivationGate extends Construct {
  public readonly presenceFunction: FleetFunction;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly rule: iot.CfnTopicRule;
  public readonly ruleRole: iam.Role;
  /** Lets the presence rule (and only it, in this account) invoke the function. */
  public readonly invokePermission: lambda.CfnPermission;

  constructor(scope: Construct, id: string, props: ActivationGateProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.presenceFunction = new FleetFunction(this, 'Presence', {
      entry: PRESENCE_ENTRY,
      serviceName: SERVICES.presence,
      description: 'Activation gate and connectivity state from AWS IoT presence events',
      timeout: Duration.seconds(10),
      memorySize: 512,
      deadLetterQueue: this.deadLetterQueue,
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
      environment: {
        [ENV.devicesTable]: props.registry.devices.tableName,
        [ENV.eventsTable]: props.registry.events.tableName,
        [ENV.thingNamePrefix]: props.thingNamePrefix,
      },
    });
    props.registry.grantPresenceUpdates(this.presenceFunction);

    this.ruleRole = new iam.Role(this, 'RuleErrorActionRole', {
      description: 'Lets the presence topic rule send undeliverable events to the dead-letter queue',
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    });
    this.deadLetterQueue.grantSendMessages(this.ruleRole);

    this.rule = new iot.CfnTopicRule(this, 'PresenceRule', {
      topicRulePayload: {
        description: 'Device presence events to the activation gate',
        sql: PRESENCE_SQL,
        awsIotSqlVersion: '2016-03-23',
        ruleDisabled: false,
        actions: [{ lambda: { functionArn: this.presenceFunction.functionArn } }],
        errorAction: {
          sqs: { queueUrl: this.deadLetterQueue.queueUrl, roleArn: this.ruleRole.roleArn, useBase64: false },
        },
      },
    });

    this.invokePermission = new lambda.CfnPermission(this, 'PresenceInvokePermission', {
      action: 'lambda:InvokeFunction',
      functionName: this.presenceFunction.functionArn,
      principal: 'iot.amazonaws.com',
      sourceArn: this.rule.attrArn,
      sourceAccount: stack.account,
    });
    this.rule.node.addDependency(this.ruleRole);
  }
}
