/**
 * A reader's position in one Kinesis shard, shared by the event-source-mapping and Firehose
 * pollers: the last sequence number read, the last one checkpointed (processed and
 * acknowledged), and the shard iterator in use.
 *
 * A failed GetRecords (Kinesis unavailable, a timeout) leaves the position where it was: the
 * next read uses the same iterator, so nothing is skipped and nothing read twice. An expired
 * iterator is replaced from the position (AFTER_SEQUENCE_NUMBER), or from the starting position
 * when nothing was read yet. {@link ShardCursor.rewind} goes back to the checkpoint, which is
 * what a restarted poller does: records read but not acknowledged are read again, records
 * acknowledged never are.
 */
import type { IteratorStart, KinesisRecord, LabKinesis } from './kinesis-client';

export type StartingPosition =
  { type: 'TRIM_HORIZON' | 'LATEST' } | { type: 'AT_TIMESTAMP'; timestamp: number };

export class ShardCursor {
  /** Last sequence number read (delivered to the consumer). */
  position?: string;
  /** Last sequence number processed and acknowledged. */
  checkpoint?: string;
  /** The shard ended (resharding); no more records. */
  closed = false;
  private iterator?: string;
  /** The first iterator (LATEST is a point in time: kept so a rewind before any read returns there). */
  private initial?: string;

  constructor(
    private readonly kinesis: LabKinesis,
    readonly stream: string,
    readonly shardId: string,
    private readonly start: StartingPosition,
  ) {}

  /** Take the first iterator now (so LATEST means "from now", not from the first poll). */
  async open(): Promise<void> {
    if (this.iterator) return;
    this.iterator = await this.kinesis.shardIterator(this.stream, this.shardId, this.startRequest());
    this.initial = this.iterator;
  }

  private startRequest(): IteratorStart {
    if (this.position) return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: this.position };
    return this.start;
  }

  /**
   * Up to `limit` records after the position. Throws on a Kinesis error (the position is kept;
   * call again to retry).
   */
  async read(limit: number): Promise<KinesisRecord[]> {
    if (this.closed) return [];
    if (!this.iterator) {
      this.iterator =
        !this.position && this.initial
          ? this.initial
          : await this.kinesis.shardIterator(this.stream, this.shardId, this.startRequest());
      this.initial ??= this.iterator;
    }
    let out;
    try {
      out = await this.kinesis.getRecords(this.iterator, limit);
    } catch (e) {
      if ((e as { code?: string }).code === 'ExpiredIteratorException') {
        this.iterator = undefined;
        if (!this.position) this.initial = undefined;
      }
      throw e;
    }
    if (out.Records.length) this.position = out.Records[out.Records.length - 1].SequenceNumber;
    this.iterator = out.NextShardIterator;
    if (!out.NextShardIterator) this.closed = true;
    return out.Records;
  }

  /** Mark everything up to `sequenceNumber` processed. */
  commit(sequenceNumber: string): void {
    this.checkpoint = sequenceNumber;
  }

  /** Go back to the checkpoint: records read since are read again. */
  rewind(): void {
    this.position = this.checkpoint;
    this.iterator = undefined;
    this.closed = false;
  }
}

/** Sleep that a stop can cut short. */
export class Sleeper {
  private readonly timers = new Map<NodeJS.Timeout, () => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      t.unref();
      this.timers.set(t, resolve);
    });
  }

  /** Wake every sleeper now. */
  wakeAll(): void {
    for (const [t, resolve] of this.timers) {
      clearTimeout(t);
      resolve();
    }
    this.timers.clear();
  }
}

/** Backoff after consecutive failures: 250 ms doubling up to 2 s. */
export function backoffMs(failures: number): number {
  return Math.min(2000, 250 * 2 ** Math.max(0, failures - 1));
}

