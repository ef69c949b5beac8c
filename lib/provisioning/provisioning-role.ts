import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { thingNameFor } from '../../core/model';
import { acknowledgeWildcardResource } from '../common/nag';
import type { DevicePolicy } from './device-policy';
import { iotArn } from './iot-arns';

export interface ProvisioningRoleProps {
  /**
   * Things are named `<thingNamePrefix>-<serial>`, and thing groups and thing types start with
   * `<thingNamePrefix>-`; the role may only create and change those.
   */
  readonly thingNamePrefix: string;
  /** The device policy the templates attach. */
  readonly devicePolicy: DevicePolicy;
}

/**
 * Actions of the AWS managed policy `AWSIoTThingsRegistration` (policy version v3) that
 * RegisterThing can use for this stack's template bodies, grouped by the resource they act on.
 * Left out on purpose, because our template bodies never ask for them: CreatePolicy (the
 * template attaches an existing policy by name), RegisterCertificate and
 * CreateCertificateFromCsr (the template references a certificate AWS IoT already created),
 * RegisterThing (the device calls it over MQTT, authorized by the claim policy), the Detach*
 * actions (RegisterThing never detaches), and the billing-group actions (no billing group).
 */
export const REGISTRATION_ACTIONS = {
  /** On things named `<prefix>-*`. ThingGroups REPLACE lists and changes the thing's current groups. */
  thing: [
    'iot:CreateThing',
    'iot:DescribeThing',
    'iot:UpdateThing',
    'iot:ListThingPrincipals',
    'iot:AttachThingPrincipal',
    'iot:ListThingGroupsForThing',
    'iot:AddThingToThingGroup',
    'iot:RemoveThingFromThingGroup',
    'iot:UpdateThingGroupsForThing',
  ],
  /** On the new certificate (its id is generated at enrollment). */
  certificate: [
    'iot:DescribeCertificate',
    'iot:UpdateCertificate',
    'iot:AttachThingPrincipal',
    'iot:AttachPolicy',
    'iot:AttachPrincipalPolicy',
    'iot:ListAttachedPolicies',
    'iot:ListPrincipalPolicies',
    'iot:ListPrincipalThings',
  ],
  /** On the device policy. */
  policy: [
    'iot:AttachPolicy',
    'iot:AttachPrincipalPolicy',
    'iot:GetPolicy',
    'iot:ListTargetsForPolicy',
    'iot:ListPolicyPrincipals',
  ],
  /** On thing groups named `<prefix>-*`: the ring and lot groups it joins and the ones it leaves. */
  thingGroup: [
    'iot:DescribeThingGroup',
    'iot:AddThingToThingGroup',
    'iot:RemoveThingFromThingGroup',
    'iot:UpdateThingGroupsForThing',
  ],
  /** On thing types named `<prefix>-*`: the type it gets and the one a re-enrolled thing had. */
  thingType: ['iot:DescribeThingType'],
} as const;

/**
 * The role AWS IoT assumes to run RegisterThing for the fleet's provisioning templates.
 *
 * AWS documents one policy for this role, the managed `AWSIoTThingsRegistration` (every
 * registry action it lists, on every resource). This role holds the subset of its actions a
 * fleet provisioning template can use ({@link REGISTRATION_ACTIONS}), scoped to this stack's
 * resources: things, thing groups and thing types named `<thingNamePrefix>-*`, any certificate
 * (ids are generated at enrollment) and the device policy. The trust policy is scoped to this
 * account's AWS IoT (confused deputy).
 *
 * Fallback: if RegisterThing is ever refused for a reason this role does not cover (for example a
 * re-enrolled thing that an operator put into a group outside `<prefix>-*`, which
 * `ThingGroups: REPLACE` must leave), attach `service-role/AWSIoTThingsRegistration` to the role
 * (see the README deploy guide).
 */
export class ProvisioningRole extends Construct {
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ProvisioningRoleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      description: 'Assumed by AWS IoT to run RegisterThing for the fleet provisioning templates',
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': stack.formatArn({
              service: 'iot',
              resource: '*',
              arnFormat: ArnFormat.NO_RESOURCE_NAME,
            }),
          },
        },
      }),
    });

    const prefixed = `${props.thingNamePrefix}-*`;
    const thingPattern = iotArn(this, 'thing', thingNameFor(props.thingNamePrefix, '*'));
    const certPattern = iotArn(this, 'cert', '*');
    const groupPattern = iotArn(this, 'thinggroup', prefixed);
    const typePattern = iotArn(this, 'thingtype', prefixed);
    const grant = (actions: readonly string[], resourceArns: string[]) =>
      iam.Grant.addToPrincipal({ grantee: this.role, actions: [...actions], resourceArns });
    grant(REGISTRATION_ACTIONS.thing, [thingPattern]);
    grant(REGISTRATION_ACTIONS.certificate, [certPattern]);
    grant(REGISTRATION_ACTIONS.policy, [props.devicePolicy.policyArn]);
    grant(REGISTRATION_ACTIONS.thingGroup, [groupPattern]);
    grant(REGISTRATION_ACTIONS.thingType, [typePattern]);

    acknowledgeWildcardResource(
      this.role,
      thingPattern,
      'RegisterThing creates things whose names are only known at enrollment; scoped to the fleet thing-name prefix.',
    );
    acknowledgeWildcardResource(
      this.role,
      certPattern,
      'The certificate id is generated by AWS IoT at enrollment; certificate actions cannot be scoped further in advance.',
    );
    acknowledgeWildcardResource(
      this.role,
      groupPattern,
      'ThingGroups REPLACE moves a thing between ring and lot groups, including groups created per lot after deploy; scoped to the fleet prefix.',
    );
    acknowledgeWildcardResource(
      this.role,
      typePattern,
      'A re-enrolled thing may carry a thing type of an earlier configuration; scoped to the fleet prefix, read-only.',
    );
  }
}
