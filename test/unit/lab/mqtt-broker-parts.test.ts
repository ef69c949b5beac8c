/**
 * The pure parts of the lab's MQTT broker: the subscription index (MQTT matching rules), AWS IoT
 * Core's topic and keep-alive limits, and the reason-code mapping to MQTT 3.1.1.
 */
import { TELEMETRY_LIMITS } from '../../../core/telemetry';
import {
  countedTopic,
  effectiveKeepAlive,
  MQTT_BROKER_LIMITS,
  topicLimitProblem,
} from '../../../lab/iot/mqtt/limits';
import { connackReturnCode311, describeReasonCode, RC } from '../../../lab/iot/mqtt/reason-codes';
import { SubscriptionIndex } from '../../../lab/iot/mqtt/subscription-index';
import { topicMatches } from '../../../lab/rules/topic-filter';

function matches(index: SubscriptionIndex<string>, topic: string): string[] {
  const out: string[] = [];
  index.match(topic, (v) => out.push(v));
  return out.sort();
}

describe('SubscriptionIndex', () => {
  const filters = [
    'a/b',
    'a/+',
    'a/#',
    '#',
    '+/b',
    '+',
    'a/b/c',
    '$aws/things/+/shadow',
    '$aws/#',
    'a/+/c',
    'x',
  ];
  const topics = [
    'a',
    'a/b',
    'a/b/c',
    'a/x/c',
    'b',
    '$aws/things/t/shadow',
    '$aws/rules/r/x',
    'x',
    'x/y',
    'a//c',
    '/b',
  ];

  test.each(topics)('matches %s exactly as topicMatches does', (topic) => {
    const index = new SubscriptionIndex<string>();
    filters.forEach((f) => index.set(f, 'c1', f));
    expect(matches(index, topic)).toEqual(filters.filter((f) => topicMatches(f, topic)).sort());
  });

  test('one entry per key and filter; delete prunes and reports', () => {
    const index = new SubscriptionIndex<string>();
    index.set('a/+', 'c1', 'first');
    index.set('a/+', 'c1', 'second');
    index.set('a/+', 'c2', 'other');
    expect(index.size).toBe(2);
    expect(index.get('a/+', 'c1')).toBe('second');
    expect(matches(index, 'a/b')).toEqual(['other', 'second']);
    expect(index.delete('a/+', 'c1')).toBe(true);
    expect(index.delete('a/+', 'c1')).toBe(false);
    expect(index.delete('a/b', 'c2')).toBe(false);
    expect(index.delete('a/+', 'c2')).toBe(true);
    expect(index.size).toBe(0);
    expect(matches(index, 'a/b')).toEqual([]);
  });

  test('a filter starting with a wildcard never matches a $ topic', () => {
    const index = new SubscriptionIndex<string>();
    index.set('#', 'c', '#');
    index.set('+/rules/#', 'c', '+/rules/#');
    index.set('$aws/rules/#', 'c', '$aws/rules/#');
    expect(matches(index, '$aws/rules/r/x')).toEqual(['$aws/rules/#']);
  });
});

describe("AWS IoT Core's broker limits", () => {
  test.each([
    ['a/b/c/d/e/f/g/h', undefined],
    ['a/b/c/d/e/f/g/h/i', 'topic has 8 slashes'],
    ['$aws/rules/my_rule/a/b/c/d/e/f/g/h', undefined],
    ['$aws/rules/my_rule/a/b/c/d/e/f/g/h/i', 'topic has 8 slashes'],
  ])('slashes of %s', (topic, problem) => {
    const found = topicLimitProblem(topic, 'topic');
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  test('the share prefix is not counted in a topic filter', () => {
    expect(countedTopic('$share/g1/a/b/c/d/e/f/g/h')).toBe('a/b/c/d/e/f/g/h');
    expect(topicLimitProblem('$share/g1/a/b/c/d/e/f/g/h', 'topic filter')).toBeUndefined();
  });

  test('topic size counts UTF-8 bytes, Basic Ingest prefix excluded', () => {
    expect(topicLimitProblem('t'.repeat(256), 'topic')).toBeUndefined();
    expect(topicLimitProblem('t'.repeat(257), 'topic')).toContain('257 bytes');
    expect(topicLimitProblem('é'.repeat(129), 'topic')).toContain('258 bytes');
    expect(topicLimitProblem(`$aws/rules/r/${'t'.repeat(256)}`, 'topic')).toBeUndefined();
  });

  test.each([
    [0, 1200],
    [1, 30],
    [10, 30],
    [30, 30],
    [600, 600],
    [1200, 1200],
    [1201, 1200],
    [65535, 1200],
  ])('keep-alive %d s is used as %d s', (asked, used) => {
    expect(effectiveKeepAlive(asked)).toBe(used);
  });

  test('a payload of the device contract fits a packet with the longest topic', () => {
    // fixed header (5) + topic length (2) + topic + packet identifier (2) + properties (up to 512)
    const overhead = 5 + 2 + MQTT_BROKER_LIMITS.topicMaxBytes + 2 + 512;
    expect(TELEMETRY_LIMITS.maxPayloadBytes + overhead).toBeLessThanOrEqual(
      MQTT_BROKER_LIMITS.maximumPacketBytes,
    );
  });
});

describe('reason codes', () => {
  test('named in hex', () => {
    expect(describeReasonCode(RC.NOT_AUTHORIZED)).toBe('0x87 Not authorized');
    expect(describeReasonCode(0x02)).toBe('0x02 Unknown reason code');
  });

  test.each([
    [RC.SUCCESS, 0],
    [RC.UNSUPPORTED_PROTOCOL_VERSION, 1],
    [RC.CLIENT_IDENTIFIER_NOT_VALID, 2],
    [RC.SERVER_UNAVAILABLE, 3],
    [RC.BAD_AUTHENTICATION_METHOD, 4],
    [RC.NOT_AUTHORIZED, 5],
    [RC.QUOTA_EXCEEDED, 3],
  ])('CONNACK %d is return code %d on MQTT 3.1.1', (code, rc) => {
    expect(connackReturnCode311(code)).toBe(rc);
  });
});
