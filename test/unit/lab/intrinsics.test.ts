import {
  IntrinsicError,
  parameterValues,
  resolve,
  type IntrinsicContext,
} from '../../../lab/runtime/intrinsics';

const ctx: IntrinsicContext = {
  region: 'eu-west-1',
  accountId: '111122223333',
  stackName: 'Stack',
  parameters: { BootstrapVersion: '30', Stage: 'dev' },
  conditions: {
    IsDev: { 'Fn::Equals': [{ Ref: 'Stage' }, 'dev'] },
    IsProd: { 'Fn::Not': [{ Condition: 'IsDev' }] },
  },
  ref: (id) => ({ Table: 'Stack-Table-ABC', Queue: 'https://sqs/q' })[id],
  getAtt: (id, attr) =>
    id === 'Fn' && attr === 'Arn' ? 'arn:aws:lambda:eu-west-1:111122223333:function:fn' : undefined,
};

describe('resolve', () => {
  test.each<[string, unknown, unknown]>([
    ['plain values', { a: 1, b: ['x', true] }, { a: 1, b: ['x', true] }],
    ['Ref resource', { Ref: 'Table' }, 'Stack-Table-ABC'],
    ['Ref parameter default', { Ref: 'BootstrapVersion' }, '30'],
    ['Ref AWS::Region', { Ref: 'AWS::Region' }, 'eu-west-1'],
    ['Ref AWS::AccountId', { Ref: 'AWS::AccountId' }, '111122223333'],
    ['Ref AWS::Partition', { Ref: 'AWS::Partition' }, 'aws'],
    ['Ref AWS::URLSuffix', { Ref: 'AWS::URLSuffix' }, 'amazonaws.com'],
    ['Ref AWS::StackName', { Ref: 'AWS::StackName' }, 'Stack'],
    [
      'GetAtt array form',
      { 'Fn::GetAtt': ['Fn', 'Arn'] },
      'arn:aws:lambda:eu-west-1:111122223333:function:fn',
    ],
    ['GetAtt string form', { 'Fn::GetAtt': 'Fn.Arn' }, 'arn:aws:lambda:eu-west-1:111122223333:function:fn'],
    [
      'Join',
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iot:', { Ref: 'AWS::Region' }]] },
      'arn:aws:iot:eu-west-1',
    ],
    [
      'Join keeps IoT policy variables',
      {
        'Fn::Join': [
          '',
          ['arn:aws:iot:', { Ref: 'AWS::Region' }, ':x:client/${iot:Connection.Thing.ThingName}'],
        ],
      },
      'arn:aws:iot:eu-west-1:x:client/${iot:Connection.Thing.ThingName}',
    ],
    ['Sub string form', { 'Fn::Sub': 'cdk-${AWS::AccountId}-${AWS::Region}' }, 'cdk-111122223333-eu-west-1'],
    [
      'Sub resource and GetAtt',
      { 'Fn::Sub': '${Table}|${Fn.Arn}' },
      'Stack-Table-ABC|arn:aws:lambda:eu-west-1:111122223333:function:fn',
    ],
    ['Sub with variables', { 'Fn::Sub': ['${A}-${Stage}', { A: { Ref: 'Table' } }] }, 'Stack-Table-ABC-dev'],
    ['Sub ${!Literal} escape', { 'Fn::Sub': 'topic/${!iot:ClientId}' }, 'topic/${iot:ClientId}'],
    [
      'Sub leaves IoT policy variables intact',
      { 'Fn::Sub': 'thing/${iot:Connection.Thing.ThingName}' },
      'thing/${iot:Connection.Thing.ThingName}',
    ],
    ['Select', { 'Fn::Select': [1, ['a', 'b', 'c']] }, 'b'],
    ['Split', { 'Fn::Split': [',', 'a,b'] }, ['a', 'b']],
    ['Select of Split', { 'Fn::Select': [0, { 'Fn::Split': ['/', { Ref: 'Table' }] }] }, 'Stack-Table-ABC'],
    ['If true branch', { 'Fn::If': ['IsDev', 'yes', 'no'] }, 'yes'],
    ['If false branch via Not', { 'Fn::If': ['IsProd', 'yes', 'no'] }, 'no'],
    [
      'If AWS::NoValue drops the key',
      { a: { 'Fn::If': ['IsProd', 1, { Ref: 'AWS::NoValue' }] }, b: 2 },
      { b: 2 },
    ],
    [
      'And/Or',
      { x: { 'Fn::And': [{ Condition: 'IsDev' }, { 'Fn::Or': [{ Condition: 'IsProd' }, true] }] } },
      { x: true },
    ],
    ['Base64', { 'Fn::Base64': 'hi' }, 'aGk='],
    ['nested in arrays', [{ Ref: 'Queue' }, { Ref: 'AWS::NoValue' }], ['https://sqs/q']],
  ])('%s', (_name, input, expected) => {
    expect(resolve(input, ctx)).toEqual(expected);
  });

  test.each<[string, unknown, RegExp]>([
    ['unknown Ref', { Ref: 'Nope' }, /Ref to unknown parameter or resource Nope/],
    ['unknown GetAtt', { 'Fn::GetAtt': ['Fn', 'Nope'] }, /Fn.Nope/],
    ['ImportValue', { 'Fn::ImportValue': 'x' }, /not supported/],
    ['Select out of range', { 'Fn::Select': [5, ['a']] }, /out of range/],
    ['unknown condition', { 'Fn::If': ['Nope', 1, 2] }, /unknown condition Nope/],
  ])('fails on %s', (_name, input, message) => {
    expect(() => resolve({ Props: input }, ctx)).toThrow(IntrinsicError);
    expect(() => resolve({ Props: input }, ctx)).toThrow(message);
  });

  test('error names the path', () => {
    expect(() => resolve({ Resources: { X: { Properties: { A: { Ref: 'Nope' } } } } }, ctx)).toThrow(
      /Resources\.X\.Properties\.A\.Ref/,
    );
  });
});

describe('parameterValues', () => {
  test.each<
    [
      string,
      Record<string, { Default?: unknown; Type?: string }>,
      Record<string, unknown>,
      Record<string, unknown>,
    ]
  >([
    ['default', { P: { Default: 'a' } }, {}, { P: 'a' }],
    ['override', { P: { Default: 'a' } }, { P: 'b' }, { P: 'b' }],
    [
      'SSM bootstrap version',
      {
        BootstrapVersion: { Type: 'AWS::SSM::Parameter::Value<String>', Default: '/cdk-bootstrap/x/version' },
      },
      {},
      { BootstrapVersion: '30' },
    ],
    ['no default', { P: { Type: 'String' } }, {}, {}],
  ])('%s', (_n, params, overrides, expected) => {
    expect(parameterValues(params, overrides)).toEqual(expected);
  });
});
