/**
 * A Lambda event-source mapping on a Kinesis stream, with the AWS Lambda semantics the stack
 * configures (Lambda developer guide: "Using Lambda with Kinesis", error handling, partial batch
 * responses, event filtering, on-failure destinations):
 *
 * - one poller per shard, one batch in flight per shard (records of a shard are processed in
 *   order; ParallelizationFactor above 1 is accepted and processed as 1: Lambda then keeps only
 *   the order of each partition key, which one batch at a time keeps too);
 * - batches of up to BatchSize records from StartingPosition, gathered for up to
 *   MaximumBatchingWindowInSeconds (the lab may shorten the window);
 * - FilterCriteria: records no filter matches are dropped before batching and checkpointed as
 *   processed (./event-pattern.ts);
 * - ReportBatchItemFailures: the batch is retried from the failed record with the lowest
 *   sequence number; an unusable answer (empty or unknown itemIdentifier) fails the whole batch;
 * - BisectBatchOnFunctionError: a function error splits the batch in two and each half is
 *   processed (and retried) on its own; splitting does not count as a retry;
 * - MaximumRetryAttempts (-1: until the records expire) and MaximumRecordAgeInSeconds (-1: no
 *   limit); records given up on are described to DestinationConfig.OnFailure with Lambda's
 *   Kinesis invocation record (requestContext, responseContext, KinesisBatchInfo) and skipped.
 *   An SQS queue gets the record as a message; an S3 bucket gets it as one object, with the whole
 *   event the function was given in `payload` (a JSON string), under
 *   `aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>` (UTC) — the layout
 *   of the Lambda developer guide, "Retain discarded batch records for a Kinesis Data Streams
 *   event source";
 * - checkpoints: a shard's checkpoint moves past a batch once it succeeded or was given up on; a
 *   Kinesis outage leaves the reader where it was and it resumes from there; a restarted poller
 *   starts after its checkpoint, so an acknowledged record is never delivered again.
 */
import { randomUUID } from 'node:crypto';
import type { KinesisRecord, LabKinesis } from './kinesis-client';
import { LambdaFunctionError } from './lambda-runner';
import {
  backoffMs,
  readShardOnce,
  ShardCursor,
  ShardLoops,
  type ShardReadContext,
  type StartingPosition,
} from './shard-cursor';

export interface KinesisEventRecord {
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

export interface KinesisMappingConfig {
  logicalId: string;
  /** The mapping's UUID (its Ref). */
  uuid: string;
  functionArn: string;
  streamArn: string;
  streamName: string;
  batchSize: number;
  batchingWindowMs: number;
  startingPosition: StartingPosition;
  reportItemFailures: boolean;
  bisect: boolean;
  /** -1: retry until the records expire. */
  maxRetries: number;
  /** -1: no limit. */
  maxRecordAgeMs: number;
  parallelizationFactor: number;
  /** ARN of the on-failure destination: an SQS queue, or an S3 bucket (`arn:aws:s3:::<name>`). */
  onFailure?: string;
  filter?: (data: Buffer) => boolean;
  region: string;
  accountId: string;
}

export interface KinesisMappingDeps {
  kinesis: LabKinesis;
  invoke(functionArn: string, event: unknown): Promise<unknown>;
  /** Deliver an on-failure record to a queue; throws (or rejects) when it cannot take it. */
  sendOnFailure(destination: string, body: string): void | Promise<void>;
  /** Write an on-failure object to a bucket (its name); rejects when it cannot. Absent: S3 destinations are not served. */
  putOnFailureObject?(bucket: string, key: string, body: string): Promise<void>;
  log(e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }): void;
  /** Wait between polls of a shard with nothing new, ms. */
  pollIntervalMs: number;
  /**
   * The clock the batching window is measured on, epoch ms (default `Date.now`; a test injects
   * one to open and close the window without waiting on the wall clock).
   */
  now?: () => number;
}

