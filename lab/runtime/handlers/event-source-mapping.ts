/**
 * AWS::Lambda::EventSourceMapping for Kinesis streams (../kinesis-mapping.ts: one poller per
 * shard with Lambda's batching, filtering, partial-batch, bisect, retry, record-age and
 * on-failure semantics) and for the lab's in-memory SQS queues (delivery on send).
 *
 * Lab settings (runtime options): the poll interval of an idle shard and a cap on
 * MaximumBatchingWindowInSeconds. ParallelizationFactor above 1 is processed as 1 (one batch per
 * shard at a time: every order Lambda keeps, per partition key, is kept); on-failure
 * destinations are the stack's SQS queues (one message per given-up batch) and S3 buckets (one
 * object per batch, with the event in `payload`, under Lambda's `aws/lambda/…` key layout);
 * TumblingWindowInSeconds and other destinations (SNS, buckets outside the stack) are not
 * emulated (listed in the summary).
 */
import { kinesisRecordFilter, PatternError } from '../event-pattern';
import { KinesisMapping, s3BucketOfArn, type KinesisMappingConfig } from '../kinesis-mapping';
import type { StartingPosition } from '../shard-cursor';
import { arn, type HandlerContext, type ResourceHandler } from './types';

const num = (v: unknown, fallback: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;

function startingPosition(p: Record<string, unknown>): StartingPosition {
  if (p.StartingPosition === 'LATEST') return { type: 'LATEST' };
  if (p.StartingPosition === 'AT_TIMESTAMP')
    return { type: 'AT_TIMESTAMP', timestamp: num(p.StartingPositionTimestamp, Date.now() / 1000) * 1000 };
  return { type: 'TRIM_HORIZON' };
}

async function startKinesisMapping(
  ctx: HandlerContext,
  streamArn: string,
  fnArn: string,
): Promise<{ mapping: KinesisMapping; notes: string[] }> {
  const p = ctx.properties;
  const notes: string[] = [];
  let filter;
  try {
    filter = kinesisRecordFilter(p.FilterCriteria);
  } catch (e) {
    if (e instanceof PatternError) throw new Error(`event-source mapping ${ctx.logicalId}: ${e.message}`);
    throw e;
  }
  const onFailure = (p.DestinationConfig as { OnFailure?: { Destination?: string } } | undefined)?.OnFailure
    ?.Destination;
  const failureBucket = onFailure ? s3BucketOfArn(onFailure) : undefined;
  const served =
    onFailure !== undefined &&
    (failureBucket !== undefined
      ? ctx.s3.hasBucket(failureBucket)
      : ctx.queues.find(onFailure) !== undefined);
  if (onFailure && !served) notes.push(`on-failure destination ${onFailure} not emulated (records logged)`);
  const parallelization = num(p.ParallelizationFactor, 1);
  if (parallelization > 1) notes.push(`ParallelizationFactor ${parallelization} processed as 1 (order kept)`);
  if (p.TumblingWindowInSeconds !== undefined) notes.push('tumbling windows not emulated');
  const windowMs = num(p.MaximumBatchingWindowInSeconds, 0) * 1000;
  const cap = ctx.options.maxBatchingWindowMs;
  const config: KinesisMappingConfig = {
    logicalId: ctx.logicalId,
    uuid: ctx.physicalName,
    functionArn: fnArn,
    streamArn,
    streamName: streamArn.slice(streamArn.indexOf('stream/') + 'stream/'.length),
    batchSize: num(p.BatchSize, 100),
    batchingWindowMs: cap !== undefined ? Math.min(windowMs, cap) : windowMs,
    startingPosition: startingPosition(p),
    reportItemFailures:
      Array.isArray(p.FunctionResponseTypes) && p.FunctionResponseTypes.includes('ReportBatchItemFailures'),
    bisect: p.BisectBatchOnFunctionError === true,
    maxRetries: num(p.MaximumRetryAttempts, -1),
    maxRecordAgeMs:
      num(p.MaximumRecordAgeInSeconds, -1) >= 0 ? num(p.MaximumRecordAgeInSeconds, -1) * 1000 : -1,
    parallelizationFactor: parallelization,
    onFailure: served ? onFailure : undefined,
    filter,
    region: ctx.region,
    accountId: ctx.accountId,
  };
  const mapping = new KinesisMapping(config, {
    kinesis: ctx.kinesis,
    invoke: (fn, event) => ctx.invoke(fn, event),
    sendOnFailure: (dest, body) => void ctx.queues.send(dest, body, `esm:${ctx.logicalId}`),
    putOnFailureObject: (bucket, key, body) =>
      ctx.s3.putObject(bucket, key, Buffer.from(body), { contentType: 'application/json' }),
    log: (e) => ctx.log(e),
    pollIntervalMs: ctx.options.pollIntervalMs ?? 200,
  });
  await mapping.start();
  ctx.addStopper(() => mapping.stop());
  if (filter) notes.push('filtered');
  if (config.batchingWindowMs > 0) notes.push(`batching window ${config.batchingWindowMs / 1000}s`);
  if (config.bisect) notes.push('bisect on error');
  if (config.reportItemFailures) notes.push('partial batch responses');
  notes.push(
    `retries ${config.maxRetries < 0 ? 'until expiry' : config.maxRetries}`,
    ...(config.maxRecordAgeMs >= 0 ? [`max age ${config.maxRecordAgeMs / 1000}s`] : []),
    ...(config.onFailure
      ? [
          `on failure → ${failureBucket !== undefined ? `s3://${failureBucket}/aws/lambda/` : ctx.queues.find(config.onFailure)?.name}`,
        ]
      : []),
  );
  return { mapping, notes };
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

/** A deterministic UUID-shaped id (what Ref of a mapping returns). */
function mappingUuid(name: string): string {
  const hex = Buffer.from(name).toString('hex').padEnd(32, '0');
  const h = hex.length > 32 ? hex.slice(-32) : hex;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const eventSourceMappingHandler: ResourceHandler = {
  types: ['AWS::Lambda::EventSourceMapping'],
  phase: 60,
  sanitizeName: (n) => mappingUuid(n),
  attributes: (name, c) => ({
    Id: name,
    EventSourceMappingArn: arn('lambda', c, `event-source-mapping:${name}`),
  }),
  async create(ctx) {
    const p = ctx.properties;
    const source = String(p.EventSourceArn ?? '');
    const fn = ctx.runner.resolve(String(p.FunctionName));
    if (!fn) return { status: 'unsupported', detail: `function ${p.FunctionName} is not run by the lab` };
    if (p.Enabled === false) return { status: 'acknowledged', detail: 'disabled' };
    if (source.startsWith(arn('kinesis', ctx, 'stream/'))) {
      const { mapping, notes } = await startKinesisMapping(ctx, source, fn);
      ctx.record('eventSourceMapping', {
        logicalId: ctx.logicalId,
        source,
        functionArn: fn,
        stats: () => mapping.stats(),
        restart: () => mapping.restart(),
        caughtUp: (ms?: number) => mapping.caughtUp(ms),
      });
      return { status: 'created', detail: `Kinesis ${source} → ${fn} (${notes.join(', ')})` };
    }
    if (source.startsWith(arn('sqs', ctx, '')) && ctx.queues.find(source)) {
      startSqsMapping(ctx, source, fn);
      ctx.record('eventSourceMapping', { logicalId: ctx.logicalId, source, functionArn: fn });
      return { status: 'created', detail: `SQS ${source} → ${fn}` };
    }
    return { status: 'unsupported', detail: `event source ${source || '(none)'} is not emulated` };
  },
};