/** What a stream poller needs around one read of a shard (see {@link readShardOnce}). */
export interface ShardReadContext {
  sleeper: Sleeper;
  pollIntervalMs: number;
  counters: { pollErrors: number; recordsRead: number };
  /** Empty reads per shard (what `caughtUp` looks at). */
  emptyReads: Map<string, number>;
  log: (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
  /** How the poller names itself: e.g. `Firehose` reading `its source stream`, logged under `deliveryStream: <id>`. */
  who: string;
  source: string;
  idKey: string;
  id: string;
}

/**
 * One read of shard `c` as both stream pollers (event-source mappings, Firehose) do it: the
 * records read; `undefined` after a failed read (logged once per run of failures, then backed
 * off) or an empty one (after the poll interval); `'closed'` once the shard has ended. `state`
 * carries the run of failures from one call to the next.
 */
export async function readShardOnce(
  c: ShardCursor,
  read: () => Promise<KinesisRecord[]>,
  state: { failures: number },
  x: ShardReadContext,
): Promise<KinesisRecord[] | undefined | 'closed'> {
  let records: KinesisRecord[];
  try {
    records = await read();
  } catch (e) {
    state.failures++;
    x.counters.pollErrors++;
    if (state.failures === 1)
      x.log({
        level: 'warn',
        msg: `${x.who} cannot read ${x.source}; retrying`,
        [x.idKey]: x.id,
        shardId: c.shardId,
        error: (e as Error).message,
      });
    await x.sleeper.sleep(backoffMs(state.failures));
    return undefined;
  }
  if (state.failures > 0)
    x.log({
      level: 'info',
      msg: `${x.who} reads ${x.source} again`,
      [x.idKey]: x.id,
      shardId: c.shardId,
      failedPolls: state.failures,
    });
  state.failures = 0;
  if (records.length === 0) {
    x.emptyReads.set(c.shardId, (x.emptyReads.get(c.shardId) ?? 0) + 1);
    if (c.closed) return 'closed';
    await x.sleeper.sleep(x.pollIntervalMs);
    return undefined;
  }
  x.counters.recordsRead += records.length;
  return records;
}

/**
 * The shard loops a stream poller runs (event-source mappings, Firehose): one cursor and one loop
 * per shard, a generation that a restart bumps so old loops end, and the wait for every shard to
 * be read to its end. The poller supplies the loop body.
 */
export class ShardLoops {
  readonly cursors: ShardCursor[] = [];
  readonly sleeper = new Sleeper();
  /** Empty reads per shard: a shard read to its end since a moment has more than it had then. */
  readonly emptyReads = new Map<string, number>();
  private readonly loops = new Set<Promise<void>>();
  private stoppedFlag = false;
  private gen = 0;

  constructor(
    private readonly body: (c: ShardCursor, generation: number) => Promise<void>,
    private readonly onLoopError: (c: ShardCursor, e: Error) => void,
  ) {}

  get generation(): number {
    return this.gen;
  }

  get stopped(): boolean {
    return this.stoppedFlag;
  }

  /** Open a cursor on every shard of `stream` at `position`, then start the loops. */
  async start(kinesis: LabKinesis, stream: string, position: StartingPosition): Promise<void> {
    for (const shardId of await kinesis.listShardIds(stream)) {
      const c = new ShardCursor(kinesis, stream, shardId, position);
      await c.open();
      this.cursors.push(c);
    }
    this.launch();
  }

  /** The loops of `generation` may go on (not stopped, not restarted since). */
  live(generation: number): boolean {
    return !this.stoppedFlag && generation === this.gen;
  }

  /**
   * True once every shard was read to its end after the call; false after `timeoutMs` or a stop.
   * With `wake`, sleeping loops are woken to read at once.
   */
  async readToEnd(timeoutMs: number, wake = false): Promise<boolean> {
    const since = new Map(this.cursors.map((c) => [c.shardId, this.emptyReads.get(c.shardId) ?? 0]));
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && !this.stoppedFlag) {
      if (
        this.cursors.every(
          (c) => c.closed || (this.emptyReads.get(c.shardId) ?? 0) > (since.get(c.shardId) ?? 0),
        )
      )
        return true;
      if (wake) this.sleeper.wakeAll();
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  /** End the loops, run `between` (drop what they held), then read again from the checkpoints. */
  async restart(between?: () => Promise<void> | void): Promise<void> {
    this.gen++;
    this.sleeper.wakeAll();
    await Promise.allSettled([...this.loops]);
    await between?.();
    for (const c of this.cursors) c.rewind();
    if (!this.stoppedFlag) this.launch();
  }

  async stop(): Promise<void> {
    this.stoppedFlag = true;
    this.sleeper.wakeAll();
    await Promise.allSettled([...this.loops]);
  }

  private launch(): void {
    const generation = this.gen;
    for (const c of this.cursors) {
      const loop = this.body(c, generation).catch((e: Error) => this.onLoopError(c, e));
      this.loops.add(loop);
      void loop.finally(() => this.loops.delete(loop));
    }
  }
}
