/**
 * Types with no local effect: the lab names them (so Ref / Fn::GetAtt resolve) and counts
 * them in the summary. IAM is not enforced by the lab, except Lambda resource policies for
 * rule actions (see ./lambda.ts).
 */
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
];
