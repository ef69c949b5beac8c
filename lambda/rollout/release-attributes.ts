/**
 * The release a package version's attributes record, as `fleet firmware publish` writes them
 * (cli/firmware-release.ts `releaseAttributes`; Lambda code may not import the CLI, so the reading
 * side lives here and test/unit/rollout/release-attributes.test.ts pins the round trip).
 */
import { FIRMWARE_SIGNATURE_ALGORITHM, type ReleaseRecord } from '../../core/ota';

/** The release in `attributes`, or undefined when they do not hold one. */
export function releaseOfPackageVersion(
  versionName: string,
  attributes: Readonly<Record<string, string>> | undefined,
): ReleaseRecord | undefined {
  const a = attributes ?? {};
  if (!a.sha256 || !a.s3Bucket || !a.s3Key || !a.signature) return undefined;
  if (a.signatureAlgorithm && a.signatureAlgorithm !== FIRMWARE_SIGNATURE_ALGORITHM) return undefined;
  return {
    version: a.version ?? versionName,
    hwRevs: (a.hwRevs ?? '').split(',').filter(Boolean),
    sizeBytes: Number(a.sizeBytes ?? 0),
    sha256: a.sha256,
    signature: a.signature,
    signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    s3: { bucket: a.s3Bucket, key: a.s3Key, ...(a.s3VersionId ? { versionId: a.s3VersionId } : {}) },
    publishedAt: a.publishedAt ?? '',
  };
}
