/**
 * AWS adapters of `fleet telemetry replay`: the error store in S3 ({@link ErrorStore}: list a
 * rule's entries of a time window, read one, and move one through the replay's states: claimed
 * under `replaying/`, then `replayed/`) and the telemetry stream in Kinesis
 * ({@link putStreamRecords}: PutRecords in batches within the API limits, retrying the records
 * Kinesis refused). The clients are injected; every call is one SDK command, so the adapters run
 * unchanged against AWS, the lab and the emulators of the tests.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  PutRecordsRequestEntry,
  PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { ERROR_STORE, errorStoreKeyTime } from '../core/telemetry';

/**
 * Where replay keeps an entry it has claimed and is putting on the stream: `replaying/<key>`. An
 * entry there may or may not be on the stream yet (the run stopped between the claim and the
 * move to `replayed/`); the next run puts it again and finishes the move, so only the entries in
 * flight when a run stopped can reach the stream twice.
 */
export const REPLAYING_PREFIX = 'replaying/';

/** Kinesis PutRecords limits. */
export const PUT_RECORDS_LIMITS = {
  /** Records per request. */
  maxRecords: 500,
  /** Bytes per request: data and partition keys of every record. */
  maxRequestBytes: 5 * 1024 * 1024,
  /** Bytes per record: data and partition key. */
  maxRecordBytes: 1024 * 1024,
} as const;

/** One object of the error store. */
export interface ErrorStoreObject {
  key: string;
  /** Receive time from the key; undefined when the key is not in the error-store layout. */
  receivedAt?: number;
}

/** A time window over receive times: `since` (inclusive, none: from the start) to `until` (exclusive). */
export interface ReceiveWindow {
  since?: Date;
  until: Date;
}

/** The error store of the topic rules: one S3 object per failed message (core/telemetry.ts ERROR_STORE). */
export class ErrorStore {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
  ) {}

  /**
   * The entries of `ruleName` received in `window`, oldest first, one listing page at a time.
   * The hour layout bounds the listing: it starts after the prefix of the hour of `since`
   * (StartAfter) and stops at the first key past the hour of `until`. Objects under the rule's
   * prefix that are not in the layout are yielded without a time. `replayed/` and `replaying/` are
   * other prefixes: never listed here.
   */
  async *list(ruleName: string, window: ReceiveWindow): AsyncGenerator<ErrorStoreObject[]> {
    const prefix = `${ruleName}/`;
    const lastHour = ERROR_STORE.hourPrefix(ruleName, window.until);
    const startAfter = window.since ? ERROR_STORE.hourPrefix(ruleName, window.since) : undefined;
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : startAfter ? { StartAfter: startAfter } : {}),
        }),
      );
      const entries: ErrorStoreObject[] = [];
      let past = false;
      for (const object of page.Contents ?? []) {
        const key = object.Key;
        if (!key) continue;
        // Keys sort by hour: past the hour of `until`, nothing later is in the window.
        if (key.slice(0, lastHour.length) > lastHour) {
          past = true;
          break;
        }
        const receivedAt = errorStoreKeyTime(key);
        if (receivedAt === undefined) entries.push({ key });
        else if (
          receivedAt < window.until.getTime() &&
          (!window.since || receivedAt >= window.since.getTime())
        )
          entries.push({ key, receivedAt });
      }
      if (entries.length > 0) yield entries;
      token = past || !page.IsTruncated ? undefined : page.NextContinuationToken;
    } while (token);
  }

  /**
   * The entries of `ruleName` an interrupted replay left claimed under `replaying/`, whatever
   * their receive time, one listing page at a time; `key` is the entry's own key (without the
   * prefix), as {@link claim}, {@link markReplayed} and {@link release} take it.
   */
  async *listClaimed(ruleName: string): AsyncGenerator<ErrorStoreObject[]> {
    const prefix = `${REPLAYING_PREFIX}${ruleName}/`;
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      const entries: ErrorStoreObject[] = [];
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        const key = object.Key.slice(REPLAYING_PREFIX.length);
        const receivedAt = errorStoreKeyTime(key);
        entries.push(receivedAt === undefined ? { key } : { key, receivedAt });
      }
      if (entries.length > 0) yield entries;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** How many entries of `ruleName` were received in `window` (listing only). */
  async count(ruleName: string, window: ReceiveWindow): Promise<number> {
    let n = 0;
    for await (const page of this.list(ruleName, window)) n += page.length;
    return n;
  }

  /** The text of one entry. */
  async read(key: string): Promise<string> {
    const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!out.Body) throw new Error(`GetObject of ${key} returned no body`);
    return out.Body.transformToString('utf8');
  }

  /** Where a claimed entry lies: `replaying/<key>`. */
  claimedKey(key: string): string {
    return `${REPLAYING_PREFIX}${key}`;
  }

  /** Claim an entry before putting it: move it to `replaying/<key>`; returns the new key. */
  async claim(key: string): Promise<string> {
    return this.move(key, this.claimedKey(key));
  }

  /** A claimed entry is on the stream: move it from `replaying/<key>` to `replayed/<key>`; returns the new key. */
  async markReplayed(key: string): Promise<string> {
    return this.move(this.claimedKey(key), `${ERROR_STORE.replayedPrefix}${key}`);
  }

  /** A claimed entry was not put: move it back from `replaying/<key>` to `<key>`. */
  async release(key: string): Promise<string> {
    return this.move(this.claimedKey(key), key);
  }

  /**
   * Move an object: CopyObject, then DeleteObject of the source. When the delete fails the copy is
   * deleted again, so the entry is in one place only, and the error is thrown.
   */
  private async move(from: string, to: string): Promise<string> {
    await this.s3.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: to,
        CopySource: `${this.bucket}/${encodeURIComponent(from).replace(/%2F/g, '/')}`,
      }),
    );
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
    } catch (err) {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: to })).catch(() => undefined);
      throw err;
    }
    return to;
  }
}

