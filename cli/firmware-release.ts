/**
 * What `fleet firmware publish` needs besides AWS calls: checks of its arguments (version,
 * hardware revisions, the signing key) whose errors name the fix, the image's size, SHA-256 and
 * signature, the package-version attributes a release is recorded with and read back from, and
 * the resolution of the firmware bucket and package (flag > environment > stack output).
 *
 * Signature: ECDSA P-256 over the image with SHA-256, DER-encoded, base64
 * (core/ota.ts FIRMWARE_SIGNATURE_ALGORITHM); devices verify it with the matching public key.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { FIRMWARE_PATTERN, HW_REV_PATTERN } from '../core/model';
import { DEFAULT_STACK_NAME, STACK_OUTPUTS } from '../core/stack-outputs';
import { CLI_ENV, type StackOutputReader } from './context';
import { awsSetupProblem, UsageError } from './errors';

/** Environment variables of the firmware commands (beside cli/context.ts CLI_ENV). */
export const FIRMWARE_ENV = {
  bucket: 'FLEET_FIRMWARE_BUCKET',
  package: 'FLEET_FIRMWARE_PACKAGE',
} as const;

/** The largest image `publish` reads into memory and uploads with one PutObject (5 GiB is S3's limit). */
export const MAX_IMAGE_BYTES = 512 * 1024 * 1024;

/** Check a release version: `MAJOR.MINOR.PATCH[-pre]` (core/model.ts FIRMWARE_PATTERN). */
export function checkVersion(version: string): string {
  if (!FIRMWARE_PATTERN.test(version) || version.length > 64) {
    throw new UsageError(
      `--version "${version}" is invalid; use MAJOR.MINOR.PATCH with an optional -suffix, at most 64 characters (e.g. 2.4.0 or 2.4.0-rc.1)`,
    );
  }
  return version;
}

/** Check and de-duplicate the hardware revisions (`--hw-rev A --hw-rev B` or `--hw-rev A,B`). */
export function checkHwRevs(hwRevs: readonly string[] | undefined): string[] {
  const list = [...new Set(hwRevs ?? [])];
  if (list.length === 0) {
    throw new UsageError(
      'name the hardware revisions the image runs on: --hw-rev REV (repeat it, or separate with commas)',
    );
  }
  const bad = list.filter((r) => !HW_REV_PATTERN.test(r));
  if (bad.length > 0) {
    throw new UsageError(
      `--hw-rev ${bad.map((b) => `"${b}"`).join(', ')} invalid; use 1-16 characters of A-Z a-z 0-9 . _ - (as in the manifest)`,
    );
  }
  return list;
}

/** Parse the signing key: a PEM private key on the P-256 curve (PKCS#8 or SEC1). */
export function parseSigningKey(pem: string, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new UsageError(
      `--signing-key ${path} is not a PEM private key (${(err as Error).message}); ` +
        'give the ECDSA P-256 private key, e.g. made with `openssl ecparam -name prime256v1 -genkey -noout -out key.pem`',
    );
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new UsageError(
      `--signing-key ${path} is a ${key.asymmetricKeyType === 'ec' ? `${curve} EC` : (key.asymmetricKeyType ?? 'unknown')} key; ` +
        'firmware is signed with ECDSA P-256 (prime256v1): give that private key',
    );
  }
  return key;
}

/** Size, SHA-256 and signature of an image. */
export interface ImageDigest {
  sizeBytes: number;
  /** Hex SHA-256. */
  sha256: string;
  /** Base64 DER ECDSA P-256 signature over the image (SHA-256). */
  signature: string;
}

export function digestAndSign(image: Buffer, key: KeyObject): ImageDigest {
  return {
    sizeBytes: image.byteLength,
    sha256: createHash('sha256').update(image).digest('hex'),
    signature: sign('sha256', image, { key, dsaEncoding: 'der' }).toString('base64'),
  };
}

/** Verify a signature the way a device does (for tests and a self-check after signing). */
export function verifyImage(image: Buffer, signature: string, key: KeyObject): boolean {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return verify('sha256', image, { key: publicKey, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
}

export { releaseAttributes, releaseFromAttributes } from '../core/ota';

/** Where the firmware commands publish to. */
export interface FirmwareResources {
  bucket: string;
  packageName: string;
}

export interface FirmwareResolveInput {
  flags: { bucket?: string; package?: string; stack?: string };
  env?: Record<string, string | undefined>;
  /** Reads the stack outputs; called only when a name is still missing. */
  readStackOutputs: StackOutputReader;
}

/** Resolve the firmware bucket and package: flag > environment variable > stack output. */
export async function resolveFirmwareResources(input: FirmwareResolveInput): Promise<FirmwareResources> {
  const env = input.env ?? process.env;
  let bucket = input.flags.bucket || env[FIRMWARE_ENV.bucket];
  let packageName = input.flags.package || env[FIRMWARE_ENV.package];
  const stackName = input.flags.stack ?? env[CLI_ENV.stackName] ?? DEFAULT_STACK_NAME;
  let failure: unknown;
  if (!bucket || !packageName) {
    try {
      const outputs = await input.readStackOutputs(stackName);
      bucket ||= outputs[STACK_OUTPUTS.firmwareBucket];
      packageName ||= outputs[STACK_OUTPUTS.firmwarePackage];
    } catch (err) {
      failure = err;
    }
  }
  if (bucket && packageName) return { bucket, packageName };
  const lines = [
    ...(bucket
      ? []
      : [
          `  firmware bucket: pass --bucket, set ${FIRMWARE_ENV.bucket}, or deploy stack ${stackName} with output ${STACK_OUTPUTS.firmwareBucket}`,
        ]),
    ...(packageName
      ? []
      : [
          `  firmware package: pass --package, set ${FIRMWARE_ENV.package}, or deploy stack ${stackName} with output ${STACK_OUTPUTS.firmwarePackage}`,
        ]),
  ];
  const setup = failure === undefined ? undefined : awsSetupProblem(failure, env);
  const head = setup
    ? `${setup}; it is needed to read the firmware bucket and package from stack ${stackName}, or give them directly:`
    : failure !== undefined
      ? `cannot tell where to publish: reading the outputs of stack ${stackName} failed (${(failure as Error).message}):`
      : `cannot tell where to publish (not found in the outputs of stack ${stackName}):`;
  throw new UsageError(
    [head, ...lines, '  (use --stack NAME or FLEET_STACK_NAME when the stack has another name)'].join('\n'),
  );
}
