/** The OTA agent's pure parts: image verification, hwRev, statusDetails limits, OTA profiles. */
import { generateKeyPairSync } from 'node:crypto';
import { FIRMWARE_SIGNATURE_ALGORITHM, type FirmwareJobDocument } from '../../../core/ota';
import {
  downloadFirmwareImage,
  isHwRevCompatible,
  sha256Hex,
  signFirmwareImage,
  verifyFirmwareImage,
} from '../../../device/firmware-image';
import { checkStatusDetails, StatusDetailsError } from '../../../device/jobs-client';
import {
  decideOtaBehaviour,
  otaDraw,
  otaProfileFor,
  parseOtaProfileAssignment,
  parseOtaProfiles,
  streamingProfilesFor,
  type OtaProfile,
} from '../../../device/ota-profiles';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const wrongKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const IMAGE = Buffer.from('firmware image 2.0.0 '.repeat(50));

function image(over: Partial<FirmwareJobDocument['image']> = {}): FirmwareJobDocument['image'] {
  return {
    url: 'http://127.0.0.1:1/fw.bin',
    sizeBytes: IMAGE.length,
    sha256: sha256Hex(IMAGE),
    signature: signFirmwareImage(IMAGE, key.privateKey),
    signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    ...over,
  };
}

describe('verifyFirmwareImage', () => {
  test('a good image with the release key verifies (PEM or KeyObject)', () => {
    expect(verifyFirmwareImage(IMAGE, image(), key.publicKey)).toEqual({ ok: true });
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(verifyFirmwareImage(IMAGE, image(), pem)).toEqual({ ok: true });
  });

  test.each([
    ['size', IMAGE, image({ sizeBytes: IMAGE.length + 1 }), key.publicKey],
    ['sha256', IMAGE, image({ sha256: sha256Hex(Buffer.from('x')) }), key.publicKey],
    ['sha256', Buffer.from(IMAGE).fill(0x41, 0, 1), image(), key.publicKey],
    ['signature', IMAGE, image({ signature: signFirmwareImage(IMAGE, wrongKey.privateKey) }), key.publicKey],
    ['signature', IMAGE, image(), wrongKey.publicKey],
    ['signature', IMAGE, image({ signature: 'bm90IGEgc2lnbmF0dXJl' }), key.publicKey],
    ['signature', IMAGE, image(), p384.publicKey],
  ])('refused on %s', (check, bytes, img, publicKey) => {
    const v = verifyFirmwareImage(bytes, img, publicKey);
    expect(v).toMatchObject({ ok: false, check });
  });

  test('the first failing check is named: size before sha256 before signature', () => {
    const v = verifyFirmwareImage(Buffer.from('short'), image({ signature: 'AAAA' }), key.publicKey);
    expect(v).toMatchObject({ ok: false, check: 'size' });
  });
});

test.each([
  [['revA', 'revB'], 'revA', true],
  [['revA'], 'revB', false],
  [['revA'], 'reva', false],
])('hwRevs %j and device %s: compatible %s', (hwRevs, hwRev, ok) => {
  expect(isHwRevCompatible({ hwRevs }, hwRev)).toBe(ok);
});

test.each([
  ['${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}', 'still a presigned-URL placeholder'],
  ['ftp://127.0.0.1/fw.bin', 'is not http or https'],
  ['not a url', 'is not a URL'],
])('download refuses %s before any request', async (url, message) => {
  await expect(downloadFirmwareImage(url, { maxBytes: 10 })).rejects.toThrow(message);
});

