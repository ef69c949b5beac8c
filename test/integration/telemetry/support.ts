/**
 * Support for the health consumer's integration tests: Kinesis events shaped as Lambda delivers
 * them (records built by the health rule's own record builder), a loopback stand-in for the SQS
 * dead-letter queue (AWS JSON 1.0 SendMessageBatch), a fault-injecting proxy in front of dynalite,
 * and a capture of the function's stdout (EMF documents and log lines).
 */
import { createHash } from 'node:crypto';
import { createServer, IncomingMessage, request, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { type HealthReport, toStreamRecord } from '../../../core/telemetry';

export const HEALTH_ENTRY = 'lambda/telemetry/health-consumer.handler.ts';
export const STREAM_ARN = 'arn:aws:kinesis:us-east-1:123456789012:stream/fleet-telemetry';
export const CERT = 'c'.repeat(64);
/** A receive time used as the tests' "now" (2025-10-09T08:53:20Z). */
export const T0 = 1_760_000_000_000;

let sequence = 0n;
const SEQUENCE_BASE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n;

/** A health report with healthy defaults. */
export function report(over: Partial<HealthReport> = {}): HealthReport {
  return {
    ts: T0,
    fw: '1.0.0',
    bootId: 'boot-1',
    uptimeS: 600,
    resetReason: 'POWER_ON',
    heapFreeB: 60_000,
    heapMinB: 40_000,
    rssiDbm: -60,
    ...over,
  };
}

/** A Kinesis record holding `data` (a document is serialized as JSON), with a new sequence number. */
export function kinesisRecord(data: unknown, partitionKey: string, arrivalMs = T0): KinesisStreamRecord {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  const sequenceNumber = (SEQUENCE_BASE + ++sequence).toString();
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey,
      sequenceNumber,
      data: Buffer.from(text, 'utf8').toString('base64'),
      approximateArrivalTimestamp: arrivalMs / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `shardId-000000000000:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/health-consumer',
    awsRegion: 'us-east-1',
    eventSourceARN: STREAM_ARN,
  };
}

/** The record the health rule writes for `payload` published by `thing`, received at `receivedAt`. */
export function healthRecord(thing: string, payload: unknown, receivedAt = T0): KinesisStreamRecord {
  const doc = toStreamRecord('health', payload, {
    thing,
    clientId: thing,
    principal: CERT,
    receivedAt,
    traceId: '00000000-0000-4000-8000-000000000000',
  });
  return kinesisRecord(doc, thing, receivedAt);
}

/** A report of `thing`, received `receivedAt` (defaults: one second after the report time). */
export function reportRecord(
  thing: string,
  over: Partial<HealthReport> = {},
  receivedAt?: number,
): KinesisStreamRecord {
  const r = report(over);
  return healthRecord(thing, r, receivedAt ?? r.ts + 1000);
}

export const kinesisEvent = (...records: KinesisStreamRecord[]): KinesisStreamEvent => ({ Records: records });

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });

/** One message the fake queue took. */
export interface QueuedMessage {
  body: string;
  doc: Record<string, unknown>;
}

/**
 * Loopback stand-in for Amazon SQS: answers SendMessageBatch in the AWS JSON 1.0 protocol with
 * each body's MD5. `mode`: `ok`; `refuse` (every entry Failed, SenderFault); `error500` (every
 * request answered 500 InternalError); `badDigest` (every entry taken, with a wrong MD5);
 * `serverFaultOnce` (every entry of the next request Failed without SenderFault, then `ok`).
 */
export interface FakeSqs {
  queueUrl: string;
  messages: QueuedMessage[];
  requests: {
    target: string;
    contentType: string;
    authorization: string;
    queueUrl: string;
    entries: number;
  }[];
  mode: 'ok' | 'refuse' | 'error500' | 'badDigest' | 'serverFaultOnce';
  stop(): Promise<void>;
}

export async function startFakeSqs(): Promise<FakeSqs> {
  const state: Omit<FakeSqs, 'queueUrl' | 'stop'> = { messages: [], requests: [], mode: 'ok' };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const text = await readBody(req);
    const body = JSON.parse(text) as { QueueUrl: string; Entries: { Id: string; MessageBody: string }[] };
    state.requests.push({
      target: String(req.headers['x-amz-target']),
      contentType: String(req.headers['content-type']),
      authorization: String(req.headers.authorization),
      queueUrl: body.QueueUrl,
      entries: body.Entries.length,
    });
    const json = (status: number, doc: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(doc));
    };
    if (state.mode === 'error500')
      return json(500, { __type: 'com.amazonaws.sqs#InternalError', message: 'injected' });
    if (state.mode === 'refuse' || state.mode === 'serverFaultOnce') {
      const senderFault = state.mode === 'refuse';
      if (state.mode === 'serverFaultOnce') state.mode = 'ok';
      const Failed = body.Entries.map((e) => ({
        Id: e.Id,
        SenderFault: senderFault,
        Code: 'InvalidMessageContents',
        Message: 'injected',
      }));
      return json(200, { Successful: [], Failed });
    }
    const Successful = body.Entries.map((e) => {
      const md5 = createHash('md5').update(e.MessageBody, 'utf8').digest('hex');
      state.messages.push({ body: e.MessageBody, doc: JSON.parse(e.MessageBody) });
      return {
        Id: e.Id,
        MessageId: `m-${state.messages.length}`,
        MD5OfMessageBody: state.mode === 'badDigest' ? '0'.repeat(32) : md5,
      };
    });
    json(200, { Successful, Failed: [] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    queueUrl: `http://127.0.0.1:${port}/123456789012/fleet-health-dlq`,
    stop: () => close(server),
  });
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * A proxy in front of dynalite that fails chosen calls with a ValidationException (which the SDK
 * does not retry, like a throttle that outlasted the retries): UpdateItem of the serials in
 * `failUpdates`, and the next `failTrailPuts` PutItem calls on the Events table. It counts the
 * UpdateItem calls per serial.
 */
