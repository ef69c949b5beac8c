import { createHash } from 'node:crypto';
import { QueueStore } from '../../../lab/runtime/queues';
import { SqsApi } from '../../../lab/runtime/sqs-api';

const URL_OF = (name: string) => `https://sqs.us-east-1.amazonaws.com/123456789012/${name}`;

describe('the SQS API of the lab queues (AWS JSON 1.0)', () => {
  let queues: QueueStore;
  let api: SqsApi;
  let endpoint: string;

  const call = async (op: string, body: unknown) => {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `AmazonSQS.${op}`,
        authorization: 'AWS4-HMAC-SHA256 Credential=lab/20260101/us-east-1/sqs/aws4_request, Signature=x',
      },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      query: res.headers.get('x-amzn-query-error'),
      json: (await res.json()) as Record<string, unknown>,
    };
  };

  beforeAll(async () => {
    queues = new QueueStore();
    queues.add({
      logicalId: 'Dlq',
      name: 'health-dlq',
      url: URL_OF('health-dlq'),
      arn: 'arn:aws:sqs:us-east-1:123456789012:health-dlq',
    });
    api = new SqsApi(queues);
    endpoint = await api.start();
  });
  afterAll(() => api.stop());

  test('SendMessageBatch: every entry answered with its id, message id and MD5 of the body', async () => {
    const bodies = ['{"reason":"UNKNOWN_DEVICE"}', '{"reason":"MALFORMED"}'];
    const out = await call('SendMessageBatch', {
      QueueUrl: URL_OF('health-dlq'),
      Entries: bodies.map((b, i) => ({ Id: String(i), MessageBody: b })),
    });
    expect(out.status).toBe(200);
    expect(out.json).toEqual({
      Successful: bodies.map((b, i) => ({
        Id: String(i),
        MessageId: expect.any(String),
        MD5OfMessageBody: createHash('md5').update(b).digest('hex'),
      })),
      Failed: [],
    });
    expect(queues.messages('health-dlq').map((m) => m.json)).toEqual([
      { reason: 'UNKNOWN_DEVICE' },
      { reason: 'MALFORMED' },
    ]);
  });

  test('ReceiveMessage hides what it returns until DeleteMessage or the visibility timeout', async () => {
    const first = await call('ReceiveMessage', {
      QueueUrl: URL_OF('health-dlq'),
      MaxNumberOfMessages: 1,
      VisibilityTimeout: 30,
    });
    const [m] = first.json.Messages as { ReceiptHandle: string; Body: string; MD5OfBody: string }[];
    expect(m.Body).toBe('{"reason":"UNKNOWN_DEVICE"}');
    const attrs = await call('GetQueueAttributes', {
      QueueUrl: URL_OF('health-dlq'),
      AttributeNames: ['All'],
    });
    expect(attrs.json.Attributes).toMatchObject({
      ApproximateNumberOfMessages: '1',
      ApproximateNumberOfMessagesNotVisible: '1',
    });
    expect(
      await call('DeleteMessage', { QueueUrl: URL_OF('health-dlq'), ReceiptHandle: m.ReceiptHandle }),
    ).toMatchObject({ status: 200 });
    expect(queues.messages('health-dlq')).toHaveLength(1);
    expect(
      await call('DeleteMessage', { QueueUrl: URL_OF('health-dlq'), ReceiptHandle: m.ReceiptHandle }),
    ).toMatchObject({
      status: 400,
      json: { __type: 'com.amazonaws.sqs#ReceiptHandleIsInvalid' },
    });
  });

  test('GetQueueUrl, ListQueues, PurgeQueue', async () => {
    expect((await call('GetQueueUrl', { QueueName: 'health-dlq' })).json).toEqual({
      QueueUrl: URL_OF('health-dlq'),
    });
    expect((await call('ListQueues', { QueueNamePrefix: 'health' })).json).toEqual({
      QueueUrls: [URL_OF('health-dlq')],
    });
    await call('PurgeQueue', { QueueUrl: URL_OF('health-dlq') });
    expect(queues.messages('health-dlq')).toEqual([]);
  });

  test('errors as SQS answers them: unknown queue, batch limits, unsupported operations', async () => {
    expect(await call('SendMessage', { QueueUrl: URL_OF('nope'), MessageBody: 'x' })).toEqual({
      status: 400,
      query: 'AWS.SimpleQueueService.NonExistentQueue;Sender',
      json: { __type: 'com.amazonaws.sqs#QueueDoesNotExist', message: expect.stringContaining('nope') },
    });
    const eleven = Array.from({ length: 11 }, (_, i) => ({ Id: String(i), MessageBody: 'x' }));
    expect(
      (await call('SendMessageBatch', { QueueUrl: URL_OF('health-dlq'), Entries: eleven })).json,
    ).toMatchObject({
      __type: 'com.amazonaws.sqs#TooManyEntriesInBatchRequest',
    });
    const big = [{ Id: '0', MessageBody: 'x'.repeat(256 * 1024 + 1) }];
    expect(
      (await call('SendMessageBatch', { QueueUrl: URL_OF('health-dlq'), Entries: big })).json,
    ).toMatchObject({
      __type: 'com.amazonaws.sqs#BatchRequestTooLong',
    });
    expect((await call('CreateQueue', { QueueName: 'x' })).json).toMatchObject({
      __type: 'com.amazonaws.sqs#UnsupportedOperation',
      message: 'CreateQueue is not emulated by the lab',
    });
  });
});
