import {
  kinesisRecordFilter,
  matchPattern,
  PatternError,
  validatePattern,
} from '../../../lab/runtime/event-pattern';

const health = {
  type: 'health',
  thing: 'fleet-001',
  fw: '1.2.0',
  rssiDbm: -61,
  resetReason: 'WATCHDOG',
  tags: ['a', 'b'],
  nested: { ok: true, none: null },
};

describe('event patterns (Lambda FilterCriteria)', () => {
  test.each<[string, Record<string, unknown>, boolean]>([
    ['equality list', { type: ['health'] }, true],
    ['equality list, other value', { type: ['telemetry'] }, false],
    ['one of several values', { resetReason: ['WATCHDOG', 'PANIC'] }, true],
    ['numbers compare numerically', { rssiDbm: [-61.0] }, true],
    ['array value: any element', { tags: ['b'] }, true],
    ['nested', { nested: { ok: [true] } }, true],
    ['null literal', { nested: { none: [null] } }, true],
    ['prefix', { fw: [{ prefix: '1.' }] }, true],
    ['prefix, no match', { fw: [{ prefix: '2.' }] }, false],
    ['prefix ignoring case', { thing: [{ prefix: { 'equals-ignore-case': 'FLEET-' } }] }, true],
    ['suffix', { thing: [{ suffix: '-001' }] }, true],
    ['equals-ignore-case', { resetReason: [{ 'equals-ignore-case': 'watchdog' }] }, true],
    ['wildcard', { thing: [{ wildcard: 'fleet-*1' }] }, true],
    ['anything-but list', { resetReason: [{ 'anything-but': ['POWER_ON', 'REQUESTED'] }] }, true],
    ['anything-but value', { type: [{ 'anything-but': 'health' }] }, false],
    ['anything-but prefix', { fw: [{ 'anything-but': { prefix: '0.' } }] }, true],
    ['numeric range', { rssiDbm: [{ numeric: ['>=', -80, '<', -50] }] }, true],
    ['numeric out of range', { rssiDbm: [{ numeric: ['>', -50] }] }, false],
    ['numeric on a string', { fw: [{ numeric: ['>', 0] }] }, false],
    ['exists', { fw: [{ exists: true }] }, true],
    ['exists on a missing field', { heapMinB: [{ exists: true }] }, false],
    ['does not exist', { heapMinB: [{ exists: false }] }, true],
    ['does not exist, but it does', { fw: [{ exists: false }] }, false],
    ['missing field', { heapMinB: [1] }, false],
    ['all fields must match', { type: ['health'], fw: ['9.9.9'] }, false],
    ['$or', { $or: [{ fw: ['9.9.9'] }, { resetReason: ['WATCHDOG'] }] }, true],
    ['nested pattern on a scalar', { fw: { major: [1] } }, false],
  ])('%s', (_name, pattern, expected) => {
    validatePattern(pattern);
    expect(matchPattern(pattern, health)).toBe(expected);
  });

  test.each<[unknown, RegExp]>([
    [{ type: 'health' }, /must be a list of rules or a nested pattern/],
    [{ type: [{ cidr: '10.0.0.0/24' }] }, /unsupported rule/],
    [{ n: [{ numeric: ['>'] }] }, /operator\/value pairs/],
    [{ n: [{ numeric: ['~', 1] }] }, /bad numeric comparison/],
    [{ n: [{ exists: 'yes' }] }, /exists takes true or false/],
    [{ $or: [{ a: [1] }] }, /\$or needs a list of patterns/],
    [[], /must be a JSON object/],
  ])('rejects %j', (pattern, message) => {
    expect(() => validatePattern(pattern)).toThrow(PatternError);
    expect(() => validatePattern(pattern)).toThrow(message);
  });
});

describe('Kinesis record filters', () => {
  const criteria = (...patterns: unknown[]) => ({
    Filters: patterns.map((p) => ({ Pattern: typeof p === 'string' ? p : JSON.stringify(p) })),
  });
  const data = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

  test('no filter criteria: no filter', () => {
    expect(kinesisRecordFilter(undefined)).toBeUndefined();
    expect(kinesisRecordFilter({ Filters: [] })).toBeUndefined();
  });

  test("the stack's health filter keeps health records and drops the rest", () => {
    const keep = kinesisRecordFilter(criteria('{"data":{"type":["health"]}}')) as (d: Buffer) => boolean;
    expect(keep(data(health))).toBe(true);
    expect(keep(data({ ...health, type: 'telemetry' }))).toBe(false);
    expect(keep(data({ seq: 1 }))).toBe(false);
  });

  test('data that is not JSON does not match a pattern on data: the record is dropped', () => {
    const keep = kinesisRecordFilter(criteria({ data: { type: ['health'] } })) as (d: Buffer) => boolean;
    expect(keep(data('type=health'))).toBe(false);
    expect(keep(Buffer.from([0xff, 0x00, 0x01]))).toBe(false);
  });

  test('filters are alternatives', () => {
    const keep = kinesisRecordFilter(
      criteria({ data: { type: ['health'] } }, { data: { seq: [{ numeric: ['>=', 10] }] } }),
    ) as (d: Buffer) => boolean;
    expect(keep(data({ type: 'telemetry', seq: 12 }))).toBe(true);
    expect(keep(data({ type: 'telemetry', seq: 2 }))).toBe(false);
  });

  test.each<[unknown, RegExp]>([
    [criteria('{"data":'), /Pattern is not JSON/],
    [criteria({ partitionKey: ['a'] }), /only support filtering on the data key/],
    [criteria({ data: { type: [{ cidr: 'x' }] } }), /unsupported rule/],
  ])('refuses %j', (c, message) => {
    expect(() => kinesisRecordFilter(c)).toThrow(message);
  });
});
