/**
 * The lab's presigned URLs: what a job document's `${aws:iot:s3-presigned-url:…}` becomes. The
 * runtime hands IoT Core a presigner whose URLs are served from the S3 emulator on loopback and
 * expire by the lab's clock.
 */
import { rmSync } from 'node:fs';
import { startLabRuntime, type LabRuntime } from '../../../lab/runtime';
import type { StartIotCoreOptions } from '../../../lab/runtime/iot-core';
import { fakeIotCore, writeAssembly } from './fixture';

jest.setTimeout(60_000);

describe('presigned URLs in the lab', () => {
  let dir: string;
  let lab: LabRuntime;
  let iotOptions: StartIotCoreOptions;
  let now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const image = Buffer.from('firmware image bytes \u0000\u0001\u0002');

  beforeAll(async () => {
    dir = writeAssembly(
      {
        Resources: { Firmware: { Type: 'AWS::S3::Bucket', Properties: { BucketName: 'lab-firmware' } } },
      },
      {},
    );
    lab = await startLabRuntime({
      projectDir: dir,
      cdkOut: '.',
      synth: false,
      iotCore: async (opts) => {
        iotOptions = opts;
        return fakeIotCore();
      },
      logDir: false,
      labDir: `${dir}/.lab`,
      schedules: 'manual',
      clock: () => now,
    });
    await lab.s3.putObject('lab-firmware', 'releases/2.0.0/image.bin', image);
  });

  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('IoT Core gets the presigner and the lab clock', () => {
    expect(iotOptions.presignUrl).toBeDefined();
    expect(iotOptions.clock?.()).toBe(now);
  });

  test('the URL is http on loopback and serves the object without credentials', async () => {
    const url = iotOptions.presignUrl!('lab-firmware', 'releases/2.0.0/image.bin', 3600);
    expect(url.startsWith(`${lab.endpoints.presignedUrls}/lab-firmware/releases/2.0.0/image.bin?`)).toBe(
      true,
    );
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(image);
  });

  test('after expiresInSec (lab clock) the URL answers 403 AccessDenied', async () => {
    const url = lab.presignUrl('lab-firmware', 'releases/2.0.0/image.bin', 60);
    now += 60_000;
    expect((await fetch(url)).status).toBe(200);
    now += 1_000;
    const res = await fetch(url);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Code>AccessDenied</Code>');
  });

  test('an altered URL is refused, a missing key is 404', async () => {
    const url = lab.presignUrl('lab-firmware', 'releases/2.0.0/image.bin', 3600);
    const other = url.replace('2.0.0', '9.9.9');
    const altered = await fetch(other);
    expect(altered.status).toBe(403);
    expect(await altered.text()).toContain('SignatureDoesNotMatch');
    const missing = await fetch(lab.presignUrl('lab-firmware', 'releases/none.bin', 3600));
    expect(missing.status).toBe(404);
  });
});
