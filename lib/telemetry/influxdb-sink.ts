import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import type { InfluxDbVpcConfig } from '../config';
import { acknowledgeWildcardResource } from '../common/nag';
import { timeSeriesTags, type RegistryEnrichment } from './registry-enrichment';
import { iotRulePrincipal } from './telemetry-rule';

/**
 * The SELECT projection the InfluxDB action needs: it takes each point's time from a `timestamp`
 * key of the rule's result, never from a substitution template
 * (https://docs.aws.amazon.com/iot/latest/developerguide/influxdb-rule-action.html).
 */
export const INFLUXDB_TIMESTAMP_PROJECTION = 'ts AS timestamp';

export interface InfluxDbSinkProps {
  /** HTTPS endpoint (ports 443, 8086, 8181, 8443). */
  readonly endpoint: string;
  readonly version: 'V2' | 'V3';
  /** Full ARN of the Secrets Manager secret holding the token. */
  readonly secretArn: string;
  /** Key of the token inside a JSON secret. @default - the secret string is the token */
  readonly secretKey?: string;
  /** Database (V3) or bucket (V2). */
  readonly databaseName: string;
  /** Table (V3) or measurement (V2). */
  readonly tableName: string;
  /** Organization (V2). @default - none (V3 ignores it) */
  readonly organization?: string;
  /** VPC of a private endpoint. @default - the endpoint is reached over the internet */
  readonly vpc?: InfluxDbVpcConfig;
  /** The rule the action belongs to, the time-series rule (its role trusts that rule only). */
  readonly ruleName: string;
  readonly enrichment: RegistryEnrichment;
}

/**
 * InfluxDB (e.g. Amazon Timestream for InfluxDB) as an action of the time-series rule: an InfluxDB
 * topic rule destination (endpoint, version, token secret; AWS IoT validates the endpoint before
 * it sends traffic), with VPC properties when the endpoint is private, and the `influxDb` action
 * writing one point per health report (fields: the measures the rule selects; tags:
 * {@link timeSeriesTags}; time: the report's `ts`, ms). The action's role may read the token secret only; the VPC role may
 * manage the network interfaces AWS IoT puts into the given subnets
 * (https://docs.aws.amazon.com/iot/latest/developerguide/rule-destination.html).
 */
export class InfluxDbSink extends Construct {
  public readonly destination: iot.CfnTopicRuleDestination;
  /** Role of the action: reads the token secret. */
  public readonly role: iam.Role;
  /** Role AWS IoT creates the destination's network interfaces with (private endpoint only). */
  public readonly vpcRole?: iam.Role;
  public readonly action: iot.CfnTopicRule.ActionProperty;

  constructor(scope: Construct, id: string, props: InfluxDbSinkProps) {
    super(scope, id);
    this.vpcRole = props.vpc ? this.createVpcRole(props.vpc) : undefined;

    this.destination = new iot.CfnTopicRuleDestination(this, 'Destination', {
      influxDbProperties: {
        endpoint: props.endpoint,
        influxDbVersion: props.version,
        secretId: props.secretArn,
        secretKey: props.secretKey,
      },
      vpcProperties:
        props.vpc && this.vpcRole
          ? {
              vpcId: props.vpc.vpcId,
              subnetIds: [...props.vpc.subnetIds],
              securityGroups: [...props.vpc.securityGroupIds],
              roleArn: this.vpcRole.roleArn,
            }
          : undefined,
    });
    if (this.vpcRole) this.destination.node.addDependency(this.vpcRole);

    this.role = new iam.Role(this, 'Role', {
      assumedBy: iotRulePrincipal(this, props.ruleName),
      description: `Lets topic rule ${props.ruleName} read the InfluxDB token to write health reports`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [props.secretArn] }),
    );

    this.action = {
      influxDb: {
        destinationArn: this.destination.attrArn,
        roleArn: this.role.roleArn,
        databaseName: props.databaseName,
        tableName: props.tableName,
        organization: props.organization,
        tags: timeSeriesTags(props.enrichment),
        timestampUnit: 'ms',
      },
    };
  }

  private createVpcRole(vpc: InfluxDbVpcConfig): iam.Role {
    const stack = Stack.of(this);
    const ec2Arn = (resource: string, name: string) =>
      stack.formatArn({ service: 'ec2', resource, resourceName: name });
    const role = new iam.Role(this, 'VpcRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: 'Lets AWS IoT manage the network interfaces of the InfluxDB VPC destination',
    });
    // Describe* support no resource-level permissions.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSecurityGroups',
          'ec2:DescribeSubnets',
          'ec2:DescribeVpcAttribute',
          'ec2:DescribeVpcs',
        ],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['ec2:CreateNetworkInterface'],
        resources: [
          ...vpc.subnetIds.map((s) => ec2Arn('subnet', s)),
          ...vpc.securityGroupIds.map((g) => ec2Arn('security-group', g)),
        ],
      }),
    );
    const interfaces = ec2Arn('network-interface', '*');
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:CreateNetworkInterfacePermission',
          'ec2:DeleteNetworkInterface',
        ],
        resources: [interfaces],
        conditions: { StringEquals: { 'ec2:Vpc': ec2Arn('vpc', vpc.vpcId) } },
      }),
    );
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:Describe* (network interfaces, security groups, subnets, VPCs) support no resource-level permissions; ' +
        'interface creation is scoped to the configured subnets, security groups and VPC.',
    });
    acknowledgeWildcardResource(
      role,
      interfaces,
      'Network interface ids are generated by EC2 when AWS IoT creates them; limited to the configured VPC by the ec2:Vpc condition.',
    );
    return role;
  }
}
