/**
 * The time-series options as a rule of their own (docs/decisions.md D19): the health rule keeps
 * its SQL and gains only a republish to an internal topic no device may use; the time-series rule
 * reads that topic with the registry enrichment, writes the time series and has its own error
 * action, role trusts and alarms.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { ERROR_STORE, ruleSql } from '../../../core/telemetry';
import { MAX_RULE_NAME_LENGTH, TIME_SERIES, timeSeriesRuleName } from '../../../core/time-series';
import { ERROR_STORE_LOGICAL_ID } from '../../../lib/telemetry/error-store';
import { ruleActionQuery } from '../../../lib/telemetry/telemetry-alarms';
import { REPUBLISH_QOS, TIME_SERIES_MEASURES } from '../../../lib/telemetry/time-series-rule';
import {
  asArray,
  CfnResourceJson,
  flat,
  iotAllows,
  iotArnOf,
  Loose,
  PolicyStatement,
  resourcesOf,
  synthFleet,
} from './helpers';

const timestream = { enabled: true, databaseName: 'fleet_db', tableName: 'health' };
const influxdb = {
  enabled: true,
  endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
  secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
  databaseName: 'fleet',
  tableName: 'health',
};

/** The topic rule named `name`. */
function ruleNamed(t: Template, name: string): CfnResourceJson {
  const found = Object.values(resourcesOf(t, 'AWS::IoT::TopicRule')).filter(
    (r) => r.Properties.RuleName === name,
  );
  expect(found).toHaveLength(1);
  return found[0];
}

const roleIdOf = (arn: Loose): string => arn['Fn::GetAtt'][0];
const trustOf = (t: Template, roleId: string): Loose =>
  t.toJSON().Resources[roleId].Properties.AssumeRolePolicyDocument.Statement;
const trustedRule = (t: Template, roleId: string): string => {
  const [statement] = trustOf(t, roleId);
  return flat(statement.Condition.ArnEquals['aws:SourceArn']);
};
/** [action, resource] of the inline policies of role `roleId`. */
function grantsOf(t: Template, roleId: string): [unknown, string][] {
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Loose[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[])
    .flatMap((s) => asArray(s.Resource).map((r): [unknown, string] => [s.Action, flat(r)]));
}

describe('absent by default', () => {
  const { template, stack } = synthFleet();
  const json = JSON.stringify(template.toJSON());

  test('no time-series rule, no republish, no internal topic, no registry call', () => {
    const names = Object.values(resourcesOf(template, 'AWS::IoT::TopicRule')).map(
      (r) => r.Properties.RuleName,
    );
    expect(names).not.toContain('fleet_health_timeseries');
    expect(json).not.toMatch(/Republish|fleet-internal|get_registry_data|isUndefined/);
    expect(stack.telemetry.timeSeries).toBeUndefined();
    expect(ruleNamed(template, 'fleet_health').Properties.TopicRulePayload.Actions).toEqual([
      { Kinesis: expect.any(Object) },
    ]);
  });
});

