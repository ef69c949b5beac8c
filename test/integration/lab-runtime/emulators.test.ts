import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { startEmulators, type Emulators } from '../../../lab/runtime/emulators';
import { LabKinesis } from '../../../lab/runtime/kinesis-client';

jest.setTimeout(60_000);

describe('lab emulators: s3rver through the real S3 SDK, Kinesis pause and resume', () => {
  let dir: string;
  let em: Emulators;
  let s3: S3Client;
  const B = 'lab-bucket';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lab-emulators-'));
    em = await startEmulators({ s3Directory: join(dir, 's3') });
    // Credentials the lab never configured: s3rver accepts any key.
    s3 = new S3Client({
      endpoint: em.s3,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'ASIAANYTHING', secretAccessKey: 'x', sessionToken: 'y' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: B }));
  });

  afterAll(async () => {
    s3?.destroy();
    await em?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const text = async (key: string): Promise<string> => {
    const out = await s3.send(new GetObjectCommand({ Bucket: B, Key: key }));
    return (out.Body as { transformToString(): Promise<string> }).transformToString();
  };
  const keys = async (input: Partial<ConstructorParameters<typeof ListObjectsV2Command>[0]> = {}) => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: B, ...input }));
    return out;
  };

  test('PutObject (string, buffer, and a stream sent aws-chunked with a trailing checksum) and GetObject', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: B,
        Key: 'a/2024/01/x.json',
        Body: '{"a":1}',
        ContentType: 'application/json',
      }),
    );
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'a/2024/01/y.json', Body: Buffer.from('{"b":2}') }));
    const big = Buffer.alloc(150_000, 7);
    await s3.send(
      new PutObjectCommand({
        Bucket: B,
        Key: 'a/2024/02/z.bin',
        Body: Readable.from([big.subarray(0, 70_000), big.subarray(70_000)]),
        ContentLength: big.length,
      }),
    );
    expect(await text('a/2024/01/x.json')).toBe('{"a":1}');
    const z = await s3.send(new GetObjectCommand({ Bucket: B, Key: 'a/2024/02/z.bin' }));
    const bytes = Buffer.from(
      await (z.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    expect(bytes.equals(big)).toBe(true);
    expect(z.ContentEncoding).toBeUndefined();
    await expect(s3.send(new GetObjectCommand({ Bucket: B, Key: 'missing' }))).rejects.toMatchObject({
      name: 'NoSuchKey',
    });
    await expect(
      s3.send(new PutObjectCommand({ Bucket: 'no-bucket', Key: 'k', Body: 'x' })),
    ).rejects.toMatchObject({
      name: 'NoSuchBucket',
    });
  });

  test('ListObjectsV2: Prefix, MaxKeys with ContinuationToken, StartAfter, Delimiter', async () => {
    const page1 = await keys({ Prefix: 'a/', MaxKeys: 2 });
    expect(page1.Contents?.map((c) => c.Key)).toEqual(['a/2024/01/x.json', 'a/2024/01/y.json']);
    expect(page1.IsTruncated).toBe(true);
    const page2 = await keys({ Prefix: 'a/', MaxKeys: 2, ContinuationToken: page1.NextContinuationToken });
    expect(page2.Contents?.map((c) => c.Key)).toEqual(['a/2024/02/z.bin']);
    expect(page2.IsTruncated).toBe(false);
    expect(
      (await keys({ Prefix: 'a/', StartAfter: 'a/2024/01/x.json' })).Contents?.map((c) => c.Key),
    ).toEqual(['a/2024/01/y.json', 'a/2024/02/z.bin']);
    expect((await keys({ Prefix: 'a/2024/', Delimiter: '/' })).CommonPrefixes).toEqual([
      { Prefix: 'a/2024/01/' },
      { Prefix: 'a/2024/02/' },
    ]);
  });

  test('CopyObject and DeleteObject (the replay move)', async () => {
    await s3.send(
      new CopyObjectCommand({
        Bucket: B,
        Key: 'replayed/a/2024/01/x.json',
        CopySource: `${B}/a/2024/01/x.json`,
      }),
    );
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: 'a/2024/01/x.json' }));
    expect(await text('replayed/a/2024/01/x.json')).toBe('{"a":1}');
    expect((await keys({ Prefix: 'a/2024/01/' })).Contents?.map((c) => c.Key)).toEqual(['a/2024/01/y.json']);
  });

  test('the buckets are folders under the S3 directory', () => {
    expect(readdirSync(em.s3Directory)).toContain(B);
  });

  test('a paused Kinesis answers nothing; a call abandoned meanwhile is never applied, a waiting one is', async () => {
    const quick = new LabKinesis(em.kinesis, 'us-east-1', { timeoutMs: 300 });
    const patient = new LabKinesis(em.kinesis, 'us-east-1', { timeoutMs: 10_000 });
    await quick.createStream('s', 1);
    await quick.putRecord('s', 'k', Buffer.from('before'));
    await em.faults.pauseKinesis();
    expect(em.faults.kinesisPaused()).toBe(true);
    await expect(quick.putRecord('s', 'k', Buffer.from('abandoned'))).rejects.toMatchObject({
      code: 'TimeoutError',
    });
    const waiting = patient.putRecord('s', 'k', Buffer.from('waiting'));
    await new Promise((r) => setTimeout(r, 200));
    await em.faults.resumeKinesis();
    await waiting;
    await quick.putRecord('s', 'k', Buffer.from('after'));
    const [shard] = await quick.listShardIds('s');
    const out = await quick.getRecords(await quick.shardIterator('s', shard, 'TRIM_HORIZON'), 100);
    expect(out.Records.map((r) => Buffer.from(r.Data, 'base64').toString())).toEqual([
      'before',
      'waiting',
      'after',
    ]);
  });

  test('a request released after its deadline is dropped: a call that times out was never applied', async () => {
    const k = new LabKinesis(em.kinesis, 'us-east-1', { timeoutMs: 1500 }); // deadline: 1000 ms in
    await em.faults.pauseKinesis();
    const late = k.putRecord('s', 'k', Buffer.from('late'));
    await new Promise((r) => setTimeout(r, 1200)); // held past its deadline, client still waiting
    await em.faults.resumeKinesis();
    await expect(late).rejects.toMatchObject({ code: 'TimeoutError' });
    const [shard] = await k.listShardIds('s');
    const out = await k.getRecords(await k.shardIterator('s', shard, 'TRIM_HORIZON'), 100);
    expect(out.Records.map((r) => Buffer.from(r.Data, 'base64').toString())).not.toContain('late');
  });
});
