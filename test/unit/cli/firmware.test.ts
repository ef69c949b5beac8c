/**
 * `fleet firmware publish` without AWS: argument checks name the fix, the signature verifies
 * the way a device checks it, the release round-trips through package-version attributes, and
 * the bucket and package resolve flag > environment > stack output.
 */
import { generateKeyPairSync, createPublicKey, verify } from 'node:crypto';
import { FIRMWARE_SIGNATURE_ALGORITHM, type ReleaseRecord } from '../../../core/ota';
import { UsageError } from '../../../cli/errors';
import {
  checkHwRevs,
  checkVersion,
  digestAndSign,
  parseSigningKey,
  releaseAttributes,
  releaseFromAttributes,
  resolveFirmwareResources,
  verifyImage,
} from '../../../cli/firmware-release';

const pem = (type: 'ec' | 'rsa', curve?: string) =>
  (type === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: curve as string })
    : generateKeyPairSync('rsa', { modulusLength: 2048 })
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('argument checks', () => {
  test.each(['1.0.0', '2.4.0-rc.1', '10.20.30'])('version %s is accepted', (v) =>
    expect(checkVersion(v)).toBe(v),
  );
  test.each(['1.0', 'v1.0.0', '1.0.0+build', ''])('version %p is refused with the format', (v) => {
    expect(() => checkVersion(v)).toThrow(UsageError);
    expect(() => checkVersion(v)).toThrow(/use MAJOR.MINOR.PATCH with an optional -suffix/);
  });
  test('hardware revisions: required, checked, de-duplicated', () => {
    expect(checkHwRevs(['A', 'B', 'A'])).toEqual(['A', 'B']);
    expect(() => checkHwRevs([])).toThrow(/--hw-rev REV/);
    expect(() => checkHwRevs(['ok', 'not ok'])).toThrow(/--hw-rev "not ok" invalid; use 1-16 characters/);
  });
  test('signing key: P-256 private keys (PKCS#8 and SEC1) pass; others are refused with the fix', () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(
      parseSigningKey(k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'k.pem').type,
    ).toBe('private');
    expect(
      parseSigningKey(k.privateKey.export({ type: 'sec1', format: 'pem' }) as string, 'k.pem').type,
    ).toBe('private');
    expect(() => parseSigningKey(pem('ec', 'secp384r1'), 'p384.pem')).toThrow(
      /p384.pem is a secp384r1 EC key; firmware is signed with ECDSA P-256/,
    );
    expect(() => parseSigningKey(pem('rsa'), 'rsa.pem')).toThrow(/rsa.pem is a rsa key/);
    expect(() => parseSigningKey('not a key', 'x.pem')).toThrow(
      /x.pem is not a PEM private key .*openssl ecparam/,
    );
    const pub = k.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => parseSigningKey(pub, 'pub.pem')).toThrow(UsageError);
  });
});

test('digest and signature: ECDSA P-256 SHA-256, DER, base64, verified with the public key', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const image = Buffer.from('firmware image bytes');
  const d = digestAndSign(image, privateKey);
  expect(d.sizeBytes).toBe(image.length);
  expect(d.sha256).toMatch(/^[0-9a-f]{64}$/);
  const der = Buffer.from(d.signature, 'base64');
  expect(der[0]).toBe(0x30); // DER SEQUENCE
  expect(verify('sha256', image, { key: publicKey, dsaEncoding: 'der' }, der)).toBe(true);
  expect(verifyImage(image, d.signature, privateKey)).toBe(true);
  expect(verifyImage(Buffer.from('tampered'), d.signature, createPublicKey(privateKey))).toBe(false);
});

test('a release round-trips through the package-version attributes, within 3 KB', () => {
  const release: ReleaseRecord = {
    version: '2.4.0',
    hwRevs: ['A', 'B'],
    sizeBytes: 1024,
    sha256: 'ab'.repeat(32),
    signature: 'MEUCIQ' + 'x'.repeat(90),
    signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    s3: { bucket: 'fw-bucket', key: 'firmware/2.4.0/image.bin', versionId: 'v1' },
    publishedAt: '2026-12-06T05:00:00.000Z',
  };
  const attrs = releaseAttributes(release);
  expect(Object.values(attrs).every((v) => typeof v === 'string' && v.length > 0)).toBe(true);
  expect(Object.entries(attrs).reduce((n, [k, v]) => n + k.length + v.length, 0)).toBeLessThan(3072);
  expect(releaseFromAttributes('2.4.0', attrs)).toEqual(release);
  expect(releaseFromAttributes('2.4.0', { foo: 'bar' })).toBeUndefined();
});

describe('resolveFirmwareResources', () => {
  const outputs = { FirmwareBucketName: 'out-bucket', FirmwarePackageName: 'out-pkg' };
  test('flags win, then environment, then the stack outputs (read only when needed)', async () => {
    const read = jest.fn(async () => outputs);
    await expect(
      resolveFirmwareResources({ flags: { bucket: 'f-b', package: 'f-p' }, env: {}, readStackOutputs: read }),
    ).resolves.toEqual({ bucket: 'f-b', packageName: 'f-p' });
    expect(read).not.toHaveBeenCalled();
    await expect(
      resolveFirmwareResources({ flags: {}, env: { FLEET_FIRMWARE_BUCKET: 'e-b' }, readStackOutputs: read }),
    ).resolves.toEqual({ bucket: 'e-b', packageName: 'out-pkg' });
    expect(read).toHaveBeenCalledWith('IotFleetStack');
  });
  test('missing names: the error lists the flag, variable and output of each', async () => {
    const err = await resolveFirmwareResources({
      flags: { stack: 'Other' },
      env: {},
      readStackOutputs: async () => ({}),
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(
      'firmware bucket: pass --bucket, set FLEET_FIRMWARE_BUCKET, or deploy stack Other with output FirmwareBucketName',
    );
    expect((err as Error).message).toContain('firmware package: pass --package, set FLEET_FIRMWARE_PACKAGE');
  });
});