describe.each([
  ['Timestream', { timestream }, ['Timestream']],
  ['InfluxDB', { influxdb }, ['InfluxDB']],
  ['both', { timestream, influxdb }, ['Timestream', 'InfluxDB']],
] as const)('with %s on', (_name, telemetry, sinks) => {
  const { template: t } = synthFleet({ telemetry });
  const HEALTH = 'fleet_health';
  const TS = 'fleet_health_timeseries';
  const health = ruleNamed(t, HEALTH);
  const ts = ruleNamed(t, TS);
  const healthPayload = health.Properties.TopicRulePayload;
  const tsPayload = ts.Properties.TopicRulePayload;
  const republish = healthPayload.Actions.find((a: Loose) => a.Republish)?.Republish;

  test('the health rule keeps the core SQL (no SET, no registry call), its Kinesis action and its error action', () => {
    expect(flat(healthPayload.Sql)).toBe(ruleSql('health', 'fleet'));
    expect(healthPayload.Actions.map((a: Loose) => Object.keys(a)[0])).toEqual(['Kinesis', 'Republish']);
    expect(healthPayload.ErrorAction.S3.Key).toBe(ERROR_STORE.keyTemplate(HEALTH));
  });

  test('the republish goes to the thing’s internal topic at QoS 1, through a role that may publish there only', () => {
    expect(republish).toMatchObject({ Topic: 'fleet-internal/fleet/${topic(3)}/health', Qos: REPUBLISH_QOS });
    expect(REPUBLISH_QOS).toBe(1);
    const roleId = roleIdOf(republish.RoleArn);
    expect(trustedRule(t, roleId)).toBe(iotArnOf('rule', HEALTH));
    expect(grantsOf(t, roleId)).toEqual([
      ['iot:Publish', iotArnOf('topic', 'fleet-internal/fleet/*/health')],
    ]);
    // AWS IoT checks the role when it creates the rule: the health rule waits for it and its policy.
    expect(health.DependsOn).toEqual(
      expect.arrayContaining([
        roleId,
        expect.stringMatching(/^TelemetryTimeSeriesRepublishRoleDefaultPolicy/),
      ]),
    );
  });

  test('no device may publish, subscribe or receive on the internal topics', () => {
    const topic = TIME_SERIES.topic('fleet', 'fleet-SN1');
    for (const policy of Object.values(resourcesOf(t, 'AWS::IoT::Policy'))) {
      const statements = policy.Properties.PolicyDocument.Statement as PolicyStatement[];
      expect(iotAllows(statements, 'iot:Publish', iotArnOf('topic', topic), 'fleet-SN1')).toBe(false);
      expect(iotAllows(statements, 'iot:Receive', iotArnOf('topic', topic), 'fleet-SN1')).toBe(false);
      expect(
        iotAllows(
          statements,
          'iot:Subscribe',
          iotArnOf('topicfilter', TIME_SERIES.topicFilter('fleet')),
          'fleet-SN1',
        ),
      ).toBe(false);
    }
  });

  test('the time-series rule: registry enrichment, the measures only, Last Wills left out, from the internal topic', () => {
    const measures = [
      ...TIME_SERIES_MEASURES,
      ...((sinks as readonly string[]).includes('InfluxDB') ? ['ts AS timestamp'] : []),
    ];
    expect(TIME_SERIES_MEASURES).toEqual(['uptimeS', 'heapFreeB', 'heapMinB', 'rssiDbm']);
    expect(flat(tsPayload.Sql)).toMatch(
      new RegExp(
        "^SET @registry = get_registry_data\\('DescribeThing', topic\\(3\\), '<TelemetryTimeSeriesRegistryEnrichmentRole\\w+\\.Arn>'\\) " +
          `SELECT ${measures.join(', ')} FROM 'fleet-internal/fleet/\\+/health' WHERE NOT isUndefined\\(fw\\)$`,
      ),
    );
    expect(tsPayload.AwsIotSqlVersion).toBe('2016-03-23');
    expect(tsPayload.Actions.map((a: Loose) => Object.keys(a)[0])).toEqual(sinks);
  });

  test('its own error action, to the error store under its own prefix, with a role that may write there only', () => {
    expect(tsPayload.ErrorAction.S3).toMatchObject({
      BucketName: { Ref: ERROR_STORE_LOGICAL_ID },
      Key: ERROR_STORE.keyTemplate(TS),
    });
    const roleId = roleIdOf(tsPayload.ErrorAction.S3.RoleArn);
    expect(trustedRule(t, roleId)).toBe(iotArnOf('rule', TS));
    expect(grantsOf(t, roleId)).toEqual([['s3:PutObject', `<${ERROR_STORE_LOGICAL_ID}.Arn>/${TS}/*`]]);
  });

  test('the enrichment and sink roles trust the time-series rule only; the rule waits for them', () => {
    const enrichmentRole = flat(tsPayload.Sql).match(
      /<(TelemetryTimeSeriesRegistryEnrichmentRole\w+)\.Arn>/,
    )![1];
    const sinkRoles: string[] = tsPayload.Actions.map((a: Loose) =>
      roleIdOf((Object.values(a)[0] as Loose).RoleArn),
    );
    expect(sinkRoles).toHaveLength(sinks.length);
    const roles = [enrichmentRole, ...sinkRoles];
    for (const roleId of roles) {
      expect(trustedRule(t, roleId)).toBe(iotArnOf('rule', TS));
      expect(ts.DependsOn).toContain(roleId);
    }
    expect(grantsOf(t, enrichmentRole)).toEqual([['iot:DescribeThing', iotArnOf('thing', 'fleet-*')]]);
    // Nothing the account's other rules may assume.
    for (const role of Object.values(resourcesOf(t, 'AWS::IAM::Role'))) {
      for (const s of role.Properties.AssumeRolePolicyDocument.Statement as Loose[])
        expect(JSON.stringify(s.Condition ?? {})).not.toContain(':rule/*');
    }
  });

  test('its failed actions and failed error actions are alarmed', () => {
    const queries = Object.values(resourcesOf(t, 'AWS::CloudWatch::Alarm')).flatMap((a) =>
      (a.Properties.Metrics ?? []).map((m: Loose) => m.Expression),
    );
    expect(queries).toEqual(
      expect.arrayContaining([ruleActionQuery('Failure', TS), ruleActionQuery('ErrorActionFailure', TS)]),
    );
  });
});

test('names and topics follow the configured health rule and topic prefix', () => {
  const { template: t } = synthFleet({
    topicPrefix: 'plant7',
    telemetry: { ruleNames: { health: 'plant_health' }, timestream },
  });
  const republish = ruleNamed(t, 'plant_health').Properties.TopicRulePayload.Actions[1].Republish;
  expect(republish.Topic).toBe('fleet-internal/plant7/${topic(3)}/health');
  const ts = ruleNamed(t, 'plant_health_timeseries').Properties.TopicRulePayload;
  expect(flat(ts.Sql)).toContain("FROM 'fleet-internal/plant7/+/health'");
  expect(ts.ErrorAction.S3.Key).toBe(ERROR_STORE.keyTemplate('plant_health_timeseries'));
});

test('timeSeriesRuleName: <health>_timeseries, cut and tagged to stay within 128 characters', () => {
  expect(timeSeriesRuleName('fleet_health')).toBe('fleet_health_timeseries');
  const long = 'h'.repeat(MAX_RULE_NAME_LENGTH);
  const other = `${'h'.repeat(MAX_RULE_NAME_LENGTH - 1)}x`;
  for (const name of [long, other, 'h'.repeat(118)]) {
    const derived = timeSeriesRuleName(name);
    expect(derived.length).toBeLessThanOrEqual(MAX_RULE_NAME_LENGTH);
    expect(derived).toMatch(/^[A-Za-z0-9_]+_timeseries$/);
  }
  expect(timeSeriesRuleName(long)).not.toBe(timeSeriesRuleName(other));
  expect(timeSeriesRuleName('h'.repeat(117))).toBe(`${'h'.repeat(117)}_timeseries`);
});
