/**
 * The SQS API of the lab's queues (./queues.ts), for functions and the CLI through
 * AWS_ENDPOINT_URL_SQS: the AWS JSON 1.0 protocol the current AWS SDKs speak (`POST /`,
 * `X-Amz-Target: AmazonSQS.<Operation>`), on 127.0.0.1, in the lab's process (SQS traffic is a
 * dead-letter trickle).
 *
 * Operations: SendMessage, SendMessageBatch (MD5OfMessageBody per entry, the 10-entry and
 * 256 KiB limits), ReceiveMessage (visibility timeout, MaxNumberOfMessages up to 10, no long
 * polling wait beyond what is there), DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility,
 * GetQueueUrl, GetQueueAttributes (ApproximateNumberOfMessages[NotVisible], QueueArn), ListQueues,
 * PurgeQueue. Others answer 400 `UnsupportedOperation` naming the operation. Requests are not
 * authenticated (IAM is not evaluated by the lab); FIFO ordering, deduplication, delays, message
 * attributes and redrive policies are not emulated.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { md5, type QueueInfo, type QueueStore } from './queues';

const MAX_BATCH = 10;
const MAX_BYTES = 256 * 1024;

class SqsError extends Error {
  constructor(
    readonly type: string,
    readonly queryCode: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const noQueue = (ref: unknown): SqsError =>
  new SqsError(
    'QueueDoesNotExist',
    'AWS.SimpleQueueService.NonExistentQueue',
    `The specified queue does not exist: ${String(ref)}`,
  );

export class SqsApi {
  private server?: Server;
  /** Received messages: id → visible again at (epoch ms). */
  private readonly invisible = new Map<string, number>();
  /** Receipt handle → message id. */
  private readonly receipts = new Map<string, string>();
  private receiptSeq = 0;

  constructor(private readonly queues: QueueStore) {}

  async start(host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    this.server = server;
    return `http://${host}:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : '';
    let status = 200;
    let out: unknown;
    const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.0' };
    try {
      if (!op)
        throw new SqsError(
          'InvalidAction',
          'InvalidAction',
          'the lab SQS endpoint speaks the AWS JSON 1.0 protocol (X-Amz-Target: AmazonSQS.<Operation>)',
        );
      const text = Buffer.concat(chunks).toString('utf8');
      out = this.operation(op, (text ? JSON.parse(text) : {}) as Record<string, unknown>);
    } catch (e) {
      const err =
        e instanceof SqsError
          ? e
          : new SqsError('InvalidParameterValue', 'InvalidParameterValue', (e as Error).message);
      status = err.status;
      headers['x-amzn-query-error'] = `${err.queryCode};Sender`;
      out = { __type: `com.amazonaws.sqs#${err.type}`, message: err.message };
    }
    const body = JSON.stringify(out ?? {});
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private queue(body: Record<string, unknown>): QueueInfo {
    const ref = body.QueueUrl;
    const q = typeof ref === 'string' ? this.queues.find(ref) : undefined;
    if (!q) throw noQueue(ref);
    return q;
  }

  private send(q: QueueInfo, bodyText: unknown): { MessageId: string; MD5OfMessageBody: string } {
    if (typeof bodyText !== 'string' || bodyText.length === 0)
      throw new SqsError(
        'MissingParameter',
        'MissingParameter',
        'The request must contain the parameter MessageBody.',
      );
    if (Buffer.byteLength(bodyText) > MAX_BYTES)
      throw new SqsError(
        'InvalidParameterValue',
        'InvalidParameterValue',
        `MessageBody is longer than ${MAX_BYTES} bytes`,
      );
    const m = this.queues.send(q.url, bodyText, 'sqs-api');
    return { MessageId: m.messageId, MD5OfMessageBody: md5(bodyText) };
  }

  private visible(q: QueueInfo): ReturnType<QueueStore['messages']> {
    const now = Date.now();
    return this.queues.messages(q.name).filter((m) => (this.invisible.get(m.messageId) ?? 0) <= now);
  }

  private operation(op: string, body: Record<string, unknown>): unknown {
    switch (op) {
      case 'SendMessage':
        return this.send(this.queue(body), body.MessageBody);
      case 'SendMessageBatch': {
        const q = this.queue(body);
        const entries = Array.isArray(body.Entries) ? (body.Entries as Record<string, unknown>[]) : [];
        if (entries.length === 0)
          throw new SqsError(
            'EmptyBatchRequest',
            'AWS.SimpleQueueService.EmptyBatchRequest',
            'There should be at least one SendMessageBatchRequestEntry in the request.',
          );
        if (entries.length > MAX_BATCH)
          throw new SqsError(
            'TooManyEntriesInBatchRequest',
            'AWS.SimpleQueueService.TooManyEntriesInBatchRequest',
            `Maximum number of entries per request are ${MAX_BATCH}.`,
          );
        const total = entries.reduce((n, e) => n + Buffer.byteLength(String(e.MessageBody ?? '')), 0);
        if (total > MAX_BYTES)
          throw new SqsError(
            'BatchRequestTooLong',
            'AWS.SimpleQueueService.BatchRequestTooLong',
            `Batch requests cannot be longer than ${MAX_BYTES} bytes.`,
          );
        const Successful: unknown[] = [];
        const Failed: unknown[] = [];
        for (const e of entries) {
          try {
            Successful.push({ Id: e.Id, ...this.send(q, e.MessageBody) });
          } catch (err) {
            Failed.push({
              Id: e.Id,
              SenderFault: true,
              Code: (err as SqsError).type ?? 'InternalError',
              Message: (err as Error).message,
            });
          }
        }
        return { Successful, Failed };
      }
      case 'ReceiveMessage': {
        const q = this.queue(body);
        const max = Math.min(MAX_BATCH, Math.max(1, Number(body.MaxNumberOfMessages ?? 1)));
        const timeoutS = Number(body.VisibilityTimeout ?? 30);
        const until = Date.now() + timeoutS * 1000;
        const Messages = this.visible(q)
          .slice(0, max)
          .map((m) => {
            this.invisible.set(m.messageId, until);
            const handle = `${m.messageId}#${++this.receiptSeq}`;
            this.receipts.set(handle, m.messageId);
            return {
              MessageId: m.messageId,
              ReceiptHandle: handle,
              MD5OfBody: md5(m.body),
              Body: m.body,
              Attributes: { SentTimestamp: String(m.sentAt), ApproximateReceiveCount: '1' },
            };
          });
        return Messages.length ? { Messages } : {};
      }
      case 'DeleteMessage': {
        const q = this.queue(body);
        this.delete(q, body.ReceiptHandle);
        return {};
      }
      case 'DeleteMessageBatch': {
        const q = this.queue(body);
        const entries = Array.isArray(body.Entries) ? (body.Entries as Record<string, unknown>[]) : [];
        const Successful: unknown[] = [];
        const Failed: unknown[] = [];
        for (const e of entries) {
          try {
            this.delete(q, e.ReceiptHandle);
            Successful.push({ Id: e.Id });
          } catch (err) {
            Failed.push({
              Id: e.Id,
              SenderFault: true,
              Code: (err as SqsError).type,
              Message: (err as Error).message,
            });
          }
        }
        return { Successful, Failed };
      }
      case 'ChangeMessageVisibility': {
        this.queue(body);
        const id = this.receipts.get(String(body.ReceiptHandle));
        if (!id)
          throw new SqsError(
            'ReceiptHandleIsInvalid',
            'ReceiptHandleIsInvalid',
            'The input receipt handle is invalid.',
          );
        this.invisible.set(id, Date.now() + Number(body.VisibilityTimeout ?? 0) * 1000);
        return {};
      }
      case 'GetQueueUrl': {
        const q = this.queues.find(String(body.QueueName ?? ''));
        if (!q) throw noQueue(body.QueueName);
        return { QueueUrl: q.url };
      }
      case 'GetQueueAttributes': {
        const q = this.queue(body);
        const all = this.queues.messages(q.name).length;
        const visible = this.visible(q).length;
        return {
          Attributes: {
            QueueArn: q.arn,
            ApproximateNumberOfMessages: String(visible),
            ApproximateNumberOfMessagesNotVisible: String(all - visible),
            ApproximateNumberOfMessagesDelayed: '0',
          },
        };
      }
      case 'ListQueues': {
        const prefix = typeof body.QueueNamePrefix === 'string' ? body.QueueNamePrefix : '';
        return {
          QueueUrls: this.queues
            .list()
            .filter((q) => q.name.startsWith(prefix))
            .map((q) => q.url),
        };
      }
      case 'PurgeQueue': {
        const q = this.queue(body);
        for (const m of this.queues.messages(q.name)) this.queues.delete(q.name, m.messageId);
        return {};
      }
      default:
        throw new SqsError(
          'UnsupportedOperation',
          'AWS.SimpleQueueService.UnsupportedOperation',
          `${op} is not emulated by the lab`,
        );
    }
  }

  private delete(q: QueueInfo, handle: unknown): void {
    const id = this.receipts.get(String(handle));
    if (!id)
      throw new SqsError(
        'ReceiptHandleIsInvalid',
        'ReceiptHandleIsInvalid',
        'The input receipt handle is invalid.',
      );
    this.queues.delete(q.name, id);
    this.receipts.delete(String(handle));
    this.invisible.delete(id);
  }
}
