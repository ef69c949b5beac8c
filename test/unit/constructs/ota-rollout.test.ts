/**
 * The rollout constructs: the rollouts table (retained, PITR, encrypted, pinned logical id, the
 * active index), the controller and API functions, the schedule, the job event rules with their
 * error action and scoped invoke permissions, and least-privilege IAM for jobs, packages and the
 * presigned-URL role.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../../core/env';
import { TABLES } from '../../../core/model';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import { JOB_EVENT_SQL } from '../../../lib/ota/rollout-controller';
import { ROLLOUTS_TABLE_LOGICAL_ID } from '../../../lib/ota/rollout-table';
import { asArray, flat, Loose, PolicyStatement, resourcesOf, synthFleet } from './helpers';

const { stack, template } = synthFleet();
const functions = resourcesOf(template, 'AWS::Lambda::Function');
const fnId = (service: string) =>
  Object.entries(functions).find(
    ([, f]) => f.Properties.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === service,
  )?.[0] as string;
const controllerId = fnId('rollout-controller');
const apiId = fnId('rollout-api');

/** Every statement of the policies attached to a function's role. */
function statementsOf(functionId: string): PolicyStatement[] {
  const roleRef = (functions[functionId].Properties.Role as Loose)['Fn::GetAtt'][0] as string;
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Loose[]).some((r) => r.Ref === roleRef))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
}
const resourcesFor = (st: PolicyStatement[], action: string) =>
  st
    .filter((s) => asArray(s.Action).includes(action))
    .flatMap((s) => asArray(s.Resource).map((r) => flat(r)));

test('the rollouts table is retained, recoverable, encrypted, with a pinned id and the active index', () => {
  const prod = synthFleet({ stage: 'prod' }).template.toJSON().Resources[ROLLOUTS_TABLE_LOGICAL_ID];
  expect(prod.Type).toBe('AWS::DynamoDB::Table');
  expect(prod.DeletionPolicy).toBe('Retain');
  expect(prod.Properties.DeletionProtectionEnabled).toBe(true);
  template.hasResourceProperties('AWS::DynamoDB::Table', {
    KeySchema: [{ AttributeName: TABLES.rollouts.partitionKey, KeyType: 'HASH' }],
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    SSESpecification: { SSEEnabled: true },
    GlobalSecondaryIndexes: [
      Match.objectLike({
        IndexName: TABLES.rollouts.activeIndex,
        KeySchema: [
          { AttributeName: TABLES.rollouts.activeKey, KeyType: 'HASH' },
          { AttributeName: TABLES.rollouts.activeSortKey, KeyType: 'RANGE' },
        ],
      }),
    ],
  });
});

test('the two functions get the environment their handlers read', () => {
  expect(controllerId).toBeDefined();
  expect(apiId).toBeDefined();
  const env = functions[controllerId].Properties.Environment.Variables;
  for (const k of [
    'rolloutsTable',
    'devicesTable',
    'lotsTable',
    'eventsTable',
    'firmwarePackage',
    'jobTemplateArns',
    'iotArnPrefix',
  ] as const)
    expect(env[ENV[k]]).toBeDefined();
  expect(flat(env[ENV.iotArnPrefix])).toBe('arn:aws:iot:eu-west-1:111122223333:');
  const apiEnv = functions[apiId].Properties.Environment.Variables;
  expect(Object.keys(apiEnv)).toEqual(expect.arrayContaining([ENV.rolloutsTable, ENV.firmwarePackage]));
  expect(apiEnv[ENV.devicesTable]).toBeUndefined();
});

test('a one-minute schedule invokes the controller, and only its rule may', () => {
  template.hasResourceProperties('AWS::Events::Rule', {
    ScheduleExpression: 'rate(1 minute)',
    Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [controllerId, 'Arn'] } })],
  });
  template.hasResourceProperties('AWS::Lambda::Permission', {
    Principal: 'events.amazonaws.com',
    FunctionName: { 'Fn::GetAtt': [controllerId, 'Arn'] },
    SourceArn: Match.anyValue(),
  });
});

test.each(Object.entries(JOB_EVENT_SQL))(
  'the %s event rule invokes the controller, with an error action',
  (_, sql) => {
    const rules = Object.entries(resourcesOf(template, 'AWS::IoT::TopicRule')).filter(
      ([, r]) => r.Properties.TopicRulePayload.Sql === sql,
    );
    expect(rules).toHaveLength(1);
    const [ruleId, rule] = rules[0];
    const payload = rule.Properties.TopicRulePayload;
    expect(payload.Actions).toEqual([{ Lambda: { FunctionArn: { 'Fn::GetAtt': [controllerId, 'Arn'] } } }]);
    expect(payload.ErrorAction.Sqs).toMatchObject({
      QueueUrl: Match.anyValue() === undefined ? '' : expect.anything(),
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'iot.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [controllerId, 'Arn'] },
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  },
);

test('the controller may create jobs only as ota-* with the fleet things, its templates and package versions', () => {
  const st = statementsOf(controllerId);
  const create = resourcesFor(st, 'iot:CreateJob');
  expect(create).toEqual(
    expect.arrayContaining([
      'arn:aws:iot:eu-west-1:111122223333:job/ota-*',
      'arn:aws:iot:eu-west-1:111122223333:thinggroup/ota-*',
      'arn:aws:iot:eu-west-1:111122223333:thing/fleet-*',
      `arn:aws:iot:eu-west-1:111122223333:package/${stack.config.ota.packageName}/version/*`,
    ]),
  );
  expect(create.filter((r) => r.includes('JobTemplate'))).toHaveLength(3);
  expect(resourcesFor(st, 'iot:CancelJob')).toEqual(['arn:aws:iot:eu-west-1:111122223333:job/ota-*']);
  expect(resourcesFor(st, 'iot:GetPackageVersion')).toEqual([
    `arn:aws:iot:eu-west-1:111122223333:package/${stack.config.ota.packageName}/version/*`,
  ]);
  const passRole = st.filter((s) => asArray(s.Action).includes('iam:PassRole'));
  expect(passRole).toHaveLength(1);
  expect(flat(asArray(passRole[0].Resource)[0])).toMatch(/PresignedUrlRole/);
  for (const s of st) {
    for (const a of asArray(s.Action)) expect(a).not.toMatch(/\*/);
    if (asArray(s.Action).some((a) => a.startsWith('iot:')))
      for (const r of asArray(s.Resource)) expect(flat(r)).not.toBe('*');
  }
});

test('the API reads the package versions and its table, nothing of the registry or jobs', () => {
  const st = statementsOf(apiId);
  const actions = st.flatMap((s) => asArray(s.Action));
  expect(actions).toContain('iot:GetPackageVersion');
  expect(actions.filter((a) => /^iot:(Create|Cancel)Job/.test(a))).toEqual([]);
  expect(actions).not.toContain('iam:PassRole');
});

test('the stack outputs the rollouts table and the API function', () => {
  const outputs = template.toJSON().Outputs;
  expect(flat(outputs[STACK_OUTPUTS.rolloutsTable].Value)).toBe(`<${ROLLOUTS_TABLE_LOGICAL_ID}>`);
  expect(flat(outputs[STACK_OUTPUTS.rolloutApiFunction].Value)).toBe(`<${apiId}>`);
});
