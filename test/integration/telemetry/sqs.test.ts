/**
 * The hand-signed SQS SendMessageBatch (lambda/shared/sqs.ts) against a loopback SQS: requests
 * within SQS's batch limits, per-entry server faults retried, sender faults and oversize messages
 * refused, a digest mismatch taken as sent, the endpoint override, and an unreachable queue.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { httpHandler } from '../../../lambda/shared/clients';
import { createSqsBatchSender, SqsBatchSender, SqsMessage } from '../../../lambda/shared/sqs';
import { FakeSqs, startFakeSqs } from './support';

let sqs: FakeSqs;
let settingsClient: DynamoDBClient;

const sender = (env: Record<string, string | undefined> = {}): SqsBatchSender =>
  createSqsBatchSender({
    handler: httpHandler({ connectionTimeoutMs: 500, requestTimeoutMs: 1000, maxAttempts: 3 }),
    settings: settingsClient.config,
    maxAttempts: 3,
    env,
  });

const SENT = { failed: new Map(), digestMismatches: [] };

const messages = (n: number, bytes = 20): SqsMessage[] =>
  Array.from({ length: n }, (_, i) => ({ id: `m${i}`, body: JSON.stringify({ i, pad: 'x'.repeat(bytes) }) }));

beforeAll(async () => {
  sqs = await startFakeSqs();
  settingsClient = new DynamoDBClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDSQSTEST', secretAccessKey: 'secret' },
  });
});

beforeEach(() => {
  sqs.messages.splice(0);
  sqs.requests.splice(0);
  sqs.mode = 'ok';
});

afterAll(async () => {
  settingsClient.destroy();
  await sqs.stop();
});

test('25 messages go in requests of at most 10 entries', async () => {
  expect(await sender()(sqs.queueUrl, messages(25))).toEqual(SENT);
  expect(sqs.requests.map((r) => r.entries).sort()).toEqual([10, 10, 5]);
  expect(sqs.messages.map((m) => (m.doc as { i: number }).i).sort((a, b) => a - b)).toEqual(
    Array.from({ length: 25 }, (_, i) => i),
  );
});

test('a request holds at most 256 KiB of message bodies; a larger message alone is refused unsent', async () => {
  const big = messages(3, 100 * 1024);
  const tooBig = { id: 'huge', body: 'y'.repeat(256 * 1024 + 1) };
  const { failed } = await sender()(sqs.queueUrl, [...big, tooBig]);
  expect([...failed.keys()]).toEqual(['huge']);
  expect(failed.get('huge')).toMatch(/over the SQS limit/);
  expect(sqs.requests.map((r) => r.entries).sort()).toEqual([1, 2]);
  expect(sqs.messages).toHaveLength(3);
});

test('entries SQS failed on its side are sent again; those it refused are reported', async () => {
  sqs.mode = 'serverFaultOnce';
  expect(await sender()(sqs.queueUrl, messages(3))).toEqual(SENT);
  expect(sqs.requests.map((r) => r.entries)).toEqual([3, 3]);
  expect(sqs.messages).toHaveLength(3);

  sqs.mode = 'refuse';
  const { failed } = await sender()(sqs.queueUrl, messages(2));
  expect([...failed.entries()]).toEqual([
    ['m0', 'SQS refused the message: InvalidMessageContents injected'],
    ['m1', 'SQS refused the message: InvalidMessageContents injected'],
  ]);
});

test('a digest that does not match: the message is on the queue, reported beside the result, not sent again', async () => {
  sqs.mode = 'badDigest';
  expect(await sender()(sqs.queueUrl, messages(3))).toEqual({
    failed: new Map(),
    digestMismatches: ['m0', 'm1', 'm2'],
  });
  expect(sqs.requests.map((r) => r.entries)).toEqual([3]);
  expect(sqs.messages).toHaveLength(3);
});

test('AWS_ENDPOINT_URL_SQS takes the request; the queue URL stays in the body', async () => {
  const endpoint = new URL(sqs.queueUrl).origin;
  const queueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/fleet-health-dlq';
  expect(await sender({ AWS_ENDPOINT_URL_SQS: endpoint })(queueUrl, messages(1))).toEqual(SENT);
  expect(sqs.requests).toEqual([expect.objectContaining({ queueUrl, entries: 1 })]);
});

test('an unreachable queue: every message is reported with the cause, after the retries', async () => {
  const { failed } = await sender()('http://127.0.0.1:9/123456789012/none', messages(2));
  expect(failed.size).toBe(2);
  expect(failed.get('m0')).toMatch(/ECONNREFUSED|connect/);
});
