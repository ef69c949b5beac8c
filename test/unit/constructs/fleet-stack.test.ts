import { App, Stack } from 'aws-cdk-lib';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import { resolveFleetConfig } from '../../../lib/config';
import { FleetProvisioning } from '../../../lib/provisioning/fleet-provisioning';
import { RegistryTables } from '../../../lib/traceability/registry-tables';
import { PRESENCE_SQL } from '../../../lib/provisioning/activation-gate';
import { asArray, CfnResourceJson, flat, one, PolicyStatement, resourcesOf, synthFleet } from './helpers';

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
        /^arn:aws:iot:eu-west-1:111122223333:thinggroup\/fleet-(ring-(canary|early|broad)|quarantine|lot-\*)$/,
        /^arn:aws:iot:eu-west-1:111122223333:thingtype\/fleet-device$/,
        /^<ProvisioningDevicePolicy[0-9A-F]+\.Arn>$/,
      ];
      for (const s of statements) {
        for (const r of asArray(s.Resource).map((x) => flat(x))) {
          expect(allowed.some((re) => re.test(r))).toBe(true);
        }
      }
    });

    test.each([
      ['iot:CreateThing', 'thing/fleet-*'],
      ['iot:UpdateThing', 'thing/fleet-*'],
      ['iot:AttachThingPrincipal', 'thing/fleet-*'],
      ['iot:AddThingToThingGroup', 'thinggroup/fleet-ring-canary'],
      ['iot:AddThingToThingGroup', 'thinggroup/fleet-lot-*'],
      ['iot:RemoveThingFromThingGroup', 'thinggroup/fleet-quarantine'],
      ['iot:UpdateCertificate', 'cert/*'],
      ['iot:DescribeCertificate', 'cert/*'],
      ['iot:DescribeThingType', 'thingtype/fleet-device'],
    ])('allows %s on %s', (action, name) => {
      const arn = `arn:aws:iot:eu-west-1:111122223333:${name}`;
      expect(
        statements.some(
          (s) =>
            asArray(s.Action).includes(action) &&
            asArray(s.Resource)
              .map((x) => flat(x))
              .includes(arn),
        ),
      ).toBe(true);
    });

    test('may attach the device policy', () => {
      expect(
        statements.some(
          (s) =>
            asArray(s.Action).includes('iot:AttachPolicy') &&
            asArray(s.Resource).some((r) => /^<ProvisioningDevicePolicy.*\.Arn>$/.test(flat(r))),
        ),
      ).toBe(true);
    });
  });

  describe('activation gate', () => {
    const [ruleId, rule] = one(template, 'AWS::IoT::TopicRule');
    const [presenceId, presence] = one(template, 'AWS::Lambda::Function', 'Presence');
    const [queueId, queue] = one(template, 'AWS::SQS::Queue');

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
      const [, qp] = one(template, 'AWS::SQS::QueuePolicy');
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

    test('the only wildcard-resource statements are the X-Ray tracing ones', () => {
      for (const s of statements.filter((x) => asArray(x.Resource).includes('*'))) {
        expect(asArray(s.Action).sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
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
      const perms = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission');
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
        serialPattern: base.serialPattern,
      });
    };
    test('no template', () => {
      expect(make([])).toThrow(/at least one template: set provisioning.templates/);
    });
    test('duplicate template names', () => {
      const [t] = base.provisioning.templates;
      expect(make([t, t])).toThrow(/names must be unique: rename the duplicates/);
    });
  });
});
