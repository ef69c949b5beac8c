/** The per-device ledger: retries, duplicates and out-of-order execution events. */
import {
  countOutcomes,
  mergeExecution,
  type ExecutionObservation,
  type ExecutionRecord,
} from '../../../core/rollout-ledger';

const o = (
  status: ExecutionObservation['status'],
  over: Partial<ExecutionObservation> = {},
): ExecutionObservation => ({
  jobId: 'j',
  thing: 't',
  status,
  executionNumber: 1,
  ...over,
});

const fold = (obs: ExecutionObservation[]) =>
  obs.reduce<ExecutionRecord | undefined>((r, x, i) => mergeExecution(r, x, 1000 + i), undefined);

test.each<[string, ExecutionObservation[], string]>([
  [
    'in order',
    [o('QUEUED'), o('IN_PROGRESS', { versionNumber: 2 }), o('SUCCEEDED', { versionNumber: 3 })],
    'SUCCEEDED',
  ],
  [
    'a duplicate terminal event',
    [o('SUCCEEDED', { versionNumber: 3 }), o('SUCCEEDED', { versionNumber: 3 })],
    'SUCCEEDED',
  ],
  [
    'IN_PROGRESS after SUCCEEDED (out of order)',
    [o('SUCCEEDED', { versionNumber: 3 }), o('IN_PROGRESS', { versionNumber: 2 })],
    'SUCCEEDED',
  ],
  ['QUEUED from a stale listing after FAILED', [o('FAILED', { versionNumber: 3 }), o('QUEUED')], 'FAILED'],
  [
    'a listing without version after an event with one',
    [o('IN_PROGRESS', { versionNumber: 4 }), o('SUCCEEDED')],
    'SUCCEEDED',
  ],
  [
    'retry: FAILED then SUCCEEDED on attempt 1',
    [o('FAILED'), o('IN_PROGRESS', { retryAttempt: 1 }), o('SUCCEEDED', { retryAttempt: 1 })],
    'SUCCEEDED',
  ],
  [
    'retry events out of order',
    [o('SUCCEEDED', { retryAttempt: 1 }), o('FAILED', { retryAttempt: 0 })],
    'SUCCEEDED',
  ],
  [
    'a retry in progress keeps the failure',
    [o('TIMED_OUT'), o('IN_PROGRESS', { retryAttempt: 1 })],
    'TIMED_OUT',
  ],
  ['REJECTED is sticky', [o('REJECTED'), o('SUCCEEDED', { retryAttempt: 1 })], 'REJECTED'],
  [
    'SUCCEEDED is sticky against a later CANCELED',
    [o('SUCCEEDED', { versionNumber: 3 }), o('CANCELED', { versionNumber: 4 })],
    'SUCCEEDED',
  ],
  [
    'a later execution number wins over FAILED',
    [o('FAILED'), o('SUCCEEDED', { executionNumber: 2 })],
    'SUCCEEDED',
  ],
])('%s → %s', (_name, obs, outcome) => {
  expect(fold(obs)?.outcome).toBe(outcome);
});

test('a repeated observation returns the same record (no change to record or trail)', () => {
  const r = mergeExecution(undefined, o('SUCCEEDED', { lastUpdatedAt: 5 }), 9);
  expect(mergeExecution(r, o('SUCCEEDED', { lastUpdatedAt: 5 }), 10)).toBe(r);
  expect(r.finishedAt).toBe(5);
});

test('a device failing then succeeding on retry counts once, as succeeded', () => {
  const a = fold([o('FAILED', { thing: 'a' }), o('SUCCEEDED', { thing: 'a', retryAttempt: 1 })]);
  const b = fold([o('SUCCEEDED', { thing: 'b' })]);
  const counts = countOutcomes([a, b].filter((x): x is ExecutionRecord => x !== undefined));
  expect(counts.SUCCEEDED).toBe(2);
  expect(counts.FAILED).toBe(0);
});
