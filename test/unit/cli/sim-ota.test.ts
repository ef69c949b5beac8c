/**
 * `fleet sim`'s OTA flags: --release-key, --ota-profile and --ota-step-timeout are checked before
 * any connection, each problem a UsageError naming the flag and the fix; simOta builds the
 * streaming units' OTA options (hardware revision per serial from the identities).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkOtaFlags,
  checkStreamFlags,
  simOta,
  simReleaseKey,
  type SimOptions,
} from '../../../cli/commands/sim';
import { UsageError } from '../../../cli/errors';

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const PUB = p256.publicKey.export({ type: 'spki', format: 'pem' }) as string;

const base: SimOptions = {
  endpoint: 'localhost:8883',
  claimCert: 'c.pem',
  claimKey: 'k.pem',
  ca: 'ca.pem',
  streamSeconds: 60,
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sim-ota-'));
  await writeFile(join(dir, 'release.pub.pem'), PUB);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkOtaFlags', () => {
  test.each<[string, Partial<SimOptions>, RegExp]>([
    [
      'profiles without a key',
      { otaProfiles: ['3.0.0=install-failure:30'] },
      /^--ota-profile only apply .* add --release-key FILE/,
    ],
    [
      'step timeout without a key',
      { otaStepTimeoutMin: 5 },
      /^--ota-step-timeout only apply .* add --release-key/,
    ],
    [
      'an unknown profile',
      { releaseKey: PUB, otaProfiles: ['3.0.0=bricks'] },
      /^--ota-profile "bricks" is not an OTA profile; use one of good, /,
    ],
    [
      'a malformed assignment',
      { releaseKey: PUB, otaProfiles: ['3.0.0'] },
      /^--ota-profile "3.0.0" is not <firmware>=<profile>/,
    ],
    [
      'a percent on another profile',
      { releaseKey: PUB, otaProfiles: ['4.0.0=crash-after-success:10'] },
      /only install-failure takes a percent/,
    ],
    [
      'a step timeout of 0',
      { releaseKey: PUB, otaStepTimeoutMin: 0 },
      /^--ota-step-timeout "0" must be a whole number of minutes from 1 to 10080/,
    ],
    [
      'a step timeout over 7 days',
      { releaseKey: PUB, otaStepTimeoutMin: 10_081 },
      /from 1 to 10080, e\.g\. --ota-step-timeout 10/,
    ],
  ])('%s', (_name, given, message) => {
    const run = () => checkOtaFlags({ ...base, ...given });
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });

  test('good flags pass', () => {
    expect(() =>
      checkOtaFlags({
        releaseKey: PUB,
        otaProfiles: ['3.0.0=install-failure:30', '5.0.0=silent-after-success'],
        otaStepTimeoutMin: 15,
      }),
    ).not.toThrow();
  });

  test('the OTA flags only apply when streaming', () => {
    const run = () => checkStreamFlags({ ...base, streamSeconds: undefined, releaseKey: PUB });
    expect(run).toThrow(/--release-key only apply when streaming; add --stream-seconds N/);
  });
});

describe('simReleaseKey', () => {
  test('a P-256 public key file', async () => {
    const key = await simReleaseKey(join(dir, 'release.pub.pem'));
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  test('another curve names the signing key to use', async () => {
    const pem = p384.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expect(simReleaseKey(pem)).rejects.toThrow(/--release-key \(PEM text\) is not an ECDSA P-256 key/);
  });

  test('something that is not a key says how to make one', async () => {
    await writeFile(join(dir, 'junk.pem'), '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
    await expect(simReleaseKey(join(dir, 'junk.pem'))).rejects.toThrow(
      /is not a public key in PEM; give the release public key \(openssl ec .* -pubout/,
    );
  });
});

describe('simOta', () => {
  test('nothing without --release-key or without streaming', async () => {
    expect(await simOta(base, undefined)).toBeUndefined();
    expect(await simOta({ ...base, releaseKey: PUB, streamSeconds: undefined }, undefined)).toBeUndefined();
  });

  test('profiles, step timeout (default 10), seed, and hardware revisions from the identities', async () => {
    const ota = await simOta(
      { ...base, releaseKey: PUB, otaProfiles: ['4.0.0=crash-after-success'], seed: 's1', hwRev: 'C' },
      [{ serial: 'SN-1', lot: 'L', hwRev: 'B', firmware: '1.0.0' }],
    );
    expect(ota).toMatchObject({
      profiles: { '4.0.0': { name: 'crash-after-success' } },
      stepTimeoutInMinutes: 10,
      seed: 's1',
    });
    expect(ota?.hwRevOf('SN-1')).toBe('B');
    expect(ota?.hwRevOf('SN-2')).toBe('C');
    expect((await simOta({ ...base, releaseKey: PUB, otaStepTimeoutMin: 3 }, undefined))?.hwRevOf('X')).toBe(
      'A',
    );
  });
});
