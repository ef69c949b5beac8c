/**
 * An Amazon Data Firehose stream with a Kinesis data stream as source and an S3 destination, as
 * the Firehose developer guide describes it:
 *
 * - it reads the source stream from LATEST at creation, with its own iterators (independent of
 *   any Lambda event-source mapping on the same stream), every shard;
 * - it buffers records until BufferingHints.SizeInMBs (of record data) or IntervalInSeconds
 *   (from the first buffered record) is reached, whichever comes first (the lab may shorten the
 *   interval, and {@link FirehoseDelivery.flush} delivers at once);
 * - one S3 object per delivery, key `<evaluated prefix><stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-
 *   <mm>-<ss>-<uuid><extension>`: the prefix's `!{timestamp:…}` expressions and the suffix time
 *   use the approximate arrival time of the oldest record in the object (UTC unless
 *   CustomTimeZone), `!{firehose:random-string}` is 11 random characters, the default prefix is
 *   `yyyy/MM/dd/HH/`, the extension `.gz` with GZIP (or FileExtension);
 * - a Lambda processor transforms each buffer first (Firehose's transformation event and
 *   answer: Ok, Dropped, ProcessingFailed; a failed invocation is retried NumberOfRetries times);
 *   records it fails are written as Firehose's error records (JSON lines with errorCode, rawData…)
 *   under the ErrorOutputPrefix with `!{firehose:error-output-type}` = `processing-failed`;
 * - the object holds the records' data back to back, each followed by the delimiter when the
 *   AppendDelimiterToRecord processor is on, GZIP-compressed when CompressionFormat is GZIP (the
 *   error objects too);
 * - a failed S3 delivery is retried (every 5 s on AWS, with backoff in the lab) until it works,
 *   records keep buffering meanwhile; the source position of a record is checkpointed once its
 *   object is written, so a restart reads again what was not delivered and nothing that was.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { formatTime } from '../rules/evaluate';
import { SqlError, timePatternTokens } from '../rules/sql';
import type { LabKinesis } from './kinesis-client';
import type { LabS3 } from './s3-client';
import { backoffMs, readShardOnce, ShardCursor, ShardLoops, type ShardReadContext } from './shard-cursor';

/** The prefix Firehose uses when none is configured. */
export const DEFAULT_PREFIX = '!{timestamp:yyyy/MM/dd/HH}/';
/** The error prefix Firehose uses when none is configured. */
export const DEFAULT_ERROR_PREFIX = '!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/';

const EXPRESSION = /!\{([^:}]+):([^}]*)\}/g;
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Why a prefix cannot be evaluated by the lab (empty when it can). */
export function prefixProblems(prefix: string, kind: 'prefix' | 'error'): string[] {
  const problems: string[] = [];
  for (const [expr, namespace, value] of prefix.matchAll(EXPRESSION)) {
    if (namespace === 'timestamp') {
      try {
        timePatternTokens(value);
      } catch (e) {
        problems.push(`${expr}: ${e instanceof SqlError ? e.message : String(e)}`);
      }
    } else if (namespace === 'firehose') {
      if (value === 'error-output-type' && kind === 'prefix')
        problems.push(`${expr} is only valid in the ErrorOutputPrefix`);
      else if (value !== 'random-string' && value !== 'error-output-type')
        problems.push(`${expr}: unknown firehose expression`);
    } else
      problems.push(`${expr}: the ${namespace} namespace (dynamic partitioning) is not emulated by the lab`);
  }
  return problems;
}

/** A prefix with its expressions evaluated at `atMs`. */
export function renderPrefix(
  prefix: string,
  atMs: number,
  opts: { timeZone?: string; errorOutputType?: string } = {},
): string {
  return prefix.replace(EXPRESSION, (_m, namespace: string, value: string) => {
    if (namespace === 'timestamp') return formatTime(value, atMs, opts.timeZone ?? 'UTC');
    if (value === 'random-string')
      return [...randomBytes(11)].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
    return opts.errorOutputType ?? '';
  });
}

