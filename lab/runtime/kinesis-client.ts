/**
 * A minimal Kinesis JSON-protocol client for the lab's own calls to the Kinesis emulator
 * (create stream, put record, read shards). HTTP/1.1, unsigned but with the header shape the
 * emulator checks. Lambda code uses the real SDK client through AWS_ENDPOINT_URL_KINESIS.
 *
 * Every call is bounded ({@link LabKinesisOptions.timeoutMs}): a call the emulator does not
 * answer in time fails with `TimeoutError` and its connection is closed. So that "timed out"
 * always means "not applied", each call carries a deadline (`x-lab-deadline`, epoch ms) ending a
 * grace period before the client gives up: the emulator's gate drops a request it would start
 * after the deadline (one held while Kinesis was paused, or one that waited behind a backlog),
 * and a request it starts in time has the grace period to be answered.
 */
import { request } from 'node:http';

export class KinesisError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface KinesisRecord {
  SequenceNumber: string;
  ApproximateArrivalTimestamp: number;
  Data: string;
  PartitionKey: string;
}

export interface LabKinesisOptions {
  /** Longest wait for an answer, ms. @default 3000 */
  timeoutMs?: number;
}

export type IteratorStart =
  | { type: 'TRIM_HORIZON' | 'LATEST' }
  | { type: 'AFTER_SEQUENCE_NUMBER' | 'AT_SEQUENCE_NUMBER'; sequenceNumber: string }
  | { type: 'AT_TIMESTAMP'; timestamp: number };

export class LabKinesis {
  readonly timeoutMs: number;

  constructor(
    readonly endpoint: string,
    readonly region = 'us-east-1',
    opts: LabKinesisOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  call<T = Record<string, unknown>>(operation: string, body: Record<string, unknown>): Promise<T> {
    const url = new URL(this.endpoint);
    const data = Buffer.from(JSON.stringify(body));
    const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    const deadline = Date.now() + this.timeoutMs - Math.min(1000, Math.floor(this.timeoutMs / 3));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: '/',
          headers: {
            'content-type': 'application/x-amz-json-1.1',
            'content-length': data.length,
            'x-amz-target': `Kinesis_20131202.${operation}`,
            'x-amz-date': date,
            'x-lab-deadline': String(deadline),
            authorization: `AWS4-HMAC-SHA256 Credential=lab/${date.slice(0, 8)}/${this.region}/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=lab`,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown>;
            try {
              parsed = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
            } catch {
              reject(
                new KinesisError('KinesisError', `unreadable answer to ${operation}: ${text.slice(0, 200)}`),
              );
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const type = String(parsed.__type ?? 'KinesisError').replace(/^.*#/, '');
              reject(new KinesisError(type, String(parsed.message ?? parsed.Message ?? text)));
            } else resolve(parsed as T);
          });
          res.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        },
      );
      timer = setTimeout(() => {
        req.destroy(
          new KinesisError(
            'TimeoutError',
            `${operation}: no answer from Kinesis within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(data);
    });
  }

  createStream(name: string, shardCount: number): Promise<unknown> {
    return this.call('CreateStream', { StreamName: name, ShardCount: shardCount });
  }

  putRecord(
    stream: string,
    partitionKey: string,
    data: Buffer,
  ): Promise<{ ShardId: string; SequenceNumber: string }> {
    return this.call('PutRecord', {
      StreamName: stream,
      PartitionKey: partitionKey,
      Data: data.toString('base64'),
    });
  }

  async listShardIds(stream: string): Promise<string[]> {
    const out = await this.call<{ StreamDescription: { Shards: { ShardId: string }[] } }>('DescribeStream', {
      StreamName: stream,
    });
    return out.StreamDescription.Shards.map((s) => s.ShardId);
  }

  async shardIterator(
    stream: string,
    shardId: string,
    start: IteratorStart | 'TRIM_HORIZON' | 'LATEST',
  ): Promise<string> {
    const s: IteratorStart = typeof start === 'string' ? { type: start } : start;
    const out = await this.call<{ ShardIterator: string }>('GetShardIterator', {
      StreamName: stream,
      ShardId: shardId,
      ShardIteratorType: s.type,
      ...('sequenceNumber' in s ? { StartingSequenceNumber: s.sequenceNumber } : {}),
      ...('timestamp' in s ? { Timestamp: s.timestamp / 1000 } : {}),
    });
    return out.ShardIterator;
  }

  getRecords(
    iterator: string,
    limit: number,
  ): Promise<{ Records: KinesisRecord[]; NextShardIterator?: string; MillisBehindLatest?: number }> {
    return this.call('GetRecords', { ShardIterator: iterator, Limit: limit });
  }
}
