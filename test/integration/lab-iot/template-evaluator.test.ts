import { evaluateTemplate, TemplateError } from '../../../lab/iot/template-evaluator';

const builtins = { 'AWS::IoT::Certificate::Id': 'abc123' };

const template = {
  Parameters: {
    SerialNumber: { Type: 'String' },
    HardwareRevision: { Type: 'String', Default: 'A' },
    Ring: { Type: 'String' },
    ThingName: { Type: 'String' },
    'AWS::IoT::Certificate::Id': { Type: 'String' },
  },
  Mappings: { Rings: { canary: { Group: 'fleet-ring-canary' } } },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: {
        ThingName: { Ref: 'ThingName' },
        ThingTypeName: 'sensor-v1',
        AttributePayload: { serial: { Ref: 'SerialNumber' }, hwRev: { Ref: 'HardwareRevision' } },
        ThingGroups: [{ 'Fn::FindInMap': ['Rings', { Ref: 'Ring' }, 'Group'] }],
      },
      OverrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'REPLACE' },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' },
    },
    policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'fleet-device' } },
  },
  DeviceConfiguration: {
    telemetryTopic: { 'Fn::Join': ['', ['dt/fleet/', { Ref: 'ThingName' }, '/telemetry']] },
    healthTopic: { 'Fn::Sub': 'dt/fleet/${ThingName}/health' },
    lot: { 'Fn::Select': [1, { 'Fn::Split': ['-', { Ref: 'SerialNumber' }] }] },
    literal: { 'Fn::Sub': ['${!Literal}-${X}', { X: { Ref: 'Ring' } }] },
  },
};

const params = { SerialNumber: 'SN-L7-0001', Ring: 'canary', ThingName: 'fleet-SN-L7-0001' };

test('evaluates parameters, defaults and every documented intrinsic', () => {
  const ev = evaluateTemplate(JSON.stringify(template), params, { builtins });
  expect(ev.thing).toEqual(
    expect.objectContaining({
      thingName: 'fleet-SN-L7-0001',
      thingTypeName: 'sensor-v1',
      attributes: { serial: 'SN-L7-0001', hwRev: 'A' },
      thingGroups: ['fleet-ring-canary'],
      overrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'REPLACE' },
    }),
  );
  expect(ev.certificate).toEqual(expect.objectContaining({ certificateId: 'abc123', status: 'ACTIVE' }));
  expect(ev.policies).toEqual([
    { logicalId: 'policy', policyName: 'fleet-device', policyDocument: undefined },
  ]);
  expect(ev.deviceConfiguration).toEqual({
    telemetryTopic: 'dt/fleet/fleet-SN-L7-0001/telemetry',
    healthTopic: 'dt/fleet/fleet-SN-L7-0001/health',
    lot: 'L7',
    literal: '${Literal}-canary',
  });
});

test('a given parameter overrides the Default', () => {
  const ev = evaluateTemplate(template, { ...params, HardwareRevision: 'B' }, { builtins });
  expect(ev.thing?.attributes?.hwRev).toBe('B');
});

const bad = (mutate: (t: Record<string, unknown>) => void): Record<string, unknown> => {
  const t = JSON.parse(JSON.stringify(template)) as Record<string, unknown>;
  mutate(t);
  return t;
};

test.each([
  [
    'missing required parameter',
    template,
    { SerialNumber: 'x', ThingName: 't' },
    /Missing value for parameter Ring/,
  ],
  [
    'unsupported intrinsic',
    bad((t) => ((t.DeviceConfiguration as Record<string, unknown>).x = { 'Fn::If': ['c', 'a', 'b'] })),
    params,
    /Unsupported intrinsic function Fn::If/,
  ],
  [
    'GetAtt is unsupported',
    bad((t) => ((t.DeviceConfiguration as Record<string, unknown>).x = { 'Fn::GetAtt': ['thing', 'Arn'] })),
    params,
    /Fn::GetAtt/,
  ],
  [
    'Ref to an undeclared parameter',
    bad((t) => ((t.DeviceConfiguration as Record<string, unknown>).x = { Ref: 'Nope' })),
    params,
    /undefined parameter Nope/,
  ],
  [
    'Select out of range',
    bad((t) => ((t.DeviceConfiguration as Record<string, unknown>).x = { 'Fn::Select': [5, ['a']] })),
    params,
    /out of range/,
  ],
  [
    'FindInMap miss',
    bad(
      (t) =>
        ((t.DeviceConfiguration as Record<string, unknown>).x = {
          'Fn::FindInMap': ['Rings', 'broad', 'Group'],
        }),
    ),
    params,
    /FindInMap/,
  ],
  ['Conditions section', bad((t) => (t.Conditions = {})), params, /Unsupported template section Conditions/],
  [
    'unknown resource type',
    bad((t) => ((t.Resources as Record<string, unknown>).q = { Type: 'AWS::SQS::Queue' })),
    params,
    /unsupported resource type AWS::SQS::Queue/,
  ],
  [
    'nested DeviceConfiguration',
    bad((t) => ((t.DeviceConfiguration as Record<string, unknown>).x = { a: 'b' })),
    params,
    /nested objects/,
  ],
  [
    'bad OverrideSettings',
    bad(
      (t) =>
        ((
          (t.Resources as Record<string, Record<string, unknown>>).thing.OverrideSettings as Record<
            string,
            unknown
          >
        ).ThingTypeName = 'MERGE'),
    ),
    params,
    /ThingTypeName must be one of/,
  ],
  [
    'certificate without CertificateId',
    bad(
      (t) =>
        ((t.Resources as Record<string, Record<string, unknown>>).certificate.Properties = {
          Status: 'ACTIVE',
        }),
    ),
    params,
    /only CertificateId/,
  ],
  ['invalid JSON body', '{', params, /not valid JSON/],
])('%s is rejected with a clear message', (_n, body, p, message) => {
  expect(() => evaluateTemplate(body as string, p as Record<string, string>, { builtins })).toThrow(
    TemplateError,
  );
  expect(() => evaluateTemplate(body as string, p as Record<string, string>, { builtins })).toThrow(message);
});

test('inline PolicyDocument is serialized', () => {
  const t = bad(
    (x) =>
      ((x.Resources as Record<string, unknown>).policy = {
        Type: 'AWS::IoT::Policy',
        Properties: { PolicyDocument: { Statement: [] } },
      }),
  );
  expect(evaluateTemplate(t, params, { builtins }).policies[0].policyDocument).toBe('{"Statement":[]}');
});
