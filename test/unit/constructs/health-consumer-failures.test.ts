/**
 * Where the health consumer's failures go (docs/decisions.md D20): batches its event-source
 * mapping gives up on are written, whole, to the telemetry error store under `aws/lambda/` (an S3
 * on-failure destination keeps the event; an SQS one only shard coordinates); records the
 * function rejects still go to the dead-letter queue. And the settings that decide when the
 * mapping gives up: retries until the record age, an age below the stream's retention.
 */
import { ENV } from '../../../core/env';
import { ERROR_STORE } from '../../../core/telemetry';
import {
  FLEET_DEFAULTS,
  FleetConfigError,
  MAX_RECORD_AGE_MARGIN_SECONDS,
  resolveFleetConfig,
} from '../../../lib/config';
import { ERROR_STORE_LOGICAL_ID, STREAM_FAILURE_PREFIX } from '../../../lib/telemetry/error-store';
import { asArray, flat, type Loose, one, type PolicyStatement, resourcesOf, synthFleet } from './helpers';
import type { Template } from 'aws-cdk-lib/assertions';

const { template } = synthFleet();
const BUCKET = `<${ERROR_STORE_LOGICAL_ID}.Arn>`;

const mappingOf = (t: Template): Loose => one(t, 'AWS::Lambda::EventSourceMapping', 'HealthConsumer')[1];

/** Actions granted to the health consumer's execution role, by flattened resource. */
function consumerGrants(t: Template): Map<string, string[]> {
  const [, fn] = one(t, 'AWS::Lambda::Function', 'HealthConsumer');
  const roleId = (fn.Properties.Role as Loose)['Fn::GetAtt'][0] as string;
  const byResource = new Map<string, string[]>();
  for (const p of Object.values(resourcesOf(t, 'AWS::IAM::Policy'))) {
    if (!(p.Properties.Roles as Loose[]).some((r) => r.Ref === roleId)) continue;
    for (const s of p.Properties.PolicyDocument.Statement as PolicyStatement[]) {
      expect(s.Effect).toBe('Allow');
      for (const r of asArray(s.Resource).map((x) => flat(x)))
        byResource.set(r, [...(byResource.get(r) ?? []), ...asArray(s.Action)]);
    }
  }
  return byResource;
}

function errorOf(telemetry: unknown): FleetConfigError {
  try {
    resolveFleetConfig({ telemetry });
  } catch (e) {
    if (e instanceof FleetConfigError) return e;
    throw e;
  }
  throw new Error('expected a FleetConfigError');
}

describe('given-up batches: the error store, whole', () => {
  test("the mapping's on-failure destination is the error store bucket (not a queue)", () => {
    expect(mappingOf(template).Properties.DestinationConfig).toEqual({
      OnFailure: { Destination: { 'Fn::GetAtt': [ERROR_STORE_LOGICAL_ID, 'Arn'] } },
    });
  });

  test('the role may put objects under aws/lambda/ and list the bucket: nothing else on the error store', () => {
    const grants = consumerGrants(template);
    expect(grants.get(`${BUCKET}/${STREAM_FAILURE_PREFIX}*`)).toEqual(['s3:PutObject']);
    expect(grants.get(BUCKET)).toEqual(['s3:ListBucket']);
    const onErrorStore = [...grants.entries()].filter(([r]) => r.startsWith(BUCKET));
    expect(onErrorStore.map(([r]) => r).sort()).toEqual([BUCKET, `${BUCKET}/aws/lambda/*`]);
    // No read, no delete: the rules' entries stay out of the consumer's reach.
    expect(onErrorStore.flatMap(([, a]) => a).filter((a) => /Get|Delete|\*/.test(a))).toEqual([]);
  });

  test('the mapping is created after the grant: it references the function, which depends on the policy', () => {
    const [fnId, fn] = one(template, 'AWS::Lambda::Function', 'HealthConsumer');
    const [policyId, policy] = Object.entries(resourcesOf(template, 'AWS::IAM::Policy')).find(([, p]) =>
      JSON.stringify(p.Properties.PolicyDocument).includes(STREAM_FAILURE_PREFIX),
    ) as [string, Loose];
    expect(policy.Properties.Roles).toEqual([{ Ref: (fn.Properties.Role as Loose)['Fn::GetAtt'][0] }]);
    expect(fn.DependsOn).toContain(policyId);
    expect(mappingOf(template).Properties.FunctionName).toEqual({ Ref: fnId });
  });

  test('aws/lambda/ is apart from every rule prefix and from replayed/', () => {
    const at = new Date('2025-06-01T10:00:00Z');
    for (const rule of ['fleet_telemetry', 'fleet_health', 'a'])
      expect(ERROR_STORE.hourPrefix(rule, at).startsWith(STREAM_FAILURE_PREFIX)).toBe(false);
    expect(ERROR_STORE.replayedPrefix.startsWith(STREAM_FAILURE_PREFIX)).toBe(false);
    expect(errorOf({ ruleNames: { health: 'aws' } }).message).toContain(
      'telemetry.ruleNames.health: "aws" is invalid; use another name',
    );
  });

  test('records the function rejects still go to the dead-letter queue', () => {
    const [queueId] = one(template, 'AWS::SQS::Queue', 'HealthConsumer');
    const [, fn] = one(template, 'AWS::Lambda::Function', 'HealthConsumer');
    expect(fn.Properties.Environment.Variables[ENV.healthDeadLetterQueueUrl]).toEqual({ Ref: queueId });
    expect(consumerGrants(template).get(`<${queueId}.Arn>`)).toContain('sqs:SendMessage');
    expect(JSON.stringify(mappingOf(template).Properties)).not.toContain(queueId);
  });
});

