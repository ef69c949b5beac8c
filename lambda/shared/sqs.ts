/**
 * Amazon SQS `SendMessageBatch` (AWS JSON 1.0 protocol: `POST /`, `X-Amz-Target:
 * AmazonSQS.SendMessageBatch`, SigV4 service `sqs`), issued with the AWS SDK's own signer and
 * HTTP handler, like iot-certificates.ts does for AWS IoT.
 *
 * Why not `@aws-sdk/client-sqs`: the health consumer needs this one call to hand records it
 * cannot use to its dead-letter queue, and its bundle shares the 300 KiB budget
 * (`MAX_BUNDLE_BYTES`) with the DynamoDB client and Powertools; the signer, the HTTP handler and
 * the credentials already come with the DynamoDB client, so this costs a few KiB
 * (docs/decisions.md, D21).
 *
 * As the SDK does by default (`useQueueUrlAsEndpoint`), the request goes to the host of the queue
 * URL, unless `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` names another endpoint. Credentials,
 * region and the SHA-256 implementation come from an SDK client's resolved configuration (the
 * DynamoDB client's).
 *
 * The MD5 digest SQS returns for each message body is checked, but a mismatch does not make the
 * message a failure: SQS answered it as Successful, so it is on the queue, and calling it failed
 * would have the caller send it again (a duplicate dead letter on every retry). It is reported
 * beside the result for the caller to log. The SDK's SQS client (`@aws-sdk/middleware-sdk-sqs`)
 * instead rejects the whole call ("Invalid MD5 checksum on messages: …") after SQS took every
 * message, which a retrying caller turns into duplicates too; it can only switch the check off
 * (`md5: false`).
 */
import { createHash } from 'node:crypto';
import { HttpRequest } from '@smithy/core/protocols';
import { NodeHttpHandler, streamCollector } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import type { ChecksumConstructor, HashConstructor } from '@smithy/types';
import type { SdkClientSettings } from './iot-certificates';
import { backoffMs, isTransientNetworkError, sleep } from './sigv4';

/** SQS limits of one SendMessageBatch request. */
export const SQS_BATCH_LIMITS = {
  /** Entries per request. */
  entries: 10,
  /**
   * Bytes of all message bodies of one request together (and so of one message). SQS accepts more
   * on queues configured for it; 256 KiB holds on every queue.
   */
  bytes: 256 * 1024,
} as const;

/** One message to send; `id` is the caller's and only names the message in the result. */
export interface SqsMessage {
  id: string;
  body: string;
}

/** What became of the messages of one send. */
export interface SqsSendResult {
  /** The messages that were NOT sent (caller's id -> why); empty when every message is on the queue. */
  failed: Map<string, string>;
  /**
   * Messages SQS took (they are on the queue, and not in `failed`) whose MD5 digest in the answer
   * does not match the body sent: worth a warning, not a second send.
   */
  digestMismatches: string[];
}

/** Send `messages` to the queue. Never rejects for a failed send: see {@link SqsSendResult}. */
export type SqsBatchSender = (
  queueUrl: string,
  messages: readonly SqsMessage[],
  abortSignal?: AbortSignal,
) => Promise<SqsSendResult>;

export interface SqsSenderOptions {
  /** HTTP handler with the caller's connect and request timeouts. */
  handler: NodeHttpHandler;
  /** Credentials, region and hash, e.g. the DynamoDB client's `config`. */
  settings: Pick<SdkClientSettings, 'credentials' | 'region'> & {
    sha256: ChecksumConstructor | HashConstructor;
  };
  /** Total attempts of a request, including the first. */
  maxAttempts: number;
  /** Environment holding the endpoint override variables. @default process.env */
  env?: Record<string, string | undefined>;
}

/** An SQS error answer. */
export class SqsRequestError extends Error {
  override readonly name = 'SqsRequestError';
  constructor(
    readonly statusCode: number,
    readonly errorType: string,
    message: string,
  ) {
    super(message);
  }
}

const RETRYABLE_TYPES = /Throttl|ServiceUnavailable|InternalError|InternalFailure|RequestTimeout/;

/** Whether another attempt of a whole request can succeed. */
export function isRetryableSqsError(err: unknown): boolean {
  if (err instanceof SqsRequestError) {
    return err.statusCode >= 500 || err.statusCode === 429 || RETRYABLE_TYPES.test(err.errorType);
  }
  return isTransientNetworkError(err);
}

interface BatchAnswer {
  Successful?: { Id: string; MD5OfMessageBody?: string }[];
  Failed?: { Id: string; SenderFault?: boolean; Code?: string; Message?: string }[];
}

