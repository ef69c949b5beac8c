/**
 * The firmware-update contract, written once: what a release is, the IoT Jobs document a device
 * receives, how a device verifies what it downloads, and the deterministic job ids the rollout
 * controller creates. `fleet firmware publish`, the job templates, the rollout controller, the
 * simulator's Jobs client and the lab all use this module.
 *
 * Sources: AWS IoT Developer Guide, "Jobs" (job documents, presigned URL placeholders
 * `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/<bucket>/<key>}`, replaced when the
 * device asks for the document); CreateJob API (job id 1–64 characters of `[a-zA-Z0-9_-]`).
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { describeIssues } from './issues';
import { FIRMWARE_PATTERN } from './model';

/** The one operation our firmware job documents carry. */
export const FIRMWARE_UPDATE_OPERATION = 'firmware-update';

/** Signature over the firmware image: ECDSA P-256 with SHA-256, DER-encoded, base64. */
export const FIRMWARE_SIGNATURE_ALGORITHM = 'ECDSA-P256-SHA256';

/** A published release (the registry's record; the package catalog holds the AWS side). */
export interface ReleaseRecord {
  version: string;
  /** Hardware revisions the image runs on. */
  hwRevs: string[];
  sizeBytes: number;
  /** Hex SHA-256 of the image. */
  sha256: string;
  /** Base64 DER ECDSA signature over the image (or the signer's, when AWS Signer signed it). */
  signature: string;
  signatureAlgorithm: typeof FIRMWARE_SIGNATURE_ALGORITHM;
  s3: { bucket: string; key: string; versionId?: string };
  publishedAt: string;
}

const hex64 = z.string().check(z.regex(/^[0-9a-f]{64}$/));

/** The job document of a firmware update (and of its rollback, which names the previous version). */
export const firmwareJobDocumentSchema = z.object({
  operation: z.literal(FIRMWARE_UPDATE_OPERATION),
  version: z.string().check(z.regex(FIRMWARE_PATTERN)),
  /** True for a rollback job: the device goes back to `version`, which it ran before. */
  rollback: z.optional(z.boolean()),
  hwRevs: z.array(z.string().check(z.minLength(1))).check(z.minLength(1)),
  image: z.object({
    /** A presigned URL placeholder in the stored document; an https URL on the device. */
    url: z.string().check(z.minLength(1)),
    sizeBytes: z.number().check(z.int(), z.positive()),
    sha256: hex64,
    signature: z.string().check(z.minLength(1)),
    signatureAlgorithm: z.literal(FIRMWARE_SIGNATURE_ALGORITHM),
  }),
});

export type FirmwareJobDocument = z.infer<typeof firmwareJobDocumentSchema>;

export class JobDocumentError extends Error {}

/** Parses a job document a device received; a clear error names each bad field. */
export function parseFirmwareJobDocument(doc: unknown): FirmwareJobDocument {
  const r = firmwareJobDocumentSchema.safeParse(doc);
  if (!r.success)
    throw new JobDocumentError(`job document is not a firmware update: ${describeIssues(r.error.issues)}`);
  return r.data;
}

/** The presigned URL placeholder AWS IoT Jobs replaces when a device asks for the document. */
export function presignedUrlPlaceholder(bucket: string, key: string): string {
  return `\${aws:iot:s3-presigned-url:https://s3.amazonaws.com/${bucket}/${key}}`;
}

const PLACEHOLDER = /^\$\{aws:iot:s3-presigned-url:https:\/\/s3\.amazonaws\.com\/([^/]+)\/(.+)\}$/;

/** Bucket and key of a presigned URL placeholder, or undefined. */
export function parsePresignedUrlPlaceholder(text: string): { bucket: string; key: string } | undefined {
  const m = PLACEHOLDER.exec(text);
  return m ? { bucket: m[1], key: m[2] } : undefined;
}

/** The job document for `release` (stored with the placeholder; AWS presigns it per device). */
export function firmwareJobDocument(release: ReleaseRecord, rollback = false): FirmwareJobDocument {
  return {
    operation: FIRMWARE_UPDATE_OPERATION,
    version: release.version,
    ...(rollback ? { rollback: true } : {}),
    hwRevs: [...release.hwRevs],
    image: {
      url: presignedUrlPlaceholder(release.s3.bucket, release.s3.key),
      sizeBytes: release.sizeBytes,
      sha256: release.sha256,
      signature: release.signature,
      signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    },
  };
}

/** Largest job id AWS IoT Jobs accepts. */
export const MAX_JOB_ID_LENGTH = 64;

/**
 * A job id the same inputs always give, so a repeated or concurrent controller pass creates no
 * second job: `ota-<release>-<rollout hash>-<stage>` (`-rb<n>` for the n-th rollback job),
 * within 64 characters of `[a-zA-Z0-9_-]`.
 */
export function rolloutJobId(rolloutId: string, release: string, stage: number | `rb${number}`): string {
  const safeRelease = release.replace(/[^a-zA-Z0-9_-]/g, '_');
  const hash = createHash('sha256').update(rolloutId).digest('hex').slice(0, 10);
  const suffix = typeof stage === 'number' ? `s${stage}` : stage;
  const head = `ota-${safeRelease}`.slice(0, MAX_JOB_ID_LENGTH - hash.length - suffix.length - 2);
  return `${head}-${hash}-${suffix}`;
}

/**
 * The package-version attributes of a release (strings; at most 3 KB together), as
 * `fleet firmware publish` records them. The job templates' document reads them by name
 * (lib/ota/job-templates.ts), and the rollout functions read them back with
 * {@link releaseFromAttributes}.
 */
export function releaseAttributes(r: ReleaseRecord): Record<string, string> {
  return {
    version: r.version,
    hwRevs: r.hwRevs.join(','),
    sizeBytes: String(r.sizeBytes),
    sha256: r.sha256,
    signature: r.signature,
    signatureAlgorithm: r.signatureAlgorithm,
    s3Bucket: r.s3.bucket,
    s3Key: r.s3.key,
    ...(r.s3.versionId ? { s3VersionId: r.s3.versionId } : {}),
    publishedAt: r.publishedAt,
  };
}

/** The release a package version's attributes record, or undefined when they hold none. */
export function releaseFromAttributes(
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
