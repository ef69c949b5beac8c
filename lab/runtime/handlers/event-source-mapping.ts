/**
 * AWS::Lambda::EventSourceMapping for Kinesis streams (a poller per shard) and for the lab's
 * in-memory SQS queues (delivery on send).
 *
 * Kinesis: batches of up to BatchSize records from StartingPosition, Lambda's Kinesis event
 * shape; with ReportBatchItemFailures the batch is retried from the first failed sequence
 * number, otherwise the whole batch is retried; after MaximumRetryAttempts (default -1 is
 * capped at 3 in the lab) the batch's on-failure record goes to DestinationConfig.OnFailure
 * (an SQS queue of the stack). BisectBatchOnFunctionError is not emulated.
 */
import { arn, type HandlerContext, type ResourceHandler } from './types';

interface KinesisEventRecord {
  kinesis: {
    kinesisSchemaVersion: '1.0';
    partitionKey: string;
    sequenceNumber: string;
    data: string;
    approximateArrivalTimestamp: number;
  };
  eventSource: 'aws:kinesis';
  eventVersion: '1.0';
  eventID: string;
  eventName: 'aws:kinesis:record';
  invokeIdentityArn: string;
  awsRegion: string;
  eventSourceARN: string;
}

function failedFrom(result: unknown, records: KinesisEventRecord[]): number {
  const failures = (result as { batchItemFailures?: { itemIdentifier?: string }[] } | null)
    ?.batchItemFailures;
  if (!Array.isArray(failures) || failures.length === 0) return -1;
  const ids = new Set(failures.map((f) => f.itemIdentifier));
  const idx = records.findIndex((r) => ids.has(r.kinesis.sequenceNumber));
  return idx < 0 ? 0 : idx;
}

function startKinesisMapping(ctx: HandlerContext, streamArn: string, fnArn: string): void {
  const p = ctx.properties;
  const stream = streamArn.slice(streamArn.indexOf('stream/') + 'stream/'.length);
  const batchSize = typeof p.BatchSize === 'number' ? p.BatchSize : 100;
  const reportItems =
    Array.isArray(p.FunctionResponseTypes) && p.FunctionResponseTypes.includes('ReportBatchItemFailures');
  const maxRetries =
    typeof p.MaximumRetryAttempts === 'number' && p.MaximumRetryAttempts >= 0 ? p.MaximumRetryAttempts : 3;
  const onFailure = (p.DestinationConfig as { OnFailure?: { Destination?: string } } | undefined)?.OnFailure
    ?.Destination;
  const startingPosition = p.StartingPosition === 'LATEST' ? 'LATEST' : 'TRIM_HORIZON';
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const sleep = (ms: number): Promise<void> =>
    new Promise((r) => {
      const t = setTimeout(() => {
        timers.delete(t);
        r();
      }, ms);
      t.unref();
      timers.add(t);
    });

  const pollShard = async (shardId: string): Promise<void> => {
    let iterator = await ctx.kinesis.shardIterator(stream, shardId, startingPosition);
    let pending: KinesisEventRecord[] = [];
    let attempts = 0;
    while (!stopped) {
      if (pending.length === 0) {
        const out = await ctx.kinesis.getRecords(iterator, batchSize);
        iterator = out.NextShardIterator ?? iterator;
        pending = out.Records.map((r) => ({
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey: r.PartitionKey,
            sequenceNumber: r.SequenceNumber,
            data: r.Data,
            approximateArrivalTimestamp: r.ApproximateArrivalTimestamp,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${shardId}:${r.SequenceNumber}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: `arn:aws:iam::${ctx.accountId}:role/lab-esm`,
          awsRegion: ctx.region,
          eventSourceARN: streamArn,
        }));
        attempts = 0;
        if (pending.length === 0) {
          await sleep(200);
          continue;
        }
      }
      let failedIdx: number;
      try {
        const result = await ctx.invoke(fnArn, { Records: pending });
        failedIdx = reportItems ? failedFrom(result, pending) : -1;
      } catch {
        failedIdx = 0;
      }
      if (failedIdx < 0) {
        pending = [];
        continue;
      }
      pending = pending.slice(failedIdx);
      attempts++;
      if (attempts > maxRetries) {
        const first = pending[0].kinesis.sequenceNumber;
        const last = pending[pending.length - 1].kinesis.sequenceNumber;
        if (onFailure) {
          ctx.queues.send(
            onFailure,
            JSON.stringify({
              requestContext: {
                requestId: ctx.logicalId,
                functionArn: fnArn,
                condition: 'RetryAttemptsExhausted',
                approximateInvokeCount: attempts,
              },
              responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
              version: '1.0',
              timestamp: new Date().toISOString(),
              KinesisBatchInfo: {
                shardId,
                startSequenceNumber: first,
                endSequenceNumber: last,
                batchSize: pending.length,
                streamArn,
              },
            }),
            `esm:${ctx.logicalId}`,
          );
        }
        ctx.log({
          level: 'warn',
          msg: 'event-source mapping gave up on a batch',
          mapping: ctx.logicalId,
          shardId,
          records: pending.length,
        });
        pending = [];
      } else await sleep(100 * attempts);
    }
  };

  void ctx.kinesis.listShardIds(stream).then((shards) =>
    shards.forEach((s) =>
      pollShard(s).catch((e: Error) => {
        if (!stopped)
          ctx.log({
            level: 'error',
            msg: 'Kinesis poller stopped',
            mapping: ctx.logicalId,
            shardId: s,
            error: e.message,
          });
      }),
    ),
  );
  ctx.addStopper(() => {
    stopped = true;
    for (const t of timers) clearTimeout(t);
  });
}

