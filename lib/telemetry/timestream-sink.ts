import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { iotRulePrincipal } from './telemetry-rule';
import { timeSeriesTags, type RegistryEnrichment } from './registry-enrichment';

export interface TimestreamSinkProps {
  /** Existing Timestream for LiveAnalytics database (the stack does not create it). */
  readonly databaseName: string;
  /** Existing table of that database. */
  readonly tableName: string;
  /** The rule the action belongs to, the time-series rule (its role trusts that rule only). */
  readonly ruleName: string;
  readonly enrichment: RegistryEnrichment;
}

/**
 * Timestream for LiveAnalytics as an action of the time-series rule (legacy option, off by
 * default: closed to new customers since 20 June 2025). Every attribute of the rule's SELECT
 * becomes its own, separately billed, measure record, so that rule selects the measures only
 * (uptimeS, heapFreeB, heapMinB, rssiDbm; see `TIME_SERIES_MEASURES`), with the dimensions of
 * {@link timeSeriesTags} and the report's own time (`ts`, ms). The role trusts that rule only and
 * may write that table only, plus `timestream:DescribeEndpoints`, which supports no resource
 * scoping (https://docs.aws.amazon.com/iot/latest/developerguide/timestream-rule-action.html).
 */
export class TimestreamSink extends Construct {
  public readonly role: iam.Role;
  public readonly action: iot.CfnTopicRule.ActionProperty;
  public readonly tableArn: string;

  constructor(scope: Construct, id: string, props: TimestreamSinkProps) {
    super(scope, id);
    this.tableArn = Stack.of(this).formatArn({
      service: 'timestream',
      resource: 'database',
      resourceName: `${props.databaseName}/table/${props.tableName}`,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: iotRulePrincipal(this, props.ruleName),
      description: `Lets topic rule ${props.ruleName} write health reports to Timestream table ${props.databaseName}.${props.tableName}`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['timestream:WriteRecords'], resources: [this.tableArn] }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['timestream:DescribeEndpoints'], resources: ['*'] }),
    );
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'timestream:DescribeEndpoints supports no resource-level permissions (Service Authorization Reference); ' +
        'WriteRecords is scoped to the configured table.',
    });

    const tags = timeSeriesTags(props.enrichment);
    this.action = {
      timestream: {
        databaseName: props.databaseName,
        tableName: props.tableName,
        roleArn: this.role.roleArn,
        dimensions: Object.entries(tags).map(([name, value]) => ({ name, value })),
        // The report's own time (the time-series rule leaves Last Wills out).
        timestamp: { value: '${ts}', unit: 'MILLISECONDS' },
      },
    };
  }
}
