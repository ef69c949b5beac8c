import { ENROLLMENT_SHARDS, enrollmentPartitions, trailEntry, utcDays } from '../../../core/trail';

const now = () => new Date('2026-03-04T05:06:07.000Z');

test('enrollment decisions spread over every shard of their UTC day', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const e = trailEntry({ serial: `SN-${i}`, type: 'ENROLLMENT_ALLOWED' }, now);
    expect(enrollmentPartitions('2026-03-04')).toContain(e.enrollDay);
    seen.add(e.enrollDay as string);
  }
  expect(seen.size).toBe(ENROLLMENT_SHARDS);
});

test('other events stay out of the enrollment index and carry no TTL unless asked', () => {
  const e = trailEntry({ serial: 'SN-1', type: 'ACTIVATED' }, now);
  expect(e.enrollDay).toBeUndefined();
  expect(e.expiresAt).toBeUndefined();
  expect(e.sk.startsWith('2026-03-04T05:06:07.000Z#')).toBe(true);
});

test('a retention sets the TTL attribute in epoch seconds and is not stored itself', () => {
  const e = trailEntry({ serial: 'SN-X', type: 'ENROLLMENT_DENIED', retentionDays: 30 }, now);
  expect(e.expiresAt).toBe(Date.parse('2026-03-04T05:06:07.000Z') / 1000 + 30 * 86_400);
  expect('retentionDays' in e).toBe(false);
});

test('utcDays covers every day the window touches', () => {
  expect(utcDays('2026-03-04T23:00:00.000Z', '2026-03-06T00:00:01.000Z')).toEqual([
    '2026-03-04',
    '2026-03-05',
    '2026-03-06',
  ]);
});

test('a given sort key suffix makes the entry deterministic', () => {
  const a = trailEntry({ serial: 'SN-1', type: 'ACTIVATED', skSuffix: 'ACTIVATED#7' }, now);
  const b = trailEntry({ serial: 'SN-1', type: 'ACTIVATED', skSuffix: 'ACTIVATED#7' }, now);
  expect(a.sk).toBe('2026-03-04T05:06:07.000Z#ACTIVATED#7');
  expect(b.sk).toBe(a.sk);
  expect('skSuffix' in a).toBe(false);
});
