/**
 * Types with no local effect: the lab names them (so Ref / Fn::GetAtt resolve) and counts
 * them in the summary. IAM is not enforced by the lab, except Lambda resource policies for
 * rule actions (see ./lambda.ts). CloudWatch alarms never fire, networking (EC2) is not built,
 * secrets are not stored, keys do not encrypt. A type written `AWS::Service::*` covers the
 * service's types that have no handler of their own.
 */
import { createHash } from 'node:crypto';
import { arn, type NamingContext, type ResourceHandler } from './types';

const ack = (
  types: string[],
  extra: Partial<Pick<ResourceHandler, 'nameProperty' | 'maxNameLength' | 'ref' | 'attributes'>> = {},
): ResourceHandler => ({
  types,
  phase: 90,
  ...extra,
  create: () => ({ status: 'acknowledged' }),
});

const keyId = (name: string): string => {
  const hex = Buffer.from(name).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
};

const hex = (name: string, n: number): string => createHash('sha256').update(name).digest('hex').slice(0, n);

/** EC2 resource id prefixes by type (what Ref returns). */
const EC2_PREFIX: Record<string, string> = {
  'AWS::EC2::VPC': 'vpc',
  'AWS::EC2::Subnet': 'subnet',
  'AWS::EC2::SecurityGroup': 'sg',
  'AWS::EC2::RouteTable': 'rtb',
  'AWS::EC2::InternetGateway': 'igw',
  'AWS::EC2::NatGateway': 'nat',
  'AWS::EC2::VPCEndpoint': 'vpce',
  'AWS::EC2::NetworkAcl': 'acl',
  'AWS::EC2::NetworkInterface': 'eni',
  'AWS::EC2::EIP': 'eipalloc',
  'AWS::EC2::Instance': 'i',
  'AWS::EC2::FlowLog': 'fl',
};

const ec2Id = (name: string, c: NamingContext): string =>
  `${EC2_PREFIX[c.type ?? ''] ?? 'ec2'}-${hex(name, 17)}`;

/** A Secrets Manager secret ARN: the name and six random characters. */
const secretArn = (name: string, c: NamingContext): string =>
  arn('secretsmanager', c, `secret:${name}-${hex(name, 6)}`);

export const acknowledgedHandlers: ResourceHandler[] = [
  ack(['AWS::IAM::Role'], {
    nameProperty: 'RoleName',
    maxNameLength: 64,
    attributes: (name, c) => ({
      Arn: arn('iam', c, `role/${name}`, { region: false }),
      RoleId: `AROA${name.slice(0, 16).toUpperCase()}`,
    }),
  }),
  ack(['AWS::IAM::Policy']),
  ack(['AWS::IAM::ManagedPolicy'], {
    nameProperty: 'ManagedPolicyName',
    maxNameLength: 128,
    ref: (name: string, c: NamingContext) => arn('iam', c, `policy/${name}`, { region: false }),
    attributes: (name, c) => ({ PolicyArn: arn('iam', c, `policy/${name}`, { region: false }) }),
  }),
  ack(['AWS::Logs::LogGroup'], {
    nameProperty: 'LogGroupName',
    maxNameLength: 512,
    attributes: (name, c) => ({ Arn: arn('logs', c, `log-group:${name}:*`) }),
  }),
  ack(['AWS::KMS::Key'], {
    ref: (name) => keyId(name),
    attributes: (name, c) => ({ Arn: arn('kms', c, `key/${keyId(name)}`), KeyId: keyId(name) }),
  }),
  ack(['AWS::KMS::Alias'], { nameProperty: 'AliasName' }),
  ack(['AWS::SQS::QueuePolicy']),
  ack(['AWS::CDK::Metadata']),
  ack(['AWS::S3::BucketPolicy']),
  // autoDeleteObjects: the lab's buckets are wiped at every start.
  ack(['Custom::S3AutoDeleteObjects']),
  ack(['AWS::CloudWatch::Alarm', 'AWS::CloudWatch::CompositeAlarm'], {
    nameProperty: 'AlarmName',
    maxNameLength: 255,
    attributes: (name, c) => ({ Arn: arn('cloudwatch', c, `alarm:${name}`) }),
  }),
  ack(['AWS::CloudWatch::Dashboard'], { nameProperty: 'DashboardName', maxNameLength: 255 }),
  ack(['AWS::CloudWatch::*'], { attributes: (name, c) => ({ Arn: arn('cloudwatch', c, name) }) }),
  ack(['AWS::Logs::*'], { attributes: (name, c) => ({ Arn: arn('logs', c, name) }) }),
  ack(['AWS::KMS::*'], { attributes: (name, c) => ({ Arn: arn('kms', c, `key/${keyId(name)}`) }) }),
  ack(['AWS::SecretsManager::Secret'], {
    nameProperty: 'Name',
    maxNameLength: 512,
    ref: (name, c) => secretArn(name, c),
    attributes: (name, c) => ({ Id: secretArn(name, c) }),
  }),
  ack(['AWS::SecretsManager::*'], { ref: (name, c) => secretArn(name, c) }),
  ack(['AWS::EC2::*'], {
    ref: (name, c) => ec2Id(name, c),
    attributes: (name, c, _p, resolved) => {
      const id = ec2Id(name, c);
      const vpcId = (): string => {
        const v = resolved('VpcId');
        return typeof v === 'string' ? v : '';
      };
      return {
        VpcId: c.type === 'AWS::EC2::VPC' ? id : vpcId(),
        SubnetId: id,
        GroupId: id,
        RouteTableId: id,
        AllocationId: id,
        Id: id,
        DefaultSecurityGroup: `sg-${hex(`${name}/default`, 17)}`,
        DefaultNetworkAcl: `acl-${hex(`${name}/default`, 17)}`,
        CidrBlock: String(resolved('CidrBlock') ?? ''),
        AvailabilityZone: String(resolved('AvailabilityZone') ?? `${c.region}a`),
      };
    },
  }),
  ack(['AWS::Timestream::*'], { attributes: (name, c) => ({ Arn: arn('timestream', c, name) }) }),
];
