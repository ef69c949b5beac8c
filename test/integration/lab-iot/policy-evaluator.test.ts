import { evaluatePolicies, type PolicyContext, type PolicyDecision } from '../../../lab/iot/policy-evaluator';
import { arn, devicePolicy, claimPolicy } from './helpers';

const certId = 'c'.repeat(64);
const thingCtx: PolicyContext = {
  region: 'us-east-1',
  accountId: '123456789012',
  clientId: 'fleet-SN1',
  certificateId: certId,
  thing: { thingName: 'fleet-SN1', attributes: { ring: 'canary' } },
};
const noThing: PolicyContext = { ...thingCtx, thing: undefined };
const claimCtx: PolicyContext = { ...noThing, clientId: 'prov-SN1' };

const device = [{ name: 'device', document: devicePolicy() }];
const claim = [{ name: 'claim', document: claimPolicy('fleet-tpl') }];

type Row = [
  string,
  Array<{ name: string; document: unknown }>,
  PolicyContext,
  string,
  string,
  PolicyDecision['reason'],
];

const rows: Row[] = [
  ['device connects as its thing', device, thingCtx, 'iot:Connect', arn('client/fleet-SN1'), 'ALLOWED'],
  [
    'device cannot connect as another client id',
    device,
    { ...thingCtx, clientId: 'fleet-SN2', thing: undefined },
    'iot:Connect',
    arn('client/fleet-SN2'),
    'NO_MATCHING_ALLOW',
  ],
  [
    'unattached thing: variables undefined',
    device,
    noThing,
    'iot:Connect',
    arn('client/fleet-SN1'),
    'NO_MATCHING_ALLOW',
  ],
  ['own telemetry', device, thingCtx, 'iot:Publish', arn('topic/dt/fleet/fleet-SN1/telemetry'), 'ALLOWED'],
  [
    "other thing's telemetry",
    device,
    thingCtx,
    'iot:Publish',
    arn('topic/dt/fleet/fleet-SN2/telemetry'),
    'NO_MATCHING_ALLOW',
  ],
  [
    'own jobs filter',
    device,
    thingCtx,
    'iot:Subscribe',
    arn('topicfilter/$aws/things/fleet-SN1/jobs/notify-next'),
    'ALLOWED',
  ],
  [
    'wildcard filter is literal: + does not match the thing name',
    device,
    thingCtx,
    'iot:Subscribe',
    arn('topicfilter/cmd/fleet/+/reboot'),
    'NO_MATCHING_ALLOW',
  ],
  [
    '# filter under own prefix is allowed by trailing *',
    device,
    thingCtx,
    'iot:Subscribe',
    arn('topicfilter/cmd/fleet/fleet-SN1/#'),
    'ALLOWED',
  ],
  [
    'receive own command',
    device,
    thingCtx,
    'iot:Receive',
    arn('topic/cmd/fleet/fleet-SN1/reboot'),
    'ALLOWED',
  ],
  [
    "receive other thing's command",
    device,
    thingCtx,
    'iot:Receive',
    arn('topic/cmd/fleet/fleet-SN2/reboot'),
    'NO_MATCHING_ALLOW',
  ],
  ['claim connects with prov- prefix', claim, claimCtx, 'iot:Connect', arn('client/prov-SN1'), 'ALLOWED'],
  [
    'claim publishes provisioning requests',
    claim,
    claimCtx,
    'iot:Publish',
    arn('topic/$aws/certificates/create-from-csr/json'),
    'ALLOWED',
  ],
  [
    'claim register on its template',
    claim,
    claimCtx,
    'iot:Publish',
    arn('topic/$aws/provisioning-templates/fleet-tpl/provision/json'),
    'ALLOWED',
  ],
  [
    'claim register on another template',
    claim,
    claimCtx,
    'iot:Publish',
    arn('topic/$aws/provisioning-templates/other/provision/json'),
    'NO_MATCHING_ALLOW',
  ],
  [
    'claim cannot publish telemetry',
    claim,
    claimCtx,
    'iot:Publish',
    arn('topic/dt/fleet/fleet-SN1/telemetry'),
    'NO_MATCHING_ALLOW',
  ],
  ['no policy at all', [], thingCtx, 'iot:Connect', arn('client/fleet-SN1'), 'NO_POLICY'],
  [
    'explicit deny wins over allow',
    [
      ...device,
      {
        name: 'deny',
        document: {
          Statement: { Effect: 'Deny', Action: 'iot:Publish', Resource: arn('topic/dt/fleet/*/telemetry') },
        },
      },
    ],
    thingCtx,
    'iot:Publish',
    arn('topic/dt/fleet/fleet-SN1/telemetry'),
    'EXPLICIT_DENY',
  ],
  [
    'iot:* action wildcard',
    [{ name: 'all', document: { Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }] } }],
    noThing,
    'iot:Receive',
    arn('topic/x'),
    'ALLOWED',
  ],
  [
    'action match is case-insensitive',
    [
      {
        name: 'p',
        document: { Statement: [{ Effect: 'Allow', Action: 'IOT:publish', Resource: arn('topic/a') }] },
      },
    ],
    noThing,
    'iot:Publish',
    arn('topic/a'),
    'ALLOWED',
  ],
  [
    '? matches one character',
    [
      {
        name: 'p',
        document: { Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/a?c') }] },
      },
    ],
    noThing,
    'iot:Publish',
    arn('topic/abc'),
    'ALLOWED',
  ],
  [
    '? does not match two',
    [
      {
        name: 'p',
        document: { Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/a?c') }] },
      },
    ],
    noThing,
    'iot:Publish',
    arn('topic/abbc'),
    'NO_MATCHING_ALLOW',
  ],
  [
    '${iot:ClientId}',
    [
      {
        name: 'p',
        document: {
          Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/${iot:ClientId}') }],
        },
      },
    ],
    noThing,
    'iot:Connect',
    arn('client/fleet-SN1'),
    'ALLOWED',
  ],
  [
    '${iot:Certificate.Id}',
    [
      {
        name: 'p',
        document: {
          Statement: [
            { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/certs/${iot:Certificate.Id}') },
          ],
        },
      },
    ],
    noThing,
    'iot:Publish',
    arn(`topic/certs/${certId}`),
    'ALLOWED',
  ],
  [
    'substituted values are literal (client id with *)',
    [
      {
        name: 'p',
        document: {
          Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/${iot:ClientId}') }],
        },
      },
    ],
    { ...noThing, clientId: 'a*' },
    'iot:Publish',
    arn('topic/abc'),
    'NO_MATCHING_ALLOW',
  ],
  [
    'thing attribute variable',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Publish',
              Resource: arn('topic/ring/${iot:Connection.Thing.Attributes[ring]}'),
            },
          ],
        },
      },
    ],
    thingCtx,
    'iot:Publish',
    arn('topic/ring/canary'),
    'ALLOWED',
  ],
  [
    'IsAttached condition false',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: '*',
              Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
            },
          ],
        },
      },
    ],
    noThing,
    'iot:Connect',
    arn('client/x'),
    'CONDITION_FAILED',
  ],
  [
    'ConnectAttributes ForAllValues allows PersistentConnect only',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: '*',
              Condition: { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
            },
          ],
        },
      },
    ],
    { ...noThing, connectAttributes: ['PersistentConnect', 'LastWill'] },
    'iot:Connect',
    arn('client/x'),
    'CONDITION_FAILED',
  ],
  [
    'ConnectAttributes ForAnyValue',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: '*',
              Condition: { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['LastWill'] } },
            },
          ],
        },
      },
    ],
    { ...noThing, connectAttributes: ['LastWill'] },
    'iot:Connect',
    arn('client/x'),
    'ALLOWED',
  ],
  [
    'StringLike on client id',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: '*',
              Condition: { StringLike: { 'iot:ClientId': 'prov-*' } },
            },
          ],
        },
      },
    ],
    claimCtx,
    'iot:Connect',
    arn('client/prov-SN1'),
    'ALLOWED',
  ],
  [
    'unsupported operator fails the condition',
    [
      {
        name: 'p',
        document: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: '*',
              Condition: { IpAddress: { 'aws:SourceIp': '1.2.3.4' } },
            },
          ],
        },
      },
    ],
    noThing,
    'iot:Connect',
    arn('client/x'),
    'CONDITION_FAILED',
  ],
  [
    'document as a JSON string',
    [
      {
        name: 'p',
        document: JSON.stringify({
          Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/a') }],
        }),
      },
    ],
    noThing,
    'iot:Publish',
    arn('topic/a'),
    'ALLOWED',
  ],
  [
    '* spans topic levels',
    [
      {
        name: 'p',
        document: { Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/a/*') }] },
      },
    ],
    noThing,
    'iot:Publish',
    arn('topic/a/b/c'),
    'ALLOWED',
  ],
];

test.each(rows)('%s', (_name, policies, ctx, action, resource, reason) => {
  const d = evaluatePolicies(policies, { action: action as 'iot:Connect', resource }, ctx);
  expect(d.reason).toBe(reason);
  expect(d.allowed).toBe(reason === 'ALLOWED');
  expect(d.detail.length).toBeGreaterThan(0);
});

test('a denial explains an undefined policy variable', () => {
  const d = evaluatePolicies(
    device,
    { action: 'iot:Publish', resource: arn('topic/dt/fleet/fleet-SN1/telemetry') },
    noThing,
  );
  expect(d.detail).toContain('iot:Connection.Thing.ThingName');
});
