/**
 * `fleet firmware publish` end to end against the lab's IoT control plane (package catalog)
 * and s3rver (the firmware bucket), both on loopback with random ports, through `main`: the
 * image lands at firmware/<version>/image.bin with its sha256 metadata, the package version is
 * created with the release as attributes and published, its signature verifies; publishing the
 * same image again is a no-op, another image under the same version is refused, an interrupted
 * run's DRAFT is finished; bad arguments exit 2 before any AWS call.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreatePackageCommand,
  CreatePackageVersionCommand,
  GetPackageVersionCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { FirmwarePublishResult } from '../../../cli/commands/firmware';
import { createContext } from '../../../cli/context';
import { EXIT_CODES } from '../../../cli/errors';
import { releaseAttributes } from '../../../cli/firmware-release';
import { memorySink, MemorySink } from '../../../cli/output';
import { ContextFactory, main } from '../../../cli/program';
import type { IotCore } from '../../../lab/iot';
import { startCore } from '../lab-iot/helpers';

/* eslint-disable @typescript-eslint/no-require-imports */
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};
/* eslint-enable @typescript-eslint/no-require-imports */

const NOW = new Date('2026-12-06T05:00:00.000Z');
const region = 'us-east-1';
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const BUCKET = 'fleet-firmware-test';
const PACKAGE = 'fleet-firmware';

let dir: string;
let s3dir: string;
let s3server: { close(): Promise<void> };
let s3Endpoint: string;
let core: IotCore;
let iot: IoTClient;
let s3: S3Client;
const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

const newS3 = () =>
  new S3Client({
    endpoint: s3Endpoint,
    region,
    credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fw-publish-'));
  s3dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3dir });
  s3Endpoint = `http://127.0.0.1:${(await server.run()).port}`;
  s3server = server;
  s3 = newS3();
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  ({ core, iot } = await startCore());
  await iot.send(new CreatePackageCommand({ packageName: PACKAGE }));
  await writeFile(join(dir, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  await writeFile(
    join(dir, 'p384.pem'),
    generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string,
  );
});

afterAll(async () => {
  s3.destroy();
  iot.destroy();
  await core.stop();
  await s3server.close();
  await rm(s3dir, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** Run `fleet …` in-process with clients on the lab and s3rver. */
async function fleet(args: string[]): Promise<{ code: number; out: MemorySink; stderr: string }> {
  const out = memorySink();
  const stderr: string[] = [];
  const factory: ContextFactory = async () => {
    const dynamo = new DynamoDBClient({ region, credentials });
    return createContext({
      resources: {},
      clients: {
        dynamo,
        doc: DynamoDBDocumentClient.from(dynamo),
        iot: new IoTClient({ region, credentials, endpoint: core.controlPlaneUrl, maxAttempts: 1 }),
        s3: newS3(),
      },
      out,
      now: () => NOW,
    });
  };
  const code = await main(
    ['firmware', 'publish', '--bucket', BUCKET, '--package', PACKAGE, ...args],
    factory,
    {
      stdout: () => undefined,
      stderr: (t) => void stderr.push(t),
      env: {},
    },
  );
  return { code, out, stderr: stderr.join('') };
}

async function image(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

const key = () => join(dir, 'key.pem');

test('publish uploads, signs and records a published package version', async () => {
  const file = await image('fw-1.bin', 'firmware one'.repeat(100));
  const r = await fleet([
    '--version',
    '1.0.0',
    '--file',
    file,
    '--hw-rev',
    'A',
    '--hw-rev',
    'B,C',
    '--signing-key',
    key(),
    '--json',
  ]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT_CODES.ok);
  const result = r.out.values[0] as FirmwarePublishResult;
  expect(result).toMatchObject({
    outcome: 'published',
    status: 'PUBLISHED',
    packageName: PACKAGE,
    packageVersionArn: `arn:aws:iot:us-east-1:123456789012:package/${PACKAGE}/version/1.0.0`,
    release: {
      version: '1.0.0',
      hwRevs: ['A', 'B', 'C'],
      sizeBytes: 1200,
      signatureAlgorithm: 'ECDSA-P256-SHA256',
      s3: { bucket: BUCKET, key: 'firmware/1.0.0/image.bin' },
      publishedAt: NOW.toISOString(),
    },
  });
  const bytes = Buffer.from('firmware one'.repeat(100));
  expect(
    verify(
      'sha256',
      bytes,
      { key: keys.publicKey, dsaEncoding: 'der' },
      Buffer.from(result.release.signature, 'base64'),
    ),
  ).toBe(true);

  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'firmware/1.0.0/image.bin' }));
  expect(head.ContentLength).toBe(1200);
  expect(head.Metadata).toMatchObject({ sha256: result.release.sha256, version: '1.0.0' });

  const v = await iot.send(new GetPackageVersionCommand({ packageName: PACKAGE, versionName: '1.0.0' }));
  expect(v.status).toBe('PUBLISHED');
  expect(v.attributes).toEqual(releaseAttributes(result.release));
  expect(v.artifact?.s3Location).toMatchObject({ bucket: BUCKET, key: 'firmware/1.0.0/image.bin' });
});

test('the same image again is a no-op that prints the release; another image is refused', async () => {
  const file = await image('fw-2.bin', 'firmware two');
  const first = await fleet(['--version', '2.0.0', '--file', file, '--hw-rev', 'A', '--signing-key', key()]);
  expect(first.code).toBe(EXIT_CODES.ok);
  expect(first.out.lines[0]).toBe('published firmware 2.0.0 (PUBLISHED)');

  const again = await fleet(['--version', '2.0.0', '--file', file, '--hw-rev', 'A', '--signing-key', key()]);
  expect(again.code).toBe(EXIT_CODES.ok);
  expect(again.out.lines[0]).toBe(
    'firmware 2.0.0 is already released with this image (PUBLISHED); nothing to do',
  );
  expect(again.out.lines.join('\n')).toContain(`s3://${BUCKET}/firmware/2.0.0/image.bin`);

  const other = await image('fw-2b.bin', 'another image');
  const refused = await fleet([
    '--version',
    '2.0.0',
    '--file',
    other,
    '--hw-rev',
    'A',
    '--signing-key',
    key(),
  ]);
  expect(refused.code).toBe(EXIT_CODES.failed);
  expect(refused.stderr).toMatch(
    /version 2\.0\.0 is already released with another image \(sha256 [0-9a-f]{64}, this file [0-9a-f]{64}\); .*publish this file under a new version/,
  );
  // The refused image did not replace the released one.
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'firmware/2.0.0/image.bin' }));
  expect(head.ContentLength).toBe('firmware two'.length);
});