/** One record to put, with a reference the caller gets back in the outcome. */
export interface StreamPut<T> {
  ref: T;
  partitionKey: string;
  data: Uint8Array;
}

export interface StreamPutOutcome<T> {
  /** Records the stream accepted. */
  ok: T[];
  /** Records it did not accept after every attempt, with the last error. */
  failed: { ref: T; error: string }[];
}

export interface PutStreamOptions {
  sleep?: (ms: number) => Promise<void>;
  /** Attempts per batch (the first included) before giving up on refused records. @default 5 */
  maxAttempts?: number;
  /** First backoff delay in ms (doubled per retry, with jitter). @default 100 */
  baseDelayMs?: number;
  /** Backoff ceiling in ms. @default 5000 */
  maxDelayMs?: number;
}

const recordBytes = (p: StreamPut<unknown>): number =>
  p.data.byteLength + Buffer.byteLength(p.partitionKey, 'utf8');

/** Split records into PutRecords batches: at most 500 records and 5 MiB each, in order. */
export function putRecordsBatches<T>(puts: readonly StreamPut<T>[]): StreamPut<T>[][] {
  const batches: StreamPut<T>[][] = [];
  let batch: StreamPut<T>[] = [];
  let bytes = 0;
  for (const p of puts) {
    const size = recordBytes(p);
    if (
      batch.length > 0 &&
      (batch.length >= PUT_RECORDS_LIMITS.maxRecords || bytes + size > PUT_RECORDS_LIMITS.maxRequestBytes)
    ) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(p);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** Call-level errors worth another attempt (throttling, a transient service fault). */
const RETRYABLE_CALL_ERRORS = new Set([
  'ProvisionedThroughputExceededException',
  'LimitExceededException',
  'KMSThrottlingException',
  'InternalFailure',
  'InternalFailureException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'ThrottlingException',
]);

/**
 * Put records on `stream` with PutRecords, in batches within the API limits. Records Kinesis
 * refuses (a per-record ErrorCode, e.g. ProvisionedThroughputExceededException) are put again
 * with exponential backoff; those still refused after `maxAttempts` come back as failed. A
 * record over 1 MiB fails without a call. Other call errors (no such stream, access denied) throw.
 */
export async function putStreamRecords<T>(
  kinesis: KinesisClient,
  stream: string,
  puts: readonly StreamPut<T>[],
  options: PutStreamOptions = {},
): Promise<StreamPutOutcome<T>> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxAttempts = options.maxAttempts ?? 5;
  const base = options.baseDelayMs ?? 100;
  const ceiling = options.maxDelayMs ?? 5000;
  const backoff = (retry: number): number => {
    const cap = Math.min(ceiling, base * 2 ** (retry - 1));
    return cap / 2 + Math.random() * (cap / 2);
  };
  const outcome: StreamPutOutcome<T> = { ok: [], failed: [] };
  const fitting: StreamPut<T>[] = [];
  for (const p of puts) {
    if (recordBytes(p) > PUT_RECORDS_LIMITS.maxRecordBytes)
      outcome.failed.push({ ref: p.ref, error: `the record is larger than the 1 MiB Kinesis limit` });
    else fitting.push(p);
  }
  for (const batch of putRecordsBatches(fitting)) {
    let pending = batch;
    let errors = new Map<StreamPut<T>, string>();
    for (let attempt = 1; attempt <= maxAttempts && pending.length > 0; attempt += 1) {
      if (attempt > 1) await sleep(backoff(attempt - 1));
      let results: PutRecordsResultEntry[];
      try {
        const out = await kinesis.send(
          new PutRecordsCommand({
            StreamName: stream,
            Records: pending.map((p): PutRecordsRequestEntry => ({
              PartitionKey: p.partitionKey,
              Data: p.data,
            })),
          }),
        );
        results = out.Records ?? [];
      } catch (err) {
        const name = err instanceof Error ? err.name : '';
        if (!RETRYABLE_CALL_ERRORS.has(name)) throw err;
        const text = `${name}: ${(err as Error).message}`;
        errors = new Map(pending.map((p) => [p, text]));
        continue;
      }
      const refused: StreamPut<T>[] = [];
      errors = new Map();
      pending.forEach((p, i) => {
        const r = results[i];
        if (r && !r.ErrorCode && r.SequenceNumber) outcome.ok.push(p.ref);
        else {
          refused.push(p);
          errors.set(
            p,
            r?.ErrorCode ? `${r.ErrorCode}: ${r.ErrorMessage ?? ''}`.trim() : 'no result for the record',
          );
        }
      });
      pending = refused;
    }
    for (const p of pending)
      outcome.failed.push({
        ref: p.ref,
        error: `not accepted after ${maxAttempts} attempt(s) (${errors.get(p) ?? 'unknown error'})`,
      });
  }
  return outcome;
}

/**
 * Every record now on `stream`, shard after shard from its start (TRIM_HORIZON) to its end: the
 * partition key and the data as text. For checking what reached a stream (the lab, tests).
 */
export async function readStreamRecords(
  kinesis: KinesisClient,
  stream: string,
): Promise<{ partitionKey: string; data: string }[]> {
  const out: { partitionKey: string; data: string }[] = [];
  const shards = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  for (const shard of shards) {
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
      for (const r of page.Records ?? [])
        out.push({
          partitionKey: r.PartitionKey ?? '',
          data: Buffer.from(r.Data ?? new Uint8Array()).toString('utf8'),
        });
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
