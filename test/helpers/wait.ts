/**
 * Test helper: wait for a condition that asynchronous work makes true. The wait is driven by the
 * condition and only bounded by time: it resolves as soon as `condition` holds (checked now and
 * every `intervalMs`), and rejects naming `what` when `timeoutMs` passes first. A test asserts on
 * what happened once the condition holds, never on how long it took.
 */
export async function until(
  condition: () => boolean,
  what: string,
  { timeoutMs = 10_000, intervalMs = 5 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