/** The object name after the prefix: `<stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid><ext>`. */
export function objectSuffix(
  stream: string,
  version: number,
  atMs: number,
  opts: { timeZone?: string; extension?: string; uuid?: string } = {},
): string {
  const time = formatTime('yyyy-MM-dd-HH-mm-ss', atMs, opts.timeZone ?? 'UTC');
  return `${stream}-${version}-${time}-${opts.uuid ?? randomUUID()}${opts.extension ?? ''}`;
}

export interface FirehoseConfig {
  logicalId: string;
  name: string;
  arn: string;
  region: string;
  sourceArn: string;
  streamName: string;
  bucket: string;
  prefix: string;
  errorPrefix: string;
  intervalMs: number;
  sizeBytes: number;
  gzip: boolean;
  /** Appended to every record (AppendDelimiterToRecord), or undefined. */
  delimiter?: string;
  extension: string;
  timeZone: string;
  /** The Lambda processor: the function and how often a failed invocation is retried. */
  lambda?: { arn: string; retries: number };
}

export interface FirehoseStats {
  logicalId: string;
  name: string;
  source: string;
  bucket: string;
  /** Records read from the source stream. */
  recordsRead: number;
  /** S3 objects written. */
  objectsWritten: number;
  /** Records in the objects written. */
  recordsArchived: number;
  /** Bytes of the objects written (compressed when GZIP). */
  bytesWritten: number;
  /** Failed S3 deliveries (retried). */
  deliveryErrors: number;
  /** Failed GetRecords / GetShardIterator calls (Kinesis unavailable). */
  pollErrors: number;
  /** Records read and not yet delivered. */
  buffered: number;
  /** Objects written under the ErrorOutputPrefix (records the Lambda processor failed). */
  errorObjects: number;
  /** Records written under the ErrorOutputPrefix. */
  recordsFailed: number;
  /** Records the Lambda processor dropped. */
  recordsDropped: number;
  lastObjectKey?: string;
}

interface FailedRecord {
  record: Buffered;
  code: string;
  message: string;
  attempts: number;
}

interface Buffered {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
  /** Approximate arrival, epoch ms. */
  arrivalMs: number;
}

export class FirehoseDelivery {
  private readonly shards = new ShardLoops(
    (c, generation) => this.runShard(c, generation),
    (c, e) =>
      this.deps.log({
        level: 'error',
        msg: 'Firehose source reader stopped',
        deliveryStream: this.config.name,
        shardId: c.shardId,
        error: e.message,
      }),
  );
  private buffer: Buffered[] = [];
  private bufferBytes = 0;
  private bufferOpenedAt = 0;
  private delivering: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private readonly counters = {
    recordsRead: 0,
    objectsWritten: 0,
    recordsArchived: 0,
    bytesWritten: 0,
    deliveryErrors: 0,
    pollErrors: 0,
    errorObjects: 0,
    recordsFailed: 0,
    recordsDropped: 0,
  };
  private lastObjectKey?: string;