describe('checkStatusDetails', () => {
  const pairs = (n: number): Record<string, string> =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

  test.each([
    ['ten pairs', pairs(10)],
    ['a 128-character key of every allowed kind', { [`a:B_9-${'x'.repeat(122)}`]: 'v' }],
    ['a 1,024-character value', { reason: 'r'.repeat(1024) }],
    ['no pairs', {}],
  ])('accepts %s', (_, details) => {
    expect(() => checkStatusDetails(details)).not.toThrow();
  });

  test.each([
    ['eleven pairs', pairs(11), '11 pairs, at most 10'],
    ['a 129-character key', { ['k'.repeat(129)]: 'v' }, 'must be 1 to 128 characters'],
    ['an empty key', { '': 'v' }, 'must be 1 to 128 characters'],
    ['a key with a space', { 'bad key': 'v' }, "may only hold letters, digits, ':', '_' and '-'"],
    ['a key with a dot', { 'a.b': 'v' }, 'may only hold'],
    ['a 1,025-character value', { reason: 'r'.repeat(1025) }, 'must be 1 to 1024 characters, got 1025'],
    ['an empty value', { step: '' }, 'must be 1 to 1024 characters, got 0'],
    ['a number value', { progress: 5 as unknown as string }, 'must be a string'],
  ])('refuses %s', (_, details, message) => {
    expect(() => checkStatusDetails(details)).toThrow(StatusDetailsError);
    expect(() => checkStatusDetails(details)).toThrow(message);
  });
});

describe('OTA profiles', () => {
  test.each<[OtaProfile, string]>([
    [{ name: 'good' }, 'install'],
    [{ name: 'install-failure' }, 'fail-install'],
    [{ name: 'install-failure', failurePercent: 0 }, 'install'],
    [{ name: 'never-answers' }, 'hang'],
    [{ name: 'crash-after-success' }, 'crash-after-success'],
    [{ name: 'silent-after-success' }, 'silent-after-success'],
  ])('%j → %s', (profile, behaviour) => {
    expect(decideOtaBehaviour(profile, () => 0.5)).toBe(behaviour);
  });

  test('install-failure:30 fails about 30 % of devices, the same ones for the same seed', () => {
    const profile: OtaProfile = { name: 'install-failure', failurePercent: 30 };
    const run = (seed: string): string[] =>
      Array.from({ length: 1000 }, (_, i) => `SN-${i}`).filter(
        (serial) => decideOtaBehaviour(profile, otaDraw(seed, serial, '3.0.0')) === 'fail-install',
      );
    const failing = run('seed-1');
    expect(failing.length).toBeGreaterThan(250);
    expect(failing.length).toBeLessThan(350);
    expect(run('seed-1')).toEqual(failing);
    expect(run('seed-2')).not.toEqual(failing);
  });

  test('a version not listed is good', () => {
    expect(otaProfileFor('9.9.9', { '3.0.0': { name: 'never-answers' } })).toEqual({ name: 'good' });
    expect(otaProfileFor('9.9.9', undefined)).toEqual({ name: 'good' });
  });

  test('crash-after-success versions run the crash-looping streaming profile', () => {
    expect(
      streamingProfilesFor({
        '3.0.0': { name: 'install-failure', failurePercent: 20 },
        '4.0.0': { name: 'crash-after-success' },
        '5.0.0': { name: 'silent-after-success' },
      }),
    ).toEqual({ '4.0.0': 'crash-looping' });
  });

  test.each([
    ['3.0.0=install-failure:30', ['3.0.0', { name: 'install-failure', failurePercent: 30 }]],
    ['3.0.0=install-failure', ['3.0.0', { name: 'install-failure' }]],
    [' 4.0.0-rc1 = crash-after-success ', ['4.0.0-rc1', { name: 'crash-after-success' }]],
    ['5.0.0=silent-after-success', ['5.0.0', { name: 'silent-after-success' }]],
  ])('parses %s', (text, expected) => {
    expect(parseOtaProfileAssignment(text)).toEqual(expected);
  });

  test.each([
    ['3.0.0', 'is not <firmware>=<profile>[:<percent>]'],
    ['v3=good', 'is not a firmware version'],
    ['3.0.0=bricks', 'is not an OTA profile; use one of good, install-failure'],
    ['3.0.0=good:10', 'only install-failure takes a percent'],
    ['3.0.0=install-failure:101', 'percent must be 0 to 100'],
  ])('refuses %s', (text, message) => {
    expect(() => parseOtaProfileAssignment(text)).toThrow(message);
  });

  test('the same version twice with different profiles is an error', () => {
    expect(parseOtaProfiles(['3.0.0=good', '3.0.0=good'])).toEqual({ '3.0.0': { name: 'good' } });
    expect(() => parseOtaProfiles(['3.0.0=good', '3.0.0=never-answers'])).toThrow('two OTA profiles');
  });
});
