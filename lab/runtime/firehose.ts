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
 * - the object holds the records' data back to back, each followed by the delimiter when the
 *   AppendDelimiterToRecord processor is on, GZIP-compressed when CompressionFormat is GZIP;
 * - a failed S3 delivery is retried (every 5 s on AWS, with backoff in the lab) until it works,
 *   records keep buffering meanwhile; the source position of a record is checkpointed once its
 *   object is written, so a restart reads again what was not delivered and nothing that was.
 *
 * The ErrorOutputPrefix (`!{firehose:error-output-type}` included) is rendered by
 * {@link renderPrefix}; the lab's supported processors never fail a record, so nothing is
 * written under it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { formatTime } from '../rules/evaluate';
import { SqlError, timePatternTokens } from '../rules/sql';
import type { KinesisRecord, LabKinesis } from './kinesis-client';
import type { LabS3 } from './s3-client';
import { backoffMs, ShardCursor, Sleeper } from './shard-cursor';

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
  /** Objects written under the ErrorOutputPrefix. */
  errorObjects: number;
  lastObjectKey?: string;
}

interface Buffered {
  shardId: string;
  sequenceNumber: string;
  data: Buffer;
  /** Approximate arrival, epoch ms. */
  arrivalMs: number;
}

export class FirehoseDelivery {
  private readonly cursors: ShardCursor[] = [];
  private readonly sleeper = new Sleeper();
  private readonly loops = new Set<Promise<void>>();
  private readonly emptyReads = new Map<string, number>();
  private buffer: Buffered[] = [];
  private bufferBytes = 0;
  private bufferOpenedAt = 0;
  private delivering: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private generation = 0;
  private readonly counters = {
    recordsRead: 0,
    objectsWritten: 0,
    recordsArchived: 0,
    bytesWritten: 0,
    deliveryErrors: 0,
    pollErrors: 0,
    errorObjects: 0,
  };
  private lastObjectKey?: string;

  constructor(
    readonly config: FirehoseConfig,
    private readonly deps: {
      kinesis: LabKinesis;
      s3: LabS3;
      log(e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }): void;
      pollIntervalMs: number;
    },
  ) {}

  async start(): Promise<void> {
    for (const shardId of await this.deps.kinesis.listShardIds(this.config.streamName)) {
      const c = new ShardCursor(this.deps.kinesis, this.config.streamName, shardId, { type: 'LATEST' });
      await c.open();
      this.cursors.push(c);
    }
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.min(1000, this.config.intervalMs)));
    this.timer.unref();
    this.launch();
  }

  private launch(): void {
    const generation = this.generation;
    for (const c of this.cursors) {
      const loop = this.runShard(c, generation).catch((e: Error) =>
        this.deps.log({
          level: 'error',
          msg: 'Firehose source reader stopped',
          deliveryStream: this.config.name,
          shardId: c.shardId,
          error: e.message,
        }),
      );
      this.loops.add(loop);
      void loop.finally(() => this.loops.delete(loop));
    }
  }

  private live(generation: number): boolean {
    return !this.stopped && generation === this.generation;
  }

  private async runShard(c: ShardCursor, generation: number): Promise<void> {
    let failures = 0;
    while (this.live(generation)) {
      let records: KinesisRecord[];
      try {
        records = await c.read(10_000);
      } catch (e) {
        failures++;
        this.counters.pollErrors++;
        if (failures === 1)
          this.deps.log({
            level: 'warn',
            msg: 'Firehose cannot read its source stream; retrying',
            deliveryStream: this.config.name,
            shardId: c.shardId,
            error: (e as Error).message,
          });
        await this.sleeper.sleep(backoffMs(failures));
        continue;
      }
      if (failures > 0)
        this.deps.log({
          level: 'info',
          msg: 'Firehose reads its source stream again',
          deliveryStream: this.config.name,
          shardId: c.shardId,
          failedPolls: failures,
        });
      failures = 0;
      if (!this.live(generation)) return;
      if (records.length === 0) {
        this.emptyReads.set(c.shardId, (this.emptyReads.get(c.shardId) ?? 0) + 1);
        if (c.closed) return;
        await this.sleeper.sleep(this.deps.pollIntervalMs);
        continue;
      }
      this.counters.recordsRead += records.length;
      for (const r of records) {
        const data = Buffer.from(r.Data, 'base64');
        if (this.buffer.length === 0) this.bufferOpenedAt = Date.now();
        this.buffer.push({
          shardId: c.shardId,
          sequenceNumber: r.SequenceNumber,
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
    const generation = this.generation;
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

  /** Write one object, retrying until S3 takes it (or the stream restarts or stops). */
  private async write(records: Buffered[], generation: number): Promise<void> {
    const oldest = Math.min(...records.map((r) => r.arrivalMs));
    const tz = this.config.timeZone;
    const key =
      renderPrefix(this.config.prefix, oldest, { timeZone: tz }) +
      objectSuffix(this.config.name, 1, oldest, { timeZone: tz, extension: this.config.extension });
    const body = this.objectBody(records);
    let failures = 0;
    while (this.live(generation)) {
      try {
        await this.deps.s3.putObject(this.config.bucket, key, body);
        break;
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
        await this.sleeper.sleep(backoffMs(failures));
      }
    }
    if (!this.live(generation)) return;
    this.counters.objectsWritten++;
    this.counters.recordsArchived += records.length;
    this.counters.bytesWritten += body.length;
    this.lastObjectKey = key;
    for (const c of this.cursors) {
      const mine = records.filter((r) => r.shardId === c.shardId);
      if (mine.length) c.commit(mine[mine.length - 1].sequenceNumber);
    }
  }

  /** Read every shard to its end, then deliver what is buffered; resolves once it is written. */
  async flush(timeoutMs = 30_000): Promise<void> {
    const since = new Map(this.cursors.map((c) => [c.shardId, this.emptyReads.get(c.shardId) ?? 0]));
    const until = Date.now() + timeoutMs;
    while (
      Date.now() < until &&
      !this.stopped &&
      !this.cursors.every(
        (c) => c.closed || (this.emptyReads.get(c.shardId) ?? 0) > (since.get(c.shardId) ?? 0),
      )
    ) {
      this.sleeper.wakeAll();
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.deliver();
  }

  async restart(): Promise<void> {
    this.generation++;
    this.sleeper.wakeAll();
    await Promise.allSettled([...this.loops]);
    await this.delivering.catch(() => undefined);
    this.buffer = [];
    this.bufferBytes = 0;
    for (const c of this.cursors) c.rewind();
    if (!this.stopped) this.launch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.sleeper.wakeAll();
    await Promise.allSettled([...this.loops]);
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