  constructor(
    readonly config: FirehoseConfig,
    private readonly deps: {
      kinesis: LabKinesis;
      s3: LabS3;
      /** Invoke a function (the Lambda processor). */
      invoke(functionArn: string, event: unknown): Promise<unknown>;
      log(e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }): void;
      pollIntervalMs: number;
    },
  ) {}

  async start(): Promise<void> {
    await this.shards.start(this.deps.kinesis, this.config.streamName, { type: 'LATEST' });
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.min(1000, this.config.intervalMs)));
    this.timer.unref();
  }

  private live(generation: number): boolean {
    return this.shards.live(generation);
  }

  private async runShard(c: ShardCursor, generation: number): Promise<void> {
    const state = { failures: 0 };
    const context: ShardReadContext = {
      sleeper: this.shards.sleeper,
      pollIntervalMs: this.deps.pollIntervalMs,
      counters: this.counters,
      emptyReads: this.shards.emptyReads,
      log: this.deps.log,
      who: 'Firehose',
      source: 'its source stream',
      idKey: 'deliveryStream',
      id: this.config.name,
    };
    while (this.live(generation)) {
      const records = await readShardOnce(c, () => c.read(10_000), state, context);
      if (records === 'closed') return;
      if (!records) continue;
      if (!this.live(generation)) return;
      for (const r of records) {
        const data = Buffer.from(r.Data, 'base64');
        if (this.buffer.length === 0) this.bufferOpenedAt = Date.now();
        this.buffer.push({
          shardId: c.shardId,
          sequenceNumber: r.SequenceNumber,
          partitionKey: r.PartitionKey,
          data,
          arrivalMs: Math.round(r.ApproximateArrivalTimestamp * 1000),
        });
        this.bufferBytes += data.length;
        if (this.bufferBytes >= this.config.sizeBytes) this.deliver();
      }
      this.tick();
    }
  }

  /** Deliver when the buffer interval has passed. */
  private tick(): void {
    if (this.buffer.length && Date.now() - this.bufferOpenedAt >= this.config.intervalMs) this.deliver();
  }

  /** Queue the delivery of what is buffered now. */
  private deliver(): Promise<void> {
    const records = this.buffer;
    if (records.length === 0) return this.delivering;
    this.buffer = [];
    this.bufferBytes = 0;
    const generation = this.shards.generation;
    this.delivering = this.delivering.then(() => this.write(records, generation));
    return this.delivering;
  }

  private objectBody(records: Buffered[]): Buffer {
    const parts: Buffer[] = [];
    const delimiter = this.config.delimiter === undefined ? undefined : Buffer.from(this.config.delimiter);
    for (const r of records) {
      parts.push(r.data);
      if (delimiter) parts.push(delimiter);
    }
    const raw = Buffer.concat(parts);
    return this.config.gzip ? gzipSync(raw) : raw;
  }

  /** One object to S3, retrying until S3 takes it; false when the stream restarted or stopped. */
  private async putUntilWritten(key: string, body: Buffer, generation: number): Promise<boolean> {
    let failures = 0;
    while (this.live(generation)) {
      try {
        await this.deps.s3.putObject(this.config.bucket, key, body);
        return true;
      } catch (e) {
        failures++;
        this.counters.deliveryErrors++;
        if (failures === 1)
          this.deps.log({
            level: 'warn',
            msg: 'Firehose delivery to S3 failed; retrying',
            deliveryStream: this.config.name,
            bucket: this.config.bucket,
            key,
            error: (e as Error).message,
          });
        await this.shards.sleeper.sleep(backoffMs(failures));
      }
    }
    return false;
  }

  /**
   * The Lambda processor: the function transforms the records (Ok: new data; Dropped: left out;
   * ProcessingFailed: to the error output). A failed invocation is retried NumberOfRetries
   * times, then every record of the batch goes to the error output.
   */
  private async transform(
    records: Buffered[],
  ): Promise<{ ok: Buffered[]; failed: FailedRecord[]; dropped: number }> {
    const lambda = this.config.lambda as NonNullable<FirehoseConfig['lambda']>;
    const ids = records.map((_, i) => String(i).padStart(8, '0'));
    const event = {
      invocationId: randomUUID(),
      deliveryStreamArn: this.config.arn,
      sourceKinesisStreamArn: this.config.sourceArn,
      region: this.config.region,
      records: records.map((r, i) => ({
        recordId: ids[i],
        approximateArrivalTimestamp: r.arrivalMs,
        data: r.data.toString('base64'),
        kinesisRecordMetadata: {
          shardId: r.shardId,
          partitionKey: r.partitionKey,
          approximateArrivalTimestamp: r.arrivalMs,
          sequenceNumber: r.sequenceNumber,
          subsequenceNumber: '',
        },
      })),
    };
    let attempts = 0;
    let lastError = '';
    while (attempts <= lambda.retries) {
      attempts++;
      let answer: unknown;
      try {
        answer = await this.deps.invoke(lambda.arn, event);
      } catch (e) {
        lastError = (e as Error).message;
        continue;
      }
      const results = new Map(
        (
          (answer as { records?: { recordId?: string; result?: string; data?: string }[] } | null)?.records ??
          []
        ).map((r) => [r.recordId, r]),
      );
      const ok: Buffered[] = [];
      const failed: FailedRecord[] = [];
      let dropped = 0;
      records.forEach((r, i) => {
        const out = results.get(ids[i]);
        if (!out)
          failed.push({
            record: r,
            code: 'Lambda.MissingRecordId',
            message: `record ${ids[i]} missing from the answer`,
            attempts,
          });
        else if (out.result === 'Ok') ok.push({ ...r, data: Buffer.from(out.data ?? '', 'base64') });
        else if (out.result === 'Dropped') dropped++;
        else
          failed.push({
            record: r,
            code: 'Lambda.ProcessingFailedStatus',
            message: `result ${String(out.result)}`,
            attempts,
          });
      });
      return { ok, failed, dropped };
    }
    return {
      ok: [],
      failed: records.map((record) => ({
        record,
        code: 'Lambda.FunctionError',
        message: lastError,
        attempts,
      })),
      dropped: 0,
    };
  }

  /** Records the processor could not transform, as Firehose writes them under the ErrorOutputPrefix. */
  private errorBody(failed: FailedRecord[]): Buffer {
    const now = Date.now();
    const lines = failed.map(
      (f) =>
        `${JSON.stringify({
          attemptsMade: f.attempts,
          arrivalTimestamp: f.record.arrivalMs,
          errorCode: f.code,
          errorMessage: f.message,
          attemptEndingTimestamp: now,
          rawData: f.record.data.toString('base64'),
          lambdaArn: this.config.lambda?.arn,
        })}\n`,
    );
    const raw = Buffer.from(lines.join(''));
    return this.config.gzip ? gzipSync(raw) : raw;
  }

  /** Deliver one buffer: processed, written to S3 (failures under the ErrorOutputPrefix), checkpointed. */
  private async write(records: Buffered[], generation: number): Promise<void> {
    const oldest = Math.min(...records.map((r) => r.arrivalMs));
    const tz = this.config.timeZone;
    const suffix = (): string =>
      objectSuffix(this.config.name, 1, oldest, { timeZone: tz, extension: this.config.extension });
    let ok = records;
    if (this.config.lambda) {
      const t = await this.transform(records);
      ok = t.ok;
      this.counters.recordsDropped += t.dropped;
      if (t.failed.length) {
        const key =
          renderPrefix(this.config.errorPrefix, oldest, {
            timeZone: tz,
            errorOutputType: 'processing-failed',
          }) + suffix();
        if (!(await this.putUntilWritten(key, this.errorBody(t.failed), generation))) return;
        this.counters.errorObjects++;
        this.counters.recordsFailed += t.failed.length;
      }
    }
    if (ok.length) {
      const key = renderPrefix(this.config.prefix, oldest, { timeZone: tz }) + suffix();
      const body = this.objectBody(ok);
      if (!(await this.putUntilWritten(key, body, generation))) return;
      this.counters.objectsWritten++;
      this.counters.recordsArchived += ok.length;
      this.counters.bytesWritten += body.length;
      this.lastObjectKey = key;
    }
    if (!this.live(generation)) return;
    for (const c of this.shards.cursors) {
      const mine = records.filter((r) => r.shardId === c.shardId);
      if (mine.length) c.commit(mine[mine.length - 1].sequenceNumber);
    }
  }

  /** Read every shard to its end, then deliver what is buffered; resolves once it is written. */
  async flush(timeoutMs = 30_000): Promise<void> {
    await this.shards.readToEnd(timeoutMs, true);
    await this.deliver();
  }

  async restart(): Promise<void> {
    await this.shards.restart(async () => {
      await this.delivering.catch(() => undefined);
      this.buffer = [];
      this.bufferBytes = 0;
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.shards.stop();
    await this.delivering.catch(() => undefined);
  }

  stats(): FirehoseStats {
    return {
      logicalId: this.config.logicalId,
      name: this.config.name,
      source: this.config.sourceArn,
      bucket: this.config.bucket,
      ...this.counters,
      buffered: this.buffer.length,
      lastObjectKey: this.lastObjectKey,
    };
  }
}