export interface DynamoFaults {
  endpoint: string;
  failUpdates: Set<string>;
  failTrailPuts: number;
  failBatchGets: number;
  updates: Map<string, number>;
  stop(): Promise<void>;
}

export async function startFaultyDynamo(target: string, eventsTable: () => string): Promise<DynamoFaults> {
  const url = new URL(target);
  const state = {
    failUpdates: new Set<string>(),
    failTrailPuts: 0,
    failBatchGets: 0,
    updates: new Map<string, number>(),
  };
  const server = createServer(async (req, res) => {
    const text = await readBody(req);
    const op = String(req.headers['x-amz-target'] ?? '')
      .split('.')
      .pop();
    const body = JSON.parse(text) as { TableName?: string; Key?: { serial?: { S?: string } } };
    const fail = (): void => {
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(
        JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'injected' }),
      );
    };
    if (op === 'UpdateItem') {
      const serial = body.Key?.serial?.S ?? '';
      state.updates.set(serial, (state.updates.get(serial) ?? 0) + 1);
      if (state.failUpdates.has(serial)) return fail();
    }
    if (op === 'PutItem' && body.TableName === eventsTable() && state.failTrailPuts > 0) {
      state.failTrailPuts--;
      return fail();
    }
    if (op === 'BatchGetItem' && state.failBatchGets > 0) {
      state.failBatchGets--;
      return fail();
    }
    const upstream = request(
      { host: url.hostname, port: url.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { endpoint: `http://127.0.0.1:${port}`, stop: () => close(server) });
}

/** EMF documents (stdout) and log lines (stdout and, for warnings and errors, stderr) the function wrote. */
export interface Stdout {
  emf(): EmfDocument[];
  logs(): Record<string, unknown>[];
  clear(): void;
  restore(): void;
}

export interface EmfDocument extends Record<string, unknown> {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
}

export function captureStdout(): Stdout {
  const lines: string[] = [];
  const capture = (chunk: string | Uint8Array): boolean => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  };
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(capture),
    jest.spyOn(process.stderr, 'write').mockImplementation(capture),
  ];
  const docs = (): Record<string, unknown>[] =>
    lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return {
    emf: () => docs().filter((d): d is EmfDocument => '_aws' in d),
    logs: () => docs().filter((d) => !('_aws' in d)),
    clear: () => void lines.splice(0),
    restore: () => spies.forEach((s) => s.mockRestore()),
  };
}
