/** The controller reads back exactly the release `fleet firmware publish` records. */
import { releaseAttributes } from '../../../cli/firmware-release';
import type { ReleaseRecord } from '../../../core/ota';
import { releaseFromAttributes as releaseOfPackageVersion } from '../../../core/ota';

const base: ReleaseRecord = {
  version: '2.0.0',
  hwRevs: ['A', 'B'],
  sizeBytes: 1024,
  sha256: 'a'.repeat(64),
  signature: 'MEUCIQ==',
  signatureAlgorithm: 'ECDSA-P256-SHA256',
  s3: { bucket: 'fw', key: 'firmware/2.0.0/image.bin' },
  publishedAt: '2026-12-05T00:00:00.000Z',
};

test.each([
  ['without an S3 version id', base],
  ['with an S3 version id', { ...base, s3: { ...base.s3, versionId: 'v1' } }],
])('round trip %s', (_, release) => {
  expect(releaseOfPackageVersion(release.version, releaseAttributes(release))).toEqual(release);
});

test.each([
  ['no attributes', undefined],
  ['no sha256', { s3Bucket: 'fw', s3Key: 'k', signature: 's' }],
  ['another signature algorithm', { ...releaseAttributes(base), signatureAlgorithm: 'RSA' }],
])('%s is no release', (_, attributes) => {
  expect(releaseOfPackageVersion('2.0.0', attributes)).toBeUndefined();
});
