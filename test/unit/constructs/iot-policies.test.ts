import { provisioningTopics } from '../../../lib/provisioning/claim-policy';
import { DEVICE_CONNECT_ATTRIBUTES } from '../../../lib/provisioning/device-policy';
import { App, Stack } from 'aws-cdk-lib';
import { FleetConfigError } from '../../../lib/config';
import { DevicePolicy } from '../../../lib/provisioning/device-policy';
import {
  iotPolicyLength,
  MAX_IOT_POLICY_LENGTH,
  worstCasePseudoParameters,
} from '../../../lib/provisioning/policy-size';
import { asArray, flat, iotAllows, iotArnOf, one, PolicyStatement, synthFleet } from './helpers';

const VAR = '${iot:Connection.Thing.ThingName}';
// The default telemetry rule names (fleet_telemetry, fleet_health) are the Basic Ingest rules.
const { template } = synthFleet({ topicPrefix: 'fleet' });
const [, policy] = one(template, 'AWS::IoT::Policy', 'DevicePolicy');
const statements = (policy.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement;

describe('device policy', () => {
  test('is a generated-name IoT policy (no fixed PolicyName)', () => {
    expect(policy.Properties.PolicyName).toBeUndefined();
  });

  test('only allows connect, publish, subscribe and receive', () => {
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const a of asArray(s.Action))
        expect(['iot:Connect', 'iot:Publish', 'iot:Subscribe', 'iot:Receive']).toContain(a);
    }
  });

  test('connect: client id must be the thing name and the certificate attached to that thing', () => {
    const connect = statements.filter((s) => asArray(s.Action).includes('iot:Connect'));
    expect(connect).toHaveLength(1);
    const [s] = connect;
    expect(asArray(s.Resource).map((r) => flat(r))).toEqual([iotArnOf('client', VAR)]);
    expect(s.Condition?.Bool).toEqual({ 'iot:Connection.Thing.IsAttached': 'true' });
    expect(s.Condition?.['ForAllValues:StringEquals']).toEqual({
      'iot:ConnectAttributes': [...DEVICE_CONNECT_ATTRIBUTES],
    });
    expect(DEVICE_CONNECT_ATTRIBUTES).toEqual(expect.arrayContaining(['LastWill', 'PersistentConnect']));
  });

  test('the policy variable is kept literally (no Fn::Sub anywhere)', () => {
    expect(JSON.stringify(policy)).not.toContain('Fn::Sub');
    expect(JSON.stringify(policy)).toContain(VAR);
  });

  test('every topic and topicfilter resource is scoped to the connected thing', () => {
    for (const s of statements) {
      for (const r of asArray(s.Resource).map((x) => flat(x))) {
        const [, rest] = r.split(`:${'111122223333'}:`);
        const [type] = rest.split('/');
        expect(['client', 'topic', 'topicfilter']).toContain(type);
        const idx = r.indexOf(VAR);
        expect(idx).toBeGreaterThan(0);
        // no wildcard before the thing name, and the thing name is a whole topic level
        expect(r.slice(0, idx)).not.toMatch(/[*?+#]/);
        const after = r.slice(idx + VAR.length);
        expect(after === '' || after.startsWith('/')).toBe(true);
        if (type === 'topicfilter') expect(asArray(s.Action)).toEqual(['iot:Subscribe']);
      }
    }
  });

  const me = 'fleet-SN0001';
  const other = 'fleet-SN0002';
  const prefixTwin = 'fleet-SN00011';
  const own = [
    ['iot:Publish', 'topic', `dt/fleet/${me}/telemetry`],
    ['iot:Publish', 'topic', `dt/fleet/${me}/health`],
    ['iot:Publish', 'topic', `$aws/rules/fleet_telemetry/dt/fleet/${me}/telemetry`],
    ['iot:Publish', 'topic', `$aws/rules/fleet_health/dt/fleet/${me}/health`],
    ['iot:Publish', 'topic', `cmd/fleet/${me}/diag/response`],
    ['iot:Publish', 'topic', `$aws/things/${me}/jobs/get`],
    ['iot:Publish', 'topic', `$aws/things/${me}/shadow/update`],
    ['iot:Subscribe', 'topicfilter', `cmd/fleet/${me}/#`],
    ['iot:Subscribe', 'topicfilter', `$aws/things/${me}/jobs/notify-next`],
    ['iot:Subscribe', 'topicfilter', `$aws/things/${me}/shadow/update/accepted`],
    ['iot:Receive', 'topic', `cmd/fleet/${me}/diag/request`],
    ['iot:Receive', 'topic', `$aws/things/${me}/jobs/notify-next`],
    ['iot:Receive', 'topic', `$aws/things/${me}/shadow/update/delta`],
    ['iot:Connect', 'client', me],
  ] as const;

  test.each(own)('allows own %s on %s/%s', (action, type, name) => {
    expect(iotAllows(statements, action, iotArnOf(type, name), me)).toBe(true);
  });

  const foreign = [
    ...own.map(([a, t, n]) => [a, t, n.replace(me, other)] as const),
    ...own.map(([a, t, n]) => [a, t, n.replace(me, prefixTwin)] as const),
    ['iot:Publish', 'topic', `$aws/rules/some_other_rule/dt/fleet/${me}/telemetry`],
    ['iot:Publish', 'topic', `dt/other/${me}/telemetry`],
    ['iot:Subscribe', 'topicfilter', `dt/fleet/${me}/#`],
    ['iot:Subscribe', 'topicfilter', '#'],
    ['iot:Subscribe', 'topicfilter', `cmd/fleet/+/#`],
    ['iot:Receive', 'topic', `dt/fleet/${other}/telemetry`],
    ['iot:Publish', 'topic', `$aws/events/presence/connected/${me}`],
    ['iot:Publish', 'topic', '$aws/certificates/create/json'],
  ] as const;

  test.each(foreign)('denies %s on %s/%s', (action, type, name) => {
    expect(iotAllows(statements, action, iotArnOf(type, name), me)).toBe(false);
  });
});

describe('device policy size (AWS IoT allows 2048 characters, whitespace excluded)', () => {
  const policyIn = (
    env: { account: string; region: string } | undefined,
    props: ConstructorParameters<typeof DevicePolicy>[2],
  ) => new DevicePolicy(new Stack(new App(), 'S', { env }), 'D', props);
  const defaults = { topicPrefix: 'fleet', basicIngestRuleNames: ['fleet_telemetry', 'fleet_health'] };
  const oversized = {
    topicPrefix: 't'.repeat(32),
    basicIngestRuleNames: ['fleet_telemetry', 'fleet_health', 'fleet_events'],
  };

  test('the worst case is the longest known region with its partition, and a 12-digit account', () => {
    const worst = worstCasePseudoParameters();
    expect(worst['AWS::AccountId']).toMatch(/^\d{12}$/);
    expect(worst['AWS::Region'].length + worst['AWS::Partition'].length).toBeGreaterThanOrEqual(
      'us-gov-west-1'.length + 'aws-us-gov'.length,
    );
  });

  // Measured: 1781 in us-east-1, 1924 in us-gov-west-1, 1937 for the worst known region.
  test('default config: 1781 (us-east-1), 1924 (us-gov-west-1), 1937 worst case, all under the limit', () => {
    const policy = policyIn(undefined, defaults);
    const at = (partition: string, region: string) =>
      iotPolicyLength(policy, policy.document, {
        'AWS::Partition': partition,
        'AWS::Region': region,
        'AWS::AccountId': '111122223333',
      });
    expect(at('aws', 'us-east-1')).toBe(1781);
    expect(at('aws-us-gov', 'us-gov-west-1')).toBe(1924);
    expect(policy.resolvedLength).toBe(1937);
    expect(policy.resolvedLength).toBeLessThanOrEqual(MAX_IOT_POLICY_LENGTH);
  });

  test('whitespace does not count, pseudo parameters do', () => {
    const policy = policyIn(undefined, defaults);
    const short = { 'AWS::Partition': 'aws', 'AWS::Region': 'us-east-1', 'AWS::AccountId': '111122223333' };
    const long = { ...short, 'AWS::Region': 'us-east-10' };
    const spaced = { ...policy.document, Version: ' 2012-10-17 ' };
    expect(iotPolicyLength(policy, spaced, short)).toBe(iotPolicyLength(policy, policy.document, short));
    expect(
      iotPolicyLength(policy, policy.document, long) - iotPolicyLength(policy, policy.document, short),
    ).toBe(13);
  });

  test('a document with an intrinsic other than Fn::Join and pseudo parameters cannot be sized', () => {
    const policy = policyIn(undefined, defaults);
    const withGetAtt = { ...policy.document, Statement: [{ Resource: { 'Fn::GetAtt': ['X', 'Arn'] } }] };
    expect(() => iotPolicyLength(policy, withGetAtt)).toThrow(
      /uses Fn::GetAtt; build its resources from Fn::Join/,
    );
  });

  test('a stack with a concrete region is sized for that region', () => {
    expect(policyIn({ account: '111122223333', region: 'us-east-1' }, defaults).resolvedLength).toBe(1781);
  });

  test('an accepted config that exceeds the limit (32-character topicPrefix, three Basic Ingest rules) fails synth naming size, limit and fix', () => {
    let error: unknown;
    try {
      policyIn(undefined, oversized);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FleetConfigError);
    expect((error as Error).message).toMatch(
      /the device policy would be 2250 characters \(whitespace excluded; partition aws-iso-f, region us-isof-south-1\), over AWS IoT's 2048-character policy limit.*shorten topicPrefix \(now 32 characters.*or shorten telemetry.ruleNames \(now 3 Basic Ingest rules\), or set telemetry.basicIngest to false/,
    );
  });

  test('a 32-character topicPrefix with the default rule names fails synth; without Basic Ingest it fits', () => {
    expect(() => synthFleet({ topicPrefix: 't'.repeat(32) })).toThrow(
      /over AWS IoT's 2048-character policy limit.*now 2 Basic Ingest rules/,
    );
    const { template: direct } = synthFleet({
      topicPrefix: 't'.repeat(32),
      telemetry: { basicIngest: false },
    });
    const [, p] = one(direct, 'AWS::IoT::Policy', 'DevicePolicy');
    expect(JSON.stringify(p.Properties.PolicyDocument)).not.toContain('$aws/rules/');
  });

  test('the same config fails in us-east-1 too (2082)', () => {
    expect(() => policyIn({ account: '111122223333', region: 'us-east-1' }, oversized)).toThrow(
      /would be 2082 characters/,
    );
  });
});

const claimFleet = synthFleet({
  provisioning: {
    templates: [
      { name: 'fleet-sensor-v1', claimClientIdPrefix: 'prov-' },
      { name: 'fleet-gateway', claimClientIdPrefix: 'claim-' },
    ],
  },
});

function claimStatements(hint: string): PolicyStatement[] {
  const [, policy] = one(claimFleet.template, 'AWS::IoT::Policy', `${hint}ClaimPolicy`);
  return (policy.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement;
}

describe('claim policy', () => {
  test('one claim policy per template', () => {
    expect(
      Object.keys(claimFleet.template.findResources('AWS::IoT::Policy')).filter((id) =>
        id.includes('ClaimPolicy'),
      ),
    ).toHaveLength(2);
  });

  test.each([
    ['Template0', 'fleet-sensor-v1', 'prov-'],
    ['Template1', 'fleet-gateway', 'claim-'],
  ])('%s allows nothing but the provisioning topics of %s', (hint, name, prefix) => {
    const statements = claimStatements(hint);
    const allowedTopics = provisioningTopics(name);
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      expect(s.Condition).toBeUndefined();
      const resources = asArray(s.Resource).map((r) => flat(r));
      for (const action of asArray(s.Action)) {
        switch (action) {
          case 'iot:Connect':
            expect(resources).toEqual([iotArnOf('client', `${prefix}*`)]);
            break;
          case 'iot:Publish':
          case 'iot:Receive':
            expect(resources.sort()).toEqual(allowedTopics.map((t) => iotArnOf('topic', t)).sort());
            break;
          case 'iot:Subscribe':
            expect(resources.sort()).toEqual(allowedTopics.map((t) => iotArnOf('topicfilter', t)).sort());
            break;
          default:
            throw new Error(`unexpected action ${action}`);
        }
      }
    }
    const actions = new Set(statements.flatMap((s) => asArray(s.Action)));
    expect([...actions].sort()).toEqual(['iot:Connect', 'iot:Publish', 'iot:Receive', 'iot:Subscribe']);
  });

  test.each([
    ['iot:Publish', 'topic', '$aws/certificates/create/json', true],
    ['iot:Publish', 'topic', '$aws/certificates/create-from-csr/json', true],
    ['iot:Publish', 'topic', '$aws/provisioning-templates/fleet-sensor-v1/provision/json', true],
    [
      'iot:Subscribe',
      'topicfilter',
      '$aws/provisioning-templates/fleet-sensor-v1/provision/json/accepted',
      true,
    ],
    ['iot:Receive', 'topic', '$aws/certificates/create/json/accepted', true],
    ['iot:Connect', 'client', 'prov-1234', true],
    ['iot:Connect', 'client', 'fleet-SN0001', false],
    ['iot:Publish', 'topic', '$aws/provisioning-templates/fleet-gateway/provision/json', false],
    ['iot:Publish', 'topic', 'dt/fleet/fleet-SN0001/telemetry', false],
    ['iot:Subscribe', 'topicfilter', '#', false],
    ['iot:Publish', 'topic', '$aws/things/fleet-SN0001/shadow/update', false],
    ['iot:Publish', 'topic', '$aws/rules/fleet_telemetry/x', false],
  ] as const)('template fleet-sensor-v1: %s %s/%s → %s', (action, type, name, allowed) => {
    expect(iotAllows(claimStatements('Template0'), action, iotArnOf(type, name), 'unused')).toBe(allowed);
  });
});