describe('when the mapping gives up', () => {
  test('defaults: retry until the record age, 6 hours, below the 24-hour retention with an hour to spare', () => {
    const { consumer, stream } = FLEET_DEFAULTS.telemetry;
    expect(consumer.retryAttempts).toBe(-1);
    expect(consumer.maxRecordAgeSeconds).toBe(6 * 3600);
    expect(consumer.maxRecordAgeSeconds).toBeLessThanOrEqual(
      stream.retentionHours * 3600 - MAX_RECORD_AGE_MARGIN_SECONDS,
    );
    expect(mappingOf(template).Properties).toMatchObject({
      MaximumRetryAttempts: -1,
      MaximumRecordAgeInSeconds: 21600,
    });
  });

  test('a record age of the whole retention is refused, naming both keys and the fix', () => {
    const err = errorOf({ consumer: { maxRecordAgeSeconds: 86_400 } });
    expect(err.message).toContain(
      'telemetry.consumer.maxRecordAgeSeconds: 86400 is invalid; use at most 82800 ' +
        '(telemetry.stream.retentionHours 24 × 3600 − 3600), or raise telemetry.stream.retentionHours',
    );
    expect(errorOf({ consumer: { maxRecordAgeSeconds: 82_801 } }).message).toContain('use at most 82800');
  });

  test('the limit follows the retention', () => {
    const at = (retentionHours: number, maxRecordAgeSeconds: number) =>
      resolveFleetConfig({ telemetry: { stream: { retentionHours }, consumer: { maxRecordAgeSeconds } } })
        .telemetry.consumer.maxRecordAgeSeconds;
    expect(at(24, 82_800)).toBe(82_800);
    expect(at(48, 86_400)).toBe(86_400);
    expect(at(168, 604_800 - 3600)).toBe(604_800 - 3600);
    expect(
      errorOf({ stream: { retentionHours: 48 }, consumer: { maxRecordAgeSeconds: 169_201 } }).message,
    ).toContain('use at most 169200 (telemetry.stream.retentionHours 48 × 3600 − 3600)');
  });

  test('retryAttempts: -1 or 0 to 10000, passed to the mapping as configured', () => {
    expect(errorOf({ consumer: { retryAttempts: -2 } }).message).toContain(
      'telemetry.consumer.retryAttempts: -2 is invalid; use -1 (retry until maxRecordAgeSeconds) or an integer between 0 and 10000',
    );
    const t = synthFleet({ telemetry: { consumer: { retryAttempts: 10 } } }).template;
    expect(mappingOf(t).Properties.MaximumRetryAttempts).toBe(10);
    expect(mappingOf(t).Properties.DestinationConfig.OnFailure.Destination).toEqual({
      'Fn::GetAtt': [ERROR_STORE_LOGICAL_ID, 'Arn'],
    });
  });
});
