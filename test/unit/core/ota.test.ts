/** The firmware-update contract: job document, presigned URL placeholders, deterministic job ids. */
import {
  firmwareJobDocument,
  MAX_JOB_ID_LENGTH,
  parseFirmwareJobDocument,
  parsePresignedUrlPlaceholder,
  presignedUrlPlaceholder,
  rolloutJobId,
  type ReleaseRecord,
} from '../../../core/ota';

const release: ReleaseRecord = {
  version: '2.1.0-rc.1',
  hwRevs: ['A', 'B'],
  sizeBytes: 1024,
  sha256: 'a'.repeat(64),
  signature: 'MEUCIQ==',
  signatureAlgorithm: 'ECDSA-P256-SHA256',
  s3: { bucket: 'fw-bucket', key: 'firmware/2.1.0-rc.1.bin' },
  publishedAt: '2026-12-06T00:00:00.000Z',
};

test('the job document of a release parses back, with the placeholder naming the object', () => {
  const doc = firmwareJobDocument(release);
  expect(parseFirmwareJobDocument(JSON.parse(JSON.stringify(doc)))).toEqual(doc);
  expect(parsePresignedUrlPlaceholder(doc.image.url)).toEqual({
    bucket: 'fw-bucket',
    key: 'firmware/2.1.0-rc.1.bin',
  });
  expect(doc.image.url).toBe(
    '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/fw-bucket/firmware/2.1.0-rc.1.bin}',
  );
  expect(firmwareJobDocument(release, true).rollback).toBe(true);
  expect(parsePresignedUrlPlaceholder('https://example.invalid/x')).toBeUndefined();
  expect(presignedUrlPlaceholder('b', 'k/x')).toContain('/b/k/x}');
});

test.each([
  [{ operation: 'reboot' }, 'operation'],
  [{ ...firmwareJobDocument(release), version: 'v2' }, 'version'],
  [{ ...firmwareJobDocument(release), hwRevs: [] }, 'hwRevs'],
  [
    { ...firmwareJobDocument(release), image: { ...firmwareJobDocument(release).image, sha256: 'xyz' } },
    'sha256',
  ],
])('a bad document is refused, naming the field (%#)', (doc, field) => {
  expect(() => parseFirmwareJobDocument(doc)).toThrow(field);
});

test('job ids are deterministic, distinct per rollout and stage, and within AWS limits', () => {
  const a = rolloutJobId('rollout-1', '2.1.0-rc.1', 0);
  expect(rolloutJobId('rollout-1', '2.1.0-rc.1', 0)).toBe(a);
  expect(rolloutJobId('rollout-2', '2.1.0-rc.1', 0)).not.toBe(a);
  expect(rolloutJobId('rollout-1', '2.1.0-rc.1', 1)).not.toBe(a);
  expect(rolloutJobId('rollout-1', '2.1.0-rc.1', 'rb1')).toMatch(/-rb1$/);
  const long = rolloutJobId('r', `1.0.0-${'x'.repeat(100)}`, 12);
  for (const id of [a, long]) {
    expect(id.length).toBeLessThanOrEqual(MAX_JOB_ID_LENGTH);
    expect(id).toMatch(/^[a-zA-Z0-9_-]+$/);
  }
});
