/**
 * The health consumer's per-container device cache: bounded LRU, a time to live per entry (shorter
 * for serials the registry does not hold), and updates that keep the entry's expiry.
 */
import { DeviceCache } from '../../../lambda/telemetry/device-cache';

type Entry = { v: number };

function cache(maxEntries = 3): { c: DeviceCache<Entry>; clock: { now: number } } {
  const clock = { now: 0 };
  const c = new DeviceCache<Entry>({ maxEntries, knownTtlMs: 1000, unknownTtlMs: 100, now: () => clock.now });
  return { c, clock };
}

test('a miss, a known device, a serial known not to exist', () => {
  const { c } = cache();
  expect(c.get('a')).toBeUndefined();
  c.set('a', { v: 1 });
  c.set('b', null);
  expect(c.get('a')).toEqual({ v: 1 });
  expect(c.get('b')).toBeNull();
});

test('the least recently used entry goes first when the cache is full', () => {
  const { c } = cache(3);
  c.set('a', { v: 1 });
  c.set('b', { v: 2 });
  c.set('c', { v: 3 });
  c.get('a');
  c.set('d', { v: 4 });
  expect(c.size).toBe(3);
  expect(c.get('b')).toBeUndefined();
  expect(['a', 'c', 'd'].map((k) => c.get(k)?.v)).toEqual([1, 3, 4]);
});

test('entries expire: unknown serials sooner than known devices', () => {
  const { c, clock } = cache();
  c.set('known', { v: 1 });
  c.set('unknown', null);
  clock.now = 100;
  expect(c.get('unknown')).toBeUndefined();
  expect(c.get('known')).toEqual({ v: 1 });
  clock.now = 1000;
  expect(c.get('known')).toBeUndefined();
  expect(c.size).toBe(0);
});

test('an update keeps the expiry of the read; it does not add an entry; delete removes one', () => {
  const { c, clock } = cache();
  c.set('a', { v: 1 });
  clock.now = 900;
  c.update('a', { v: 2 });
  c.update('missing', { v: 9 });
  expect(c.get('a')).toEqual({ v: 2 });
  expect(c.get('missing')).toBeUndefined();
  clock.now = 1000;
  expect(c.get('a')).toBeUndefined();
  c.set('b', { v: 3 });
  c.delete('b');
  expect(c.get('b')).toBeUndefined();
});

test('a read moves an entry to the back only from the older half of the order', () => {
  const { c } = cache(4);
  for (const k of ['a', 'b', 'c', 'd']) c.set(k, { v: 1 });
  c.get('a'); // older half: to the back (b, c, d, a)
  c.get('c'); // newer half: stays
  c.set('e', { v: 1 });
  expect(c.get('b')).toBeUndefined();
  c.set('f', { v: 1 });
  // c kept its place, so it goes before d (an exact LRU would keep c and drop d).
  expect(['c', 'd', 'a', 'e', 'f'].map((k) => c.get(k) !== undefined)).toEqual([
    false,
    true,
    true,
    true,
    true,
  ]);
  expect(c.size).toBe(4);
});
