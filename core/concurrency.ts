/**
 * Bounded concurrency for a list of asynchronous calls (a batch of registry writes, a page of S3
 * reads): pure, no timers and no dependency.
 */

/**
 * Map `fn` over `items` with at most `limit` calls in flight, starting them in the order of
 * `items`; the results come in that order too, whatever order the calls finish in.
 *
 * When a call rejects, no further item is started; the calls already in flight are awaited, and
 * the returned promise then rejects with the first rejection. A `limit` that is not a whole
 * number of at least 1 rejects with a RangeError before any call.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`mapLimit: limit must be a whole number of at least 1, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index], index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