test('a DRAFT left by an interrupted run with the same image is published', async () => {
  const file = await image('fw-3.bin', 'firmware three');
  // Publish once to learn the attributes, then fake the interrupted state under another version.
  const r = await fleet([
    '--version',
    '3.0.0',
    '--file',
    file,
    '--hw-rev',
    'A',
    '--signing-key',
    key(),
    '--json',
  ]);
  const { release } = r.out.values[0] as FirmwarePublishResult;
  await iot.send(
    new CreatePackageVersionCommand({
      packageName: PACKAGE,
      versionName: '3.0.1',
      attributes: releaseAttributes({ ...release, version: '3.0.1' }),
    }),
  );
  const resumed = await fleet([
    '--version',
    '3.0.1',
    '--file',
    file,
    '--hw-rev',
    'A',
    '--signing-key',
    key(),
    '--json',
  ]);
  expect(resumed.code).toBe(EXIT_CODES.ok);
  expect(resumed.out.values[0]).toMatchObject({ outcome: 'unchanged', status: 'PUBLISHED' });
  const v = await iot.send(new GetPackageVersionCommand({ packageName: PACKAGE, versionName: '3.0.1' }));
  expect(v.status).toBe('PUBLISHED');
});

test.each([
  [['--version', '1.0', '--hw-rev', 'A'], /--version "1.0" is invalid; use MAJOR.MINOR.PATCH/],
  [['--version', '4.0.0'], /--hw-rev REV/],
  [
    ['--version', '4.0.0', '--hw-rev', 'A', '--signer-profile', 'p'],
    /--signer-profile \(AWS Signer\) is not supported yet/,
  ],
])('bad arguments exit 2 naming the fix: %j', async (args, message) => {
  const file = await image('fw-4.bin', 'firmware four');
  const r = await fleet([...args, '--file', file, '--signing-key', key()]);
  expect(r.code).toBe(EXIT_CODES.usage);
  expect(r.stderr).toMatch(message);
});

test('a missing image and a key on the wrong curve exit 2', async () => {
  const missing = await fleet([
    '--version',
    '4.0.0',
    '--file',
    join(dir, 'nope.bin'),
    '--hw-rev',
    'A',
    '--signing-key',
    key(),
  ]);
  expect(missing.code).toBe(EXIT_CODES.usage);
  expect(missing.stderr).toContain('cannot read firmware image');
  expect(missing.stderr).toContain('check the path given to --file');
  const file = await image('fw-5.bin', 'firmware five');
  const p384 = await fleet([
    '--version',
    '4.0.0',
    '--file',
    file,
    '--hw-rev',
    'A',
    '--signing-key',
    join(dir, 'p384.pem'),
  ]);
  expect(p384.code).toBe(EXIT_CODES.usage);
  expect(p384.stderr).toMatch(/secp384r1 EC key; firmware is signed with ECDSA P-256/);
});

test('an unknown package is a clear error', async () => {
  const file = await image('fw-6.bin', 'firmware six');
  const out = memorySink();
  const stderr: string[] = [];
  const code = await main(
    [
      'firmware',
      'publish',
      '--bucket',
      BUCKET,
      '--package',
      'missing-pkg',
      '--version',
      '6.0.0',
      '--file',
      file,
      '--hw-rev',
      'A',
      '--signing-key',
      key(),
    ],
    async () => {
      const dynamo = new DynamoDBClient({ region, credentials });
      return createContext({
        resources: {},
        clients: {
          dynamo,
          doc: DynamoDBDocumentClient.from(dynamo),
          iot: new IoTClient({ region, credentials, endpoint: core.controlPlaneUrl, maxAttempts: 1 }),
          s3: newS3(),
        },
        out,
      });
    },
    { stderr: (t) => void stderr.push(t), env: {} },
  );
  expect(code).toBe(EXIT_CODES.failed);
  expect(stderr.join('')).toMatch(
    /package missing-pkg does not exist in the Software Package Catalog; deploy the stack/,
  );
});