export interface KinesisMappingStats {
  logicalId: string;
  functionArn: string;
  source: string;
  /** Records read from the stream (a record read again after a restart counts again). */
  recordsRead: number;
  /** Records dropped by FilterCriteria. */
  filtered: number;
  /** Invocations of the function. */
  batches: number;
  /** Records in those invocations (a retried record counts each time). */
  recordsInvoked: number;
  functionErrors: number;
  partialFailures: number;
  /** Invocations that were retries of a failed batch (bisected halves are not retries). */
  retries: number;
  bisections: number;
  /** Records given up on (retries exhausted or too old) and described to the on-failure destination. */
  sentToOnFailure: number;
  /** On-failure records delivered (SQS messages or S3 objects, one per given-up batch). */
  onFailureMessages: number;
  /** On-failure records that could not be delivered (no destination, or it refused them). */
  onFailureDropped: number;
  /** Failed GetRecords / GetShardIterator calls (Kinesis unavailable). */
  pollErrors: number;
  shards: { shardId: string; checkpoint?: string; position?: string }[];
}

/** The bucket name of an S3 bucket ARN (`arn:<partition>:s3:::<name>`), or undefined for any other ARN. */
export function s3BucketOfArn(arn: string): string | undefined {
  return /^arn:aws[a-z-]*:s3:::([^/]+)$/.exec(arn)?.[1];
}

/**
 * Key of the object Lambda writes to an S3 on-failure destination of a stream mapping:
 * `aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`, UTC.
 */
export function onFailureObjectKey(
  mappingUuid: string,
  shardId: string,
  at: Date,
  id: string = randomUUID(),
): string {
  const iso = at.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const [date, time] = [iso.slice(0, 10), iso.slice(11, 19)];
  return `aws/lambda/${mappingUuid}/${shardId}/${date.replace(/-/g, '/')}/${date}T${time.replace(/:/g, '.')}-${id}`;
}

/**
 * What one invocation came to. `error.counts`: a failed attempt that counts against
 * MaximumRetryAttempts (a function error, or an unusable partial response); an invocation that
 * could not be made (a service error) is retried until the records expire.
 */
type Outcome =
  | { kind: 'ok' }
  | { kind: 'partial'; from: number }
  | { kind: 'error'; functionError: boolean; counts: boolean; message: string };

export class KinesisMapping {
  private readonly shards = new ShardLoops(
    (c, generation) => this.runShard(c, generation),
    (c, e) =>
      this.deps.log({
        level: 'error',
        msg: 'Kinesis event-source poller stopped',
        mapping: this.config.logicalId,
        shardId: c.shardId,
        error: e.message,
      }),
  );
  private readonly counters = {
    recordsRead: 0,
    filtered: 0,
    batches: 0,
    recordsInvoked: 0,
    functionErrors: 0,
    partialFailures: 0,
    retries: 0,
    bisections: 0,
    sentToOnFailure: 0,
    onFailureMessages: 0,
    onFailureDropped: 0,
    pollErrors: 0,
  };

  constructor(
    readonly config: KinesisMappingConfig,
    private readonly deps: KinesisMappingDeps,
  ) {}

  /** Open every shard (the starting position is taken now) and start the pollers. */
  async start(): Promise<void> {
    await this.shards.start(this.deps.kinesis, this.config.streamName, this.config.startingPosition);
  }

  private live(generation: number): boolean {
    return this.shards.live(generation);
  }

  /** Records for one batch: up to BatchSize, gathered for up to the batching window. */
  private async collect(c: ShardCursor, generation: number): Promise<KinesisRecord[]> {
    const { batchSize, batchingWindowMs } = this.config;
    const records = await c.read(batchSize);
    if (records.length === 0 || records.length >= batchSize || batchingWindowMs <= 0) return records;
    const now = this.deps.now ?? Date.now;
    const until = now() + batchingWindowMs;
    while (records.length < batchSize && now() < until && this.live(generation)) {
      await this.shards.sleeper.sleep(Math.min(this.deps.pollIntervalMs, Math.max(1, until - now())));
      try {
        records.push(...(await c.read(batchSize - records.length)));
      } catch {
        break; // Kinesis went away: process what was gathered
      }
    }
    return records;
  }

