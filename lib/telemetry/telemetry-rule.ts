import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { ERROR_STORE, ruleSql, type RecordType } from '../../core/telemetry';
import { iotArn } from '../provisioning/iot-arns';
import type { TelemetryErrorStore } from './error-store';
import type { TelemetryStream } from './telemetry-stream';

/** SQL version of every telemetry rule (the one `core/telemetry.ts` writes its SQL for). */
export const RULE_SQL_VERSION = '2016-03-23';
/** Kinesis partition key of every record: the thing name (third topic level), so a device's records stay in order. */
export const PARTITION_KEY = '${topic(3)}';

export interface TelemetryRuleProps {
  /** Fixed rule name: part of the device contract (Basic Ingest topics name it). */
  readonly ruleName: string;
  /** The record type the rule selects (`dt/<topicPrefix>/+/<type>`). */
  readonly recordType: RecordType;
  readonly topicPrefix: string;
  readonly stream: TelemetryStream;
  readonly errorStore: TelemetryErrorStore;
  /**
   * Actions besides the Kinesis one (the republish of the time-series options). The SQL never
   * changes: a SQL function that fails drops the message before any action, error action included.
   * @default - none
   */
  readonly actions?: readonly iot.CfnTopicRule.ActionProperty[];
  /** Roles of those actions: the rule is created after them (and their policies). @default - none */
  readonly actionRoles?: readonly iam.IRole[];
}

/** The role trust of everything a topic rule assumes: AWS IoT, for this rule of this account only. */
export function iotRulePrincipal(scope: Construct, ruleName: string): iam.IPrincipal {
  // https://docs.aws.amazon.com/iot/latest/developerguide/cross-service-confused-deputy-prevention.html
  return new iam.ServicePrincipal('iot.amazonaws.com', {
    conditions: {
      StringEquals: { 'aws:SourceAccount': Stack.of(scope).account },
      ArnEquals: { 'aws:SourceArn': iotArn(scope, 'rule', ruleName) },
    },
  });
}

/**
 * One telemetry topic rule: the record type's SQL (`ruleSql` in core/telemetry.ts; it takes the
 * thing from the topic and the identity from the connection), a Kinesis action onto the telemetry
 * stream keyed by thing name (with a time-series option, the health rule also republishes to the
 * time-series rule: `TimeSeriesRule`), and an error action that writes what could not be delivered
 * to the error store under the rule's own prefix. The same rule serves the broker topic
 * `dt/<prefix>/<thing>/<type>` and its Basic Ingest form `$aws/rules/<ruleName>/dt/<prefix>/<thing>/<type>`
 * (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html). Its role may
 * put records on the stream and write under its prefix of the error store, nothing else.
 */
export class TelemetryRule extends Construct {
  public readonly rule: iot.CfnTopicRule;
  public readonly role: iam.Role;
  public readonly ruleName: string;
  public readonly sql: string;

  constructor(scope: Construct, id: string, props: TelemetryRuleProps) {
    super(scope, id);
    const { ruleName, recordType, stream, errorStore } = props;
    this.ruleName = ruleName;

    this.role = new iam.Role(this, 'Role', {
      assumedBy: iotRulePrincipal(this, ruleName),
      description: `Lets topic rule ${ruleName} put records on the telemetry stream and write its error store prefix`,
    });
    stream.grantRulePut(this.role);
    errorStore.grantRuleErrors(this.role, ruleName);
    errorStore.acknowledgePrefixGrant(this.role, ruleName);

    this.sql = ruleSql(recordType, props.topicPrefix);

    this.rule = new iot.CfnTopicRule(this, 'Resource', {
      ruleName,
      topicRulePayload: {
        description: `${recordType} records (direct and Basic Ingest) to the telemetry stream`,
        sql: this.sql,
        awsIotSqlVersion: RULE_SQL_VERSION,
        ruleDisabled: false,
        actions: [
          {
            kinesis: {
              streamName: stream.stream.streamName,
              partitionKey: PARTITION_KEY,
              roleArn: this.role.roleArn,
            },
          },
          ...(props.actions ?? []),
        ],
        // One error document per message, naming every action that failed
        // (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html).
        errorAction: {
          s3: {
            bucketName: errorStore.bucket.bucketName,
            key: ERROR_STORE.keyTemplate(ruleName),
            roleArn: this.role.roleArn,
          },
        },
      },
    });
    // AWS IoT checks that it can assume the roles when the rule is created.
    this.rule.node.addDependency(this.role, ...(props.actionRoles ?? []));
  }
}
