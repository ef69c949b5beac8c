import { mapLimit } from '../../../core/concurrency';

/**
 * Calls the test finishes by hand: `started` lists the items in the order their calls began,
 * `finish(item)` / `fail(item)` settles that call. Nothing waits on a clock.
 */
function controlled<T>() {
  const started: T[] = [];
  const pending = new Map<T, { resolve: (v: string) => void; reject: (e: Error) => void }>();
  const fn = (item: T): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      started.push(item);
      pending.set(item, { resolve, reject });
    });
  const settle = async (
    item: T,
    how: (p: { resolve: (v: string) => void; reject: (e: Error) => void }) => void,
  ) => {
    const p = pending.get(item);
    if (!p) throw new Error(`the call for ${String(item)} has not started`);
    pending.delete(item);
    how(p);
    await drained();
  };
  return {
    fn,
    started,
    inFlight: () => pending.size,
    finish: (item: T) => settle(item, (p) => p.resolve(`r${String(item)}`)),
    fail: (item: T, message: string) => settle(item, (p) => p.reject(new Error(message))),
  };
}

/** Let every promise callback that is ready run (an event-loop turn, not a delay). */
const drained = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('mapLimit', () => {
  test('starts at most `limit` calls, the next one as soon as one finishes, in the order of the items', async () => {
    const c = controlled<number>();
    const all = mapLimit([0, 1, 2, 3, 4], 2, c.fn);
    await drained();
    expect(c.started).toEqual([0, 1]);
    await c.finish(1);
    expect(c.started).toEqual([0, 1, 2]);
    expect(c.inFlight()).toBe(2);
    await c.finish(0);
    await c.finish(2);
    expect(c.started).toEqual([0, 1, 2, 3, 4]);
    expect(c.inFlight()).toBe(2);
    await c.finish(4);
    await c.finish(3);
    expect(await all).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']); // the items' order, not the finishing order
  });

  test('a limit above the number of items starts them all at once', async () => {
    const c = controlled<string>();
    const all = mapLimit(['a', 'b', 'c'], 16, c.fn);
    await drained();
    expect(c.started).toEqual(['a', 'b', 'c']);
    for (const item of ['c', 'a', 'b']) await c.finish(item);
    expect(await all).toEqual(['ra', 'rb', 'rc']);
  });

  test('passes each item its index', async () => {
    expect(await mapLimit(['x', 'y', 'z'], 2, async (item, i) => `${i}:${item}`)).toEqual([
      '0:x',
      '1:y',
      '2:z',
    ]);
  });

  test('no items: no call, no results', async () => {
    const fn = jest.fn(async () => 1);
    expect(await mapLimit([], 4, fn)).toEqual([]);
    expect(fn).not.toHaveBeenCalled();
  });

  test('after a rejection no item starts; the calls in flight are awaited, then the first rejection is thrown', async () => {
    const c = controlled<number>();
    let outcome: unknown;
    const all = mapLimit([0, 1, 2, 3, 4], 2, c.fn).then(
      (results) => (outcome = { results }),
      (error: Error) => (outcome = { error: error.message }),
    );
    await drained();
    await c.fail(0, 'first');
    expect(c.started).toEqual([0, 1]); // nothing new after the failure
    expect(outcome).toBeUndefined(); // call 1 is still in flight
    await c.fail(1, 'second');
    await all;
    expect(outcome).toEqual({ error: 'first' });
    expect(c.started).toEqual([0, 1]);
  });

  test('a call that throws before returning a promise counts as a rejection', async () => {
    const seen: number[] = [];
    await expect(
      mapLimit([0, 1, 2], 1, (i) => {
        seen.push(i);
        if (i === 1) throw new Error('sync');
        return Promise.resolve(i);
      }),
    ).rejects.toThrow('sync');
    expect(seen).toEqual([0, 1]);
  });

  test.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'limit %s is refused before any call',
    async (limit) => {
      const fn = jest.fn(async () => 1);
      await expect(mapLimit([1, 2], limit, fn)).rejects.toThrow(RangeError);
      expect(fn).not.toHaveBeenCalled();
    },
  );
});