  private async runShard(c: ShardCursor, generation: number): Promise<void> {
    const state = { failures: 0 };
    const context: ShardReadContext = {
      sleeper: this.shards.sleeper,
      pollIntervalMs: this.deps.pollIntervalMs,
      counters: this.counters,
      emptyReads: this.shards.emptyReads,
      log: this.deps.log,
      who: 'Kinesis event-source poller',
      source: 'the stream',
      idKey: 'mapping',
      id: this.config.logicalId,
    };
    while (this.live(generation)) {
      const records = await readShardOnce(c, () => this.collect(c, generation), state, context);
      if (records === 'closed') return;
      if (!records) continue;
      if (!this.live(generation)) return;
      const kept = this.config.filter
        ? records.filter((r) => (this.config.filter as (d: Buffer) => boolean)(Buffer.from(r.Data, 'base64')))
        : records;
      this.counters.filtered += records.length - kept.length;
      if (kept.length)
        await this.process(
          c,
          kept.map((r) => this.eventRecord(c.shardId, r)),
          generation,
        );
      // After a restart the batch is not acknowledged: the new poller reads it again.
      if (!this.live(generation)) return;
      c.commit(records[records.length - 1].SequenceNumber);
    }
  }

  private eventRecord(shardId: string, r: KinesisRecord): KinesisEventRecord {
    return {
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
      invokeIdentityArn: `arn:aws:iam::${this.config.accountId}:role/lab-event-source-mapping`,
      awsRegion: this.config.region,
      eventSourceARN: this.config.streamArn,
    };
  }

  private async invoke(batch: KinesisEventRecord[]): Promise<Outcome> {
    this.counters.batches++;
    this.counters.recordsInvoked += batch.length;
    let result: unknown;
    try {
      result = await this.deps.invoke(this.config.functionArn, { Records: batch });
    } catch (e) {
      const functionError = e instanceof LambdaFunctionError;
      return { kind: 'error', functionError, counts: functionError, message: (e as Error).message };
    }
    if (!this.config.reportItemFailures) return { kind: 'ok' };
    const failures = (result as { batchItemFailures?: unknown } | null | undefined)?.batchItemFailures;
    if (failures === undefined || failures === null) return { kind: 'ok' };
    const unusable: Outcome = {
      kind: 'error',
      functionError: false,
      counts: true,
      message: 'batchItemFailures is not a list of known itemIdentifiers: the whole batch failed',
    };
    if (!Array.isArray(failures)) return unusable;
    if (failures.length === 0) return { kind: 'ok' };
    const ids = failures.map((f) => (f as { itemIdentifier?: unknown } | null)?.itemIdentifier);
    const index = new Map(batch.map((r, i) => [r.kinesis.sequenceNumber, i]));
    if (ids.some((id) => typeof id !== 'string' || !index.has(id))) return unusable;
    return { kind: 'partial', from: Math.min(...ids.map((id) => index.get(id as string) as number)) };
  }

  /** One batch until it succeeds, is split, or is given up on. */
  private async process(c: ShardCursor, records: KinesisEventRecord[], generation: number): Promise<void> {
    let batch = records;
    let retries = 0;
    let invokeCount = 0;
    let last: Outcome | undefined;
    while (batch.length > 0 && this.live(generation)) {
      if (this.config.maxRecordAgeMs >= 0) {
        const cutoff = (Date.now() - this.config.maxRecordAgeMs) / 1000;
        const expired = batch.filter((r) => r.kinesis.approximateArrivalTimestamp < cutoff);
        if (expired.length) {
          await this.giveUp(c.shardId, expired, 'RecordAgeExceeded', invokeCount, last);
          batch = batch.filter((r) => r.kinesis.approximateArrivalTimestamp >= cutoff);
          if (batch.length === 0) break;
        }
      }
      if (invokeCount > 0) this.counters.retries++;
      invokeCount++;
      last = await this.invoke(batch);
      if (last.kind === 'ok') break;
      if (last.kind === 'partial') {
        this.counters.partialFailures++;
        batch = batch.slice(last.from);
        retries++;
      } else {
        if (last.functionError) {
          this.counters.functionErrors++;
          if (this.config.bisect && batch.length > 1) {
            this.counters.bisections++;
            const mid = Math.ceil(batch.length / 2);
            await this.process(c, batch.slice(0, mid), generation);
            await this.process(c, batch.slice(mid), generation);
            return;
          }
        }
        if (last.counts) retries++;
        else if (invokeCount === 1)
          this.deps.log({
            level: 'warn',
            msg: 'event-source mapping could not invoke the function; retrying until the records expire',
            mapping: this.config.logicalId,
            error: last.message,
          });
      }
      if (this.config.maxRetries >= 0 && retries > this.config.maxRetries) {
        await this.giveUp(c.shardId, batch, 'RetryAttemptsExhausted', invokeCount, last);
        break;
      }
      await this.shards.sleeper.sleep(
        backoffMs(Math.max(1, last.kind === 'error' && !last.counts ? invokeCount : retries)),
      );
    }
    if (this.live(generation) && records.length) c.commit(records[records.length - 1].kinesis.sequenceNumber);
  }