const md5 = (s: string): string => createHash('md5').update(s, 'utf8').digest('hex');

/** Chunks within {@link SQS_BATCH_LIMITS}; a message over the byte limit alone is refused. */
function chunk(messages: readonly SqsMessage[], refused: Map<string, string>): SqsMessage[][] {
  const chunks: SqsMessage[][] = [];
  let current: SqsMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = Buffer.byteLength(m.body, 'utf8');
    if (size > SQS_BATCH_LIMITS.bytes) {
      refused.set(m.id, `message of ${size} bytes is over the SQS limit of ${SQS_BATCH_LIMITS.bytes}`);
      continue;
    }
    if (current.length === SQS_BATCH_LIMITS.entries || bytes + size > SQS_BATCH_LIMITS.bytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export function createSqsBatchSender(opts: SqsSenderOptions): SqsBatchSender {
  const { handler, settings } = opts;
  const env = opts.env ?? process.env;
  const signer = new SignatureV4({
    service: 'sqs',
    region: settings.region,
    credentials: settings.credentials,
    sha256: settings.sha256,
  });

  /** One request; resolves with SQS's per-entry answer, rejects on an error answer. */
  async function post(
    queueUrl: string,
    entries: readonly SqsMessage[],
    signal?: AbortSignal,
  ): Promise<BatchAnswer> {
    const url = new URL(env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL || new URL(queueUrl).origin);
    const body = JSON.stringify({
      QueueUrl: queueUrl,
      Entries: entries.map((e, i) => ({ Id: String(i), MessageBody: e.body })),
    });
    const request = new HttpRequest({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname.replace(/\/?$/, '/'),
      headers: {
        host: url.host,
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'AmazonSQS.SendMessageBatch',
        'content-length': String(Buffer.byteLength(body, 'utf8')),
      },
      body,
    });
    const signed = await signer.sign(request);
    const { response } = await handler.handle(signed as HttpRequest, { abortSignal: signal });
    const text = Buffer.from(await streamCollector(response.body)).toString('utf8');
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: reported below with the raw text
    }
    if (response.statusCode === 200) return parsed as BatchAnswer;
    const type = String(parsed.__type ?? response.headers['x-amzn-query-error'] ?? 'UnknownError')
      .split('#')
      .pop()!
      .split(';')[0];
    const message = String(parsed.message ?? parsed.Message ?? text.slice(0, 200));
    throw new SqsRequestError(
      response.statusCode,
      type,
      `SQS SendMessageBatch answered ${response.statusCode} ${type}: ${message}`,
    );
  }

  /** Send one chunk with retries; records what finally failed, and the digest mismatches, into `result`. */
  async function sendChunk(
    queueUrl: string,
    entries: SqsMessage[],
    result: SqsSendResult,
    signal?: AbortSignal,
  ): Promise<void> {
    const { failed } = result;
    let pending = entries;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const last = attempt >= opts.maxAttempts;
      let answer: BatchAnswer;
      try {
        answer = await post(queueUrl, pending, signal);
      } catch (err) {
        if (last || signal?.aborted || !isRetryableSqsError(err)) {
          for (const e of pending) failed.set(e.id, err instanceof Error ? err.message : String(err));
          return;
        }
        await sleep(backoffMs(attempt), signal).catch(() => undefined);
        continue;
      }
      const retry: SqsMessage[] = [];
      const answered = new Set<string>();
      for (const s of answer.Successful ?? []) {
        const e = pending[Number(s.Id)];
        if (!e) continue;
        answered.add(s.Id);
        // On the queue all the same: a warning for the caller, not a failure (see the module comment).
        if (s.MD5OfMessageBody !== undefined && s.MD5OfMessageBody !== md5(e.body))
          result.digestMismatches.push(e.id);
      }
      for (const f of answer.Failed ?? []) {
        const e = pending[Number(f.Id)];
        if (!e) continue;
        answered.add(f.Id);
        if (!f.SenderFault && !last) retry.push(e);
        else
          failed.set(e.id, `SQS refused the message: ${f.Code ?? 'UnknownError'} ${f.Message ?? ''}`.trim());
      }
      pending.forEach((e, i) => {
        if (!answered.has(String(i))) failed.set(e.id, 'SQS did not answer for the message');
      });
      pending = retry;
      if (pending.length > 0) await sleep(backoffMs(attempt), signal).catch(() => undefined);
    }
  }

  return async (queueUrl, messages, signal) => {
    const result: SqsSendResult = { failed: new Map(), digestMismatches: [] };
    await Promise.all(chunk(messages, result.failed).map((c) => sendChunk(queueUrl, c, result, signal)));
    return result;
  };
}
