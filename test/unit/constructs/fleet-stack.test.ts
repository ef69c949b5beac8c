import { App, Stack } from 'aws-cdk-lib';
import { ENV } from '../../../core/env';
import { DEFAULT_SERIAL_PATTERN } from '../../../core/model';
import { parseRingShares } from '../../../core/rings';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import { FleetConfigError, resolveFleetConfig } from '../../../lib/config';
import { FleetStack } from '../../../lib/fleet-stack';
import { FleetProvisioning, THING_TYPE_DESCRIPTION } from '../../../lib/provisioning/fleet-provisioning';
import { REGISTRATION_ACTIONS } from '../../../lib/provisioning/provisioning-role';
import { RegistryTables } from '../../../lib/traceability/registry-tables';
import { PRESENCE_SQL } from '../../../lib/provisioning/activation-gate';
import {
  asArray,
  CfnResourceJson,
  flat,
  iotResourceMatches,
  one,
  PolicyStatement,
  resourcesOf,
  synthFleet,
} from './helpers';

const { template } = synthFleet();
const resources = template.toJSON().Resources as Record<string, CfnResourceJson>;

function statementsOf(type: 'AWS::IAM::Policy'): PolicyStatement[] {
  return Object.values(resourcesOf(template, type)).flatMap(
    (p) => (p.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement,
  );
}

describe('fleet stack', () => {
  test('emits every output named in stack-outputs.ts', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.keys(outputs).sort()).toEqual(Object.values(STACK_OUTPUTS).sort());
    expect(outputs.TopicPrefix.Value).toBe('fleet');
    expect(outputs.ThingNamePrefix.Value).toBe('fleet');
    expect(outputs.SerialPattern.Value).toBe(DEFAULT_SERIAL_PATTERN);
    expect(outputs.RingShares.Value).toBe('2:18');
    const [claimId] = one(template, 'AWS::IoT::Policy', 'ClaimPolicy');
    const templates = JSON.parse(
      flat(outputs.ProvisioningTemplates.Value, { [claimId]: 'claim-policy-name' }),
    );
    expect(templates).toEqual([
      {
        templateName: 'fleet-default',
        claimPolicyName: 'claim-policy-name',
        thingTypeName: 'fleet-device',
        claimClientIdPrefix: 'prov-',
      },
    ]);
  });

  test('SerialPattern and RingShares outputs carry the configured values, in the form the hook reads', () => {
    const custom = synthFleet({
      serialPattern: '^SN[0-9]{6}$',
      rings: { canaryPercent: 5, earlyPercent: 25.5 },
    });
    const outputs = custom.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.SerialPattern.Value).toBe('^SN[0-9]{6}$');
    expect(parseRingShares(outputs.RingShares.Value as string)).toEqual({
      canaryPercent: 5,
      earlyPercent: 25.5,
    });
    const [, hook] = one(custom.template, 'AWS::Lambda::Function', 'Template0Hook');
    expect(hook.Properties.Environment.Variables[ENV.ringShares]).toBe(outputs.RingShares.Value);
    expect(hook.Properties.Environment.Variables[ENV.serialPattern]).toBe(outputs.SerialPattern.Value);
  });

  test('the thing type description does not depend on template names (properties change only by replacement)', () => {
    const descriptionsOf = (templates: { name: string }[]) =>
      Object.values(
        resourcesOf(synthFleet({ provisioning: { templates } }).template, 'AWS::IoT::ThingType'),
      ).map((t) => t.Properties.ThingTypeProperties.ThingTypeDescription);
    expect(descriptionsOf([{ name: 'fleet-one' }])).toEqual([THING_TYPE_DESCRIPTION]);
    expect(descriptionsOf([{ name: 'fleet-two' }, { name: 'fleet-three' }])).toEqual([
      THING_TYPE_DESCRIPTION,
    ]);
  });

  test('thing type and ring/quarantine groups', () => {
    const [, type] = one(template, 'AWS::IoT::ThingType');
    expect(type.Properties.ThingTypeName).toBe('fleet-device');
    const groups = Object.values(resourcesOf(template, 'AWS::IoT::ThingGroup')).map(
      (g) => g.Properties.ThingGroupName,
    );
    expect(groups.sort()).toEqual([
      'fleet-quarantine',
      'fleet-ring-broad',
      'fleet-ring-canary',
      'fleet-ring-early',
    ]);
  });

  describe('provisioning role', () => {
    const [roleId, role] = one(template, 'AWS::IAM::Role', 'ProvisioningRole');
    const [, policy] = one(template, 'AWS::IAM::Policy', 'ProvisioningRoleDefaultPolicy');
    const statements = (policy.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement;

    test('trusts AWS IoT of this account only (confused deputy)', () => {
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Condition: {
            StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
            ArnLike: { 'aws:SourceArn': expect.anything() },
          },
        },
      ]);
      expect(
        flat(role.Properties.AssumeRolePolicyDocument.Statement[0].Condition.ArnLike['aws:SourceArn']),
      ).toBe('arn:aws:iot:eu-west-1:111122223333:*');
    });

    test('has no managed policies and no wildcard actions', () => {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      for (const s of statements) for (const a of asArray(s.Action)) expect(a).not.toContain('*');
      expect(policy.Properties.Roles).toEqual([{ Ref: roleId }]);
    });

    test('every resource is a scoped IoT ARN', () => {
      const allowed = [
        /^arn:aws:iot:eu-west-1:111122223333:thing\/fleet-\*$/,
        /^arn:aws:iot:eu-west-1:111122223333:cert\/\*$/,
        /^arn:aws:iot:eu-west-1:111122223333:thinggroup\/fleet-\*$/,
        /^arn:aws:iot:eu-west-1:111122223333:thingtype\/fleet-\*$/,
        /^<ProvisioningDevicePolicy[0-9A-F]+\.Arn>$/,
      ];
      for (const s of statements) {
        for (const r of asArray(s.Resource).map((x) => flat(x))) {
          expect(allowed.some((re) => re.test(r))).toBe(true);
        }
      }
    });

    const allows = (action: string, arn: string) =>
      statements.some(
        (s) =>
          asArray(s.Action).includes(action) &&
          asArray(s.Resource).some((r) => iotResourceMatches(flat(r), arn)),
      );

    test.each([
      ['iot:CreateThing', 'thing/fleet-*'],
      ['iot:ListThingGroupsForThing', 'thing/fleet-*'],
      ['iot:UpdateThingGroupsForThing', 'thing/fleet-*'],
      ['iot:AttachPrincipalPolicy', 'cert/*'],
      ['iot:AttachPolicy', 'cert/*'],
      ['iot:ListPrincipalThings', 'cert/*'],
      ['iot:UpdateThing', 'thing/fleet-*'],
      ['iot:AttachThingPrincipal', 'thing/fleet-*'],
      ['iot:AddThingToThingGroup', 'thinggroup/fleet-ring-canary'],
      ['iot:AddThingToThingGroup', 'thinggroup/fleet-lot-LOT-0001'],
      ['iot:RemoveThingFromThingGroup', 'thinggroup/fleet-quarantine'],
      ['iot:UpdateThingGroupsForThing', 'thinggroup/fleet-ring-broad'],
      ['iot:DescribeThingGroup', 'thinggroup/fleet-lot-LOT-0001'],
      ['iot:UpdateCertificate', 'cert/abc123'],
      ['iot:DescribeCertificate', 'cert/abc123'],
      ['iot:DescribeThingType', 'thingtype/fleet-device'],
      ['iot:DescribeThingType', 'thingtype/fleet-sensor'],
    ])('allows %s on %s', (action, name) => {
      expect(allows(action, `arn:aws:iot:eu-west-1:111122223333:${name}`)).toBe(true);
    });

    test.each([
      ['iot:CreateThing', 'thing/other-SN0001'],
      ['iot:RemoveThingFromThingGroup', 'thinggroup/other-ring-canary'],
      ['iot:DescribeThingType', 'thingtype/other-device'],
      ['iot:AttachPolicy', 'policy/some-other-policy'],
    ])('denies %s on %s (outside this stack)', (action, name) => {
      expect(allows(action, `arn:aws:iot:eu-west-1:111122223333:${name}`)).toBe(false);
    });

    test.each(REGISTRATION_ACTIONS.policy)('may %s the device policy', (action) => {
      expect(
        statements.some(
          (s) =>
            asArray(s.Action).includes(action) &&
            asArray(s.Resource).some((r) => /^<ProvisioningDevicePolicy.*\.Arn>$/.test(flat(r))),
        ),
      ).toBe(true);
    });

    test('holds every action of AWSIoTThingsRegistration a template can use, and nothing outside it', () => {
      // AWSIoTThingsRegistration v3, as documented in the AWS managed policy reference.
      const managed = [
        'iot:AddThingToThingGroup',
        'iot:AttachPolicy',
        'iot:AttachPrincipalPolicy',
        'iot:AttachThingPrincipal',
        'iot:CreateCertificateFromCsr',
        'iot:CreatePolicy',
        'iot:CreateThing',
        'iot:DescribeCertificate',
        'iot:DescribeThing',
        'iot:DescribeThingGroup',
        'iot:DescribeThingType',
        'iot:DetachPolicy',
        'iot:DetachThingPrincipal',
        'iot:GetPolicy',
        'iot:ListAttachedPolicies',
        'iot:ListPolicyPrincipals',
        'iot:ListPrincipalPolicies',
        'iot:ListPrincipalThings',
        'iot:ListTargetsForPolicy',
        'iot:ListThingGroupsForThing',
        'iot:ListThingPrincipals',
        'iot:RegisterCertificate',
        'iot:RegisterThing',
        'iot:RemoveThingFromThingGroup',
        'iot:UpdateCertificate',
        'iot:UpdateThing',
        'iot:UpdateThingGroupsForThing',
        'iot:AddThingToBillingGroup',
        'iot:DescribeBillingGroup',
        'iot:RemoveThingFromBillingGroup',
      ];
      // Not used by our template bodies (see REGISTRATION_ACTIONS): policies are attached by name,
      // certificates referenced by id, nothing is detached, no billing group.
      const unused = [
        'iot:CreateCertificateFromCsr',
        'iot:CreatePolicy',
        'iot:DetachPolicy',
        'iot:DetachThingPrincipal',
        'iot:RegisterCertificate',
        'iot:RegisterThing',
        'iot:AddThingToBillingGroup',
        'iot:DescribeBillingGroup',
        'iot:RemoveThingFromBillingGroup',
      ];
      const granted = new Set(statements.flatMap((s) => asArray(s.Action)));
      expect([...granted].sort()).toEqual(managed.filter((a) => !unused.includes(a)).sort());
    });
  });

  describe('activation gate', () => {
    const [ruleId, rule] = one(template, 'AWS::IoT::TopicRule', 'PresenceRule');
    const [presenceId, presence] = one(template, 'AWS::Lambda::Function', 'Presence');
    const [queueId, queue] = one(template, 'AWS::SQS::Queue', 'ActivationGate');

    test('rule selects connected and disconnected presence events and invokes the presence function', () => {
      expect(rule.Properties.TopicRulePayload).toMatchObject({
        Sql: PRESENCE_SQL,
        AwsIotSqlVersion: '2016-03-23',
        RuleDisabled: false,
        Actions: [{ Lambda: { FunctionArn: { 'Fn::GetAtt': [presenceId, 'Arn'] } } }],
      });
      expect(PRESENCE_SQL).toBe("SELECT * FROM '$aws/events/presence/+/+'");
    });

    test('every topic rule has an error action to the dead-letter queue', () => {
      for (const r of Object.values(resourcesOf(template, 'AWS::IoT::TopicRule'))) {
        expect((r.Properties.TopicRulePayload as Record<string, unknown>).ErrorAction).toBeDefined();
      }
      const err = rule.Properties.TopicRulePayload.ErrorAction.Sqs;
      expect(err.QueueUrl).toEqual({ Ref: queueId });
      expect(err.RoleArn['Fn::GetAtt'][0]).toMatch(/RuleErrorActionRole/);
    });

    test('the dead-letter queue is encrypted and refuses non-TLS access', () => {
      expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
      const [, qp] = one(template, 'AWS::SQS::QueuePolicy', 'ActivationGate');
      expect(qp.Properties.PolicyDocument.Statement).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      );
      expect(presence.Properties.DeadLetterConfig).toEqual({ TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] } });
    });

    test('the presence permission is scoped by the rule ARN and the account', () => {
      const [, perm] = one(template, 'AWS::Lambda::Permission', 'PresenceInvokePermission');
      expect(perm.Properties).toEqual({
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': [presenceId, 'Arn'] },
        Principal: 'iot.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
        SourceAccount: { Ref: 'AWS::AccountId' },
      });
    });

    test('the presence function gets its environment contract', () => {
      expect(presence.Properties.Environment.Variables).toMatchObject({
        FLEET_DEVICES_TABLE: { Ref: 'RegistryDevicesTable' },
        FLEET_EVENTS_TABLE: { Ref: 'RegistryEventsTable' },
        FLEET_THING_PREFIX: 'fleet',
      });
    });
  });

  describe('IAM hygiene across the stack', () => {
    const statements = statementsOf('AWS::IAM::Policy');

    test('no wildcard actions anywhere', () => {
      for (const s of statements) for (const a of asArray(s.Action)) expect(a).not.toMatch(/\*/);
    });

    test('the only wildcard-resource statements are X-Ray tracing and the account-wide IoT event configuration', () => {
      // AWS IoT's event configuration is one per account: its actions take no resource ARN.
      const allowed = [
        ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
        ['iot:DescribeEventConfigurations', 'iot:UpdateEventConfigurations'],
      ].map((a) => JSON.stringify(a));
      for (const s of statements.filter((x) => asArray(x.Resource).includes('*'))) {
        expect(allowed).toContain(JSON.stringify(asArray(s.Action).sort()));
      }
    });

    test('nothing may update or delete items of the event trail', () => {
      for (const s of statements) {
        const touchesEvents = asArray(s.Resource).some((r) => flat(r).includes('RegistryEventsTable'));
        if (!touchesEvents) continue;
        for (const a of asArray(s.Action)) {
          expect([
            'dynamodb:UpdateItem',
            'dynamodb:DeleteItem',
            'dynamodb:BatchWriteItem',
            'dynamodb:*',
          ]).not.toContain(a);
        }
      }
    });

    test('every Lambda permission for AWS IoT is scoped by source account', () => {
      const all = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission');
      // The rollout controller's schedule (EventBridge) is the one other invoker, scoped by its rule.
      const others = all.filter((r) => r.Properties.Principal !== 'iot.amazonaws.com');
      for (const p of others) {
        expect(p.Properties.Principal).toBe('events.amazonaws.com');
        expect(p.Properties.SourceArn).toBeDefined();
      }
      const perms = all.filter((r) => r.Properties.Principal === 'iot.amazonaws.com');
      expect(perms.length).toBeGreaterThanOrEqual(2);
      for (const p of perms) {
        expect(p.Properties.Principal).toBe('iot.amazonaws.com');
        expect(p.Properties.SourceAccount).toEqual({ Ref: 'AWS::AccountId' });
      }
    });
  });

  describe('FleetProvisioning props that do not fit fail synth with the fix', () => {
    const base = resolveFleetConfig({});
    const make = (templates: typeof base.provisioning.templates) => () => {
      const stack = new Stack(new App(), 'Bad');
      new FleetProvisioning(stack, 'P', {
        templates,
        registry: new RegistryTables(stack, 'R'),
        thingNamePrefix: base.thingNamePrefix,
        topicPrefix: base.topicPrefix,
        serialPattern: base.serialPattern,
        ringShares: base.rings,
        unlistedSerialRetentionDays: base.trail.unlistedSerialRetentionDays,
      });
    };
    test('a template or thing type outside the thing-name prefix', () => {
      const [t] = base.provisioning.templates;
      expect(make([{ ...t, name: 'other' }])).toThrow(
        /template name "other" must start with the thing-name prefix "fleet-": rename it/,
      );
      expect(make([{ ...t, thingTypeName: 'other' }])).toThrow(
        /thing type name "other" must start with the thing-name prefix "fleet-": rename it/,
      );
    });
    test('no template', () => {
      expect(make([])).toThrow(/at least one template: set provisioning.templates/);
    });
    test('duplicate template names', () => {
      const [t] = base.provisioning.templates;
      expect(make([t, t])).toThrow(/names must be unique: rename the duplicates/);
    });
  });

  describe('two fleet stacks of one app in the same environment', () => {
    const app = () => new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const fleet = (
      a: App,
      id: string,
      input: Record<string, unknown>,
      env?: { account: string; region: string },
    ) => new FleetStack(a, id, { config: resolveFleetConfig(input), env });
    const account = '111122223333';

    test('fail synth naming the colliding names and the fix when they share the thing-name prefix', () => {
      const a = app();
      fleet(a, 'Dev', { stage: 'dev' });
      let error: unknown;
      try {
        fleet(a, 'Prod', { stage: 'prod' });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(FleetConfigError);
      const message = (error as Error).message;
      expect(message).toContain(
        'stacks Dev and Prod (both environment-agnostic) would claim the same AWS IoT names',
      );
      for (const name of [
        'topic rule fleet_telemetry',
        'topic rule fleet_health',
        'provisioning template fleet-default',
        'thing type fleet-device',
        'thing group fleet-ring-canary',
        'thing group fleet-quarantine',
      ])
        expect(message).toContain(name);
      expect(message).toContain('give each stack its own thingNamePrefix');
    });

    test('fail when one prefix followed by "-" starts the other (their thing names overlap)', () => {
      const a = app();
      fleet(a, 'One', { thingNamePrefix: 'acme' });
      expect(() => fleet(a, 'Two', { thingNamePrefix: 'acme-eu' })).toThrow(
        /things "acme-\*" and "acme-eu-\*" overlap/,
      );
    });

    test('fail in the same concrete account and region', () => {
      const a = app();
      fleet(a, 'Dev', {}, { account, region: 'eu-west-1' });
      expect(() => fleet(a, 'Prod', { stage: 'prod' }, { account, region: 'eu-west-1' })).toThrow(
        /in 111122223333\/eu-west-1/,
      );
    });

    test('fail when the topic rule names meet though the prefixes do not overlap', () => {
      const a = app();
      fleet(a, 'Eu', { thingNamePrefix: 'acme-eu' });
      expect(() => fleet(a, 'Eu2', { thingNamePrefix: 'acme_eu' })).toThrow(
        /would claim the same AWS IoT names \(topic rule acme_eu_telemetry, topic rule acme_eu_health\); give each stack its own telemetry.ruleNames/,
      );
      const b = app();
      fleet(b, 'One', { thingNamePrefix: 'one', telemetry: { ruleNames: { telemetry: 'shared_data' } } });
      expect(() =>
        fleet(b, 'Two', { thingNamePrefix: 'two', telemetry: { ruleNames: { telemetry: 'shared_data' } } }),
      ).toThrow(/\(topic rule shared_data\); give each stack its own telemetry.ruleNames/);
    });

    test('pass with different prefixes, or in different regions', () => {
      const a = app();
      fleet(a, 'Dev', { thingNamePrefix: 'fleetdev' });
      expect(() => fleet(a, 'Prod', { thingNamePrefix: 'fleetprod', stage: 'prod' })).not.toThrow();
      const b = app();
      fleet(b, 'Eu', {}, { account, region: 'eu-west-1' });
      expect(() => fleet(b, 'Us', {}, { account, region: 'us-east-1' })).not.toThrow();
    });
  });
});