function startSqsMapping(ctx: HandlerContext, queueArn: string, fnArn: string): void {
  ctx.queues.onMessage(queueArn, (m) => {
    const event = {
      Records: [
        {
          messageId: m.messageId,
          receiptHandle: m.messageId,
          body: m.body,
          attributes: {
            ApproximateReceiveCount: '1',
            SentTimestamp: String(m.sentAt),
            SenderId: 'lab',
            ApproximateFirstReceiveTimestamp: String(Date.now()),
          },
          messageAttributes: {},
          md5OfBody: '',
          eventSource: 'aws:sqs',
          eventSourceARN: queueArn,
          awsRegion: ctx.region,
        },
      ],
    };
    void ctx.invoke(fnArn, event).then(
      (result) => {
        const failures = (result as { batchItemFailures?: unknown[] } | null)?.batchItemFailures;
        if (!Array.isArray(failures) || failures.length === 0) ctx.queues.delete(m.queueName, m.messageId);
      },
      () => undefined, // stays in the queue, as an unprocessed message would
    );
  });
}

export const eventSourceMappingHandler: ResourceHandler = {
  types: ['AWS::Lambda::EventSourceMapping'],
  phase: 60,
  attributes: (name) => ({
    Id: name,
    EventSourceMappingArn: `arn:aws:lambda:::event-source-mapping:${name}`,
  }),
  create(ctx) {
    const p = ctx.properties;
    const source = String(p.EventSourceArn ?? '');
    const fn = ctx.runner.resolve(String(p.FunctionName));
    if (!fn) return { status: 'unsupported', detail: `function ${p.FunctionName} is not run by the lab` };
    if (p.Enabled === false) return { status: 'acknowledged', detail: 'disabled' };
    if (source.startsWith(arn('kinesis', ctx, 'stream/'))) {
      startKinesisMapping(ctx, source, fn);
      ctx.record('eventSourceMapping', { logicalId: ctx.logicalId, source, functionArn: fn });
      return { status: 'created', detail: `Kinesis ${source} → ${fn}` };
    }
    if (source.startsWith(arn('sqs', ctx, '')) && ctx.queues.find(source)) {
      startSqsMapping(ctx, source, fn);
      ctx.record('eventSourceMapping', { logicalId: ctx.logicalId, source, functionArn: fn });
      return { status: 'created', detail: `SQS ${source} → ${fn}` };
    }
    return { status: 'unsupported', detail: `event source ${source || '(none)'} is not emulated` };
  },
};
