/**
 * The lab's own S3 calls (bucket creation, rule S3 actions, Firehose deliveries, on-failure
 * objects of event-source mappings) against the S3
 * emulator, through the real `@aws-sdk/client-s3` (path-style addressing, bounded requests).
 * Lambda code and the CLI reach the same emulator through AWS_ENDPOINT_URL_S3.
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Agent } from 'node:http';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export class LabS3 {
  readonly client: S3Client;
  private readonly buckets = new Set<string>();

  constructor(
    readonly endpoint: string,
    region: string,
    opts: { timeoutMs?: number } = {},
  ) {
    this.client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId: 'lab', secretAccessKey: 'lab' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      // A pool of kept-alive connections: when a Kinesis outage ends, every rule whose action
      // timed out writes its error-store object at once; opening a socket per request overwhelms
      // the emulator's accept queue, which AWS S3 never would. Requests wait for a pooled socket.
      requestHandler: new NodeHttpHandler({
        httpAgent: new Agent({ keepAlive: true, maxSockets: 32 }),
        connectionTimeout: 30_000,
        requestTimeout: opts.timeoutMs ?? 30_000,
      }),
    });
  }

  async createBucket(name: string): Promise<void> {
    await this.client.send(new CreateBucketCommand({ Bucket: name }));
    this.buckets.add(name);
  }

  /** Buckets the stack declared (created by the lab). */
  bucketNames(): string[] {
    return [...this.buckets];
  }

  /** Whether the stack declared bucket `name` (the lab created it). */
  hasBucket(name: string): boolean {
    return this.buckets.has(name);
  }

  async putObject(
    bucket: string,
    key: string,
    body: Buffer,
    headers: { contentType?: string; contentEncoding?: string } = {},
  ): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: headers.contentType,
        ContentEncoding: headers.contentEncoding,
      }),
    );
  }

  async getObject(bucket: string, key: string): Promise<Buffer> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(
      await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  }

  /** Every key under `prefix`, in key order. */
  async listKeys(bucket: string, prefix = ''): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
      );
      keys.push(...(out.Contents ?? []).map((c) => c.Key as string));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  destroy(): void {
    this.client.destroy();
  }
}
