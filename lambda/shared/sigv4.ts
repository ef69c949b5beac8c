/**
 * Pieces shared by the hand-signed AWS requests (iot-certificates.ts, sqs.ts): Node's SHA-256 in
 * the shape the SDK's SigV4 signer expects, the network errors worth a second attempt, and a wait
 * an abort signal can cut.
 */
import { createHash, createHmac } from 'node:crypto';
import type { Checksum, SourceData } from '@smithy/types';

/** Node's SHA-256 in the shape the signer expects (HMAC when given a secret). */
export class Sha256 implements Checksum {
  private hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('Sha256.reset is not supported; create a new instance');
  }
}

function toBytes(data: SourceData): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** Node socket errors a second connection can get past (the SDK's transient network codes). */
const RETRYABLE_NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE']);

/**
 * A network error another attempt can get past: connection reset or refused, socket hang-up,
 * broken pipe, the HTTP handler's `TimeoutError`. Duck-typed: errors raised inside Node's own
 * modules may come from another realm.
 */
export function isTransientNetworkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  return (
    (typeof code === 'string' && RETRYABLE_NETWORK_CODES.has(code)) ||
    name === 'TimeoutError' ||
    message === 'socket hang up'
  );
}

/** Wait `ms`, or reject with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = (): void => {
      signal?.removeEventListener('abort', abort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const abort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * Full jitter as the SDK's standard retry strategy: a random wait below 100 ms after the first
 * attempt, 200 ms after the second, doubling up to 1 s.
 */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(1000, 100 * 2 ** (attempt - 1));
}
