import { backoffWindowMs, fullJitterDelayMs, resolveBackoff } from '../../../device/backoff';
import { classifyFailure } from '../../../device/agent';
import { RejectedError, TransportError } from '../../../device/mqtt-session';

const opts = { baseMs: 100, capMs: 3000 };

test.each([
  [0, 100],
  [1, 200],
  [4, 1600],
  [5, 3000],
  [60, 3000],
  [2000, 3000],
])('window after retry %i is min(cap, base*2^retry) = %i', (retry, window) => {
  expect(backoffWindowMs(retry, opts)).toBe(window);
});

test.each([0, 1, 3, 5, 12])('full jitter for retry %i stays in [0, window)', (retry) => {
  const window = backoffWindowMs(retry, opts);
  expect(fullJitterDelayMs(retry, opts, () => 0)).toBe(0);
  expect(fullJitterDelayMs(retry, opts, () => 0.25)).toBe(Math.floor(window * 0.25));
  const top = fullJitterDelayMs(retry, opts, () => 0.999999);
  expect(top).toBeLessThan(window);
  expect(top).toBeGreaterThanOrEqual(window - 1);
});

test('full jitter spreads over the whole window (not only the upper half)', () => {
  const values = Array.from({ length: 100 }, (_, i) => fullJitterDelayMs(3, opts, () => i / 100));
  expect(Math.min(...values)).toBe(0);
  expect(Math.max(...values)).toBeLessThan(800);
  expect(Math.max(...values)).toBeGreaterThan(780);
});

test('invalid backoff options are rejected with the fix', () => {
  expect(() => resolveBackoff({ maxAttempts: 0 })).toThrow(/maxAttempts an integer >= 1/);
  expect(resolveBackoff({ baseMs: 5 })).toMatchObject({ baseMs: 5, capMs: 20000, maxAttempts: 8 });
});

test.each([
  [new RejectedError('RegisterThing', 429, 'ThrottlingException', 'x'), true, 'throttled'],
  [new RejectedError('RegisterThing', 400, 'Throttling', 'x'), true, 'throttled'],
  [new RejectedError('RegisterThing', 503, 'ServiceUnavailable', 'x'), true, 'serverError'],
  [new RejectedError('RegisterThing', 403, 'AccessDenied', 'x'), false, 'rejected'],
  [new RejectedError('RegisterThing', 400, 'InvalidCertificateOwnershipToken', 'x'), false, 'rejected'],
  [new TransportError('CONNECT_TIMEOUT', 'x'), true, 'transport'],
  [new TransportError('CONNECTION_LOST', 'x'), true, 'transport'],
  [new TransportError('RESPONSE_TIMEOUT', 'x'), true, 'transport'],
  [new TransportError('SUBSCRIBE_REFUSED', 'x'), false, 'transport'],
])('classifyFailure(%s) → retryable %s (%s)', (err, retryable, kind) => {
  expect(classifyFailure(err)).toMatchObject({ retryable, kind });
});

test.each([
  [
    new RejectedError('RegisterThing', 429, 'ThrottlingException', 'Rate exceeded'),
    'RegisterThing 429 ThrottlingException',
  ],
  [
    new RejectedError('CreateCertificateFromCsr', undefined, 'InternalFailure', 'x'),
    'CreateCertificateFromCsr ? InternalFailure',
  ],
  [
    new TransportError('CONNECT_FAILED', 'connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED 127.0.0.1:1'),
    'ECONNREFUSED 127.0.0.1:1',
  ],
  [new Error('boom'), 'boom'],
])('the groupable cause of %s is %j', (err, cause) => {
  expect(classifyFailure(err).cause).toBe(cause);
});