  private async giveUp(
    shardId: string,
    batch: KinesisEventRecord[],
    condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded',
    invokeCount: number,
    last: Outcome | undefined,
  ): Promise<void> {
    this.counters.sentToOnFailure += batch.length;
    const first = batch[0].kinesis;
    const lastRecord = batch[batch.length - 1].kinesis;
    const iso = (s: number): string => new Date(Math.round(s * 1000)).toISOString();
    const body = {
      requestContext: {
        requestId: randomUUID(),
        functionArn: this.config.functionArn,
        condition,
        approximateInvokeCount: invokeCount,
      },
      ...(last
        ? {
            responseContext: {
              statusCode: 200,
              executedVersion: '$LATEST',
              ...(last.kind === 'error' && last.functionError ? { functionError: 'Unhandled' } : {}),
            },
          }
        : {}),
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId,
        startSequenceNumber: first.sequenceNumber,
        endSequenceNumber: lastRecord.sequenceNumber,
        approximateArrivalOfFirstRecord: iso(first.approximateArrivalTimestamp),
        approximateArrivalOfLastRecord: iso(lastRecord.approximateArrivalTimestamp),
        batchSize: batch.length,
        streamArn: this.config.streamArn,
      },
    };
    this.deps.log({
      level: 'warn',
      msg: 'event-source mapping gave up on records',
      mapping: this.config.logicalId,
      condition,
      shardId,
      records: batch.length,
    });
    const destination = this.config.onFailure;
    if (!destination) {
      this.counters.onFailureDropped += batch.length;
      return;
    }
    try {
      const bucket = s3BucketOfArn(destination);
      if (bucket === undefined) await this.deps.sendOnFailure(destination, JSON.stringify(body));
      else {
        if (!this.deps.putOnFailureObject) throw new Error('S3 on-failure destinations are not served here');
        // An S3 destination also gets the invocation itself: the event the function was given.
        const object = { ...body, payload: JSON.stringify({ Records: batch }) };
        await this.deps.putOnFailureObject(
          bucket,
          onFailureObjectKey(this.config.uuid, shardId, new Date()),
          JSON.stringify(object),
        );
      }
      this.counters.onFailureMessages++;
    } catch (e) {
      this.counters.onFailureDropped += batch.length;
      this.deps.log({
        level: 'error',
        msg: 'on-failure destination refused the record',
        mapping: this.config.logicalId,
        destination: this.config.onFailure,
        error: (e as Error).message,
      });
    }
  }

  /**
   * Resolves once every shard was read to its end after the call and what was read is processed
   * (or `timeoutMs` passed; resolves false then).
   */
  caughtUp(timeoutMs = 30_000): Promise<boolean> {
    return this.shards.readToEnd(timeoutMs);
  }

  /** Stop the pollers (the batch in flight finishes unacknowledged) and start again after the checkpoints. */
  restart(): Promise<void> {
    return this.shards.restart();
  }

  stop(): Promise<void> {
    return this.shards.stop();
  }

  stats(): KinesisMappingStats {
    return {
      logicalId: this.config.logicalId,
      functionArn: this.config.functionArn,
      source: this.config.streamArn,
      ...this.counters,
      shards: this.shards.cursors.map((c) => ({
        shardId: c.shardId,
        checkpoint: c.checkpoint,
        position: c.position,
      })),
    };
  }
}
