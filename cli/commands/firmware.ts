/**
 * `fleet firmware publish`: release a firmware image.
 *
 * 1. Check the arguments (version, image file, hardware revisions, signing key) with no AWS.
 * 2. Read the image; compute its size and SHA-256; sign it (ECDSA P-256, SHA-256, DER, base64).
 * 3. If the package version exists already: the same SHA-256 is a no-op that prints the recorded
 *    release (a DRAFT left by an interrupted run is published first); another SHA-256 is refused,
 *    since a device fleet must never get two images under one version.
 * 4. Upload to the firmware bucket at `firmware/<version>/image.bin` with the SHA-256 as object
 *    metadata, keeping the S3 version id the upload created.
 * 5. Create the package version in the Software Package Catalog with the release as attributes
 *    and the object as artifact, then publish it (CloudFormation could only create drafts).
 *    The catalog is the record of releases; jobs name the version in `destinationPackageVersions`.
 */
import { readFile, stat } from 'node:fs/promises';
import {
  CreatePackageVersionCommand,
  GetPackageCommand,
  GetPackageVersionCommand,
  UpdatePackageVersionCommand,
  type GetPackageVersionCommandOutput,
} from '@aws-sdk/client-iot';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Command } from 'commander';
import { FIRMWARE_SIGNATURE_ALGORITHM, type ReleaseRecord } from '../../core/ota';
import { firmwareObjectKey } from '../../core/stack-outputs';
import { CliContext, cloudFormationOutputs, s3Client } from '../context';
import { CliError, UsageError } from '../errors';
import {
  checkHwRevs,
  checkVersion,
  digestAndSign,
  FIRMWARE_ENV,
  FirmwareResources,
  MAX_IMAGE_BYTES,
  parseSigningKey,
  releaseAttributes,
  releaseFromAttributes,
  resolveFirmwareResources,
} from '../firmware-release';
import { collect, examples, RunCommand } from '../registration';

export interface FirmwarePublishOptions {
  /** Release version, `MAJOR.MINOR.PATCH[-suffix]`. */
  version: string;
  /** Path of the image. */
  file: string;
  /** Hardware revisions the image runs on. */
  hwRevs: string[];
  /** Path of the PEM ECDSA P-256 private key. */
  signingKey?: string;
  /** AWS Signer profile (not supported yet). @default - sign with signingKey */
  signerProfile?: string;
  /** Print JSON. @default false */
  json?: boolean;
}

/** What a publish did. */
export interface FirmwarePublishResult {
  /** `published`, or `unchanged` when the same image was already the release of this version. */
  outcome: 'published' | 'unchanged';
  release: ReleaseRecord;
  packageName: string;
  packageVersionArn: string;
  status: string;
}

/** Argument checks that need no AWS (the run wrapper calls them before any resolution). */
export async function checkFirmwarePublishOptions(o: FirmwarePublishOptions): Promise<void> {
  checkVersion(o.version);
  checkHwRevs(o.hwRevs);
  if (o.signerProfile !== undefined) {
    throw new UsageError(
      '--signer-profile (AWS Signer) is not supported yet; sign with the ECDSA P-256 key you hold: --signing-key KEY.pem',
    );
  }
  if (!o.signingKey)
    throw new UsageError('give the signing key: --signing-key KEY.pem (ECDSA P-256 private key)');
  const size = (await stat(o.file)).size;
  if (size === 0) throw new UsageError(`--file ${o.file} is empty; give the firmware image`);
  if (size > MAX_IMAGE_BYTES) {
    throw new UsageError(
      `--file ${o.file} has ${size} bytes; publish takes images up to ${MAX_IMAGE_BYTES} bytes (one upload)`,
    );
  }
  parseSigningKey(await readFile(o.signingKey, 'utf8'), o.signingKey);
}

async function existingVersion(
  ctx: CliContext,
  packageName: string,
  version: string,
): Promise<GetPackageVersionCommandOutput | undefined> {
  try {
    return await ctx.clients.iot.send(new GetPackageVersionCommand({ packageName, versionName: version }));
  } catch (err) {
    if ((err as Error).name === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

/** Compare an existing version with the image: same content is a no-op, other content a refusal. */
async function settleExisting(
  ctx: CliContext,
  where: FirmwareResources,
  existing: GetPackageVersionCommandOutput,
  sha256: string,
): Promise<FirmwarePublishResult> {
  const version = existing.versionName as string;
  const recorded = releaseFromAttributes(version, existing.attributes);
  if (!recorded) {
    throw new CliError(
      `package ${where.packageName} has a version ${version} that holds no release record (no sha256/s3 attributes); ` +
        'it was not made by fleet firmware publish: publish under another version, or remove that version first',
    );
  }
  if (recorded.sha256 !== sha256) {
    throw new CliError(
      `version ${version} is already released with another image (sha256 ${recorded.sha256}, this file ${sha256}); ` +
        'a version names one image forever: publish this file under a new version',
    );
  }
  let status = existing.status ?? 'UNKNOWN';
  if (status === 'DRAFT') {
    // An earlier run stopped between create and publish: finish it.
    await ctx.clients.iot.send(
      new UpdatePackageVersionCommand({
        packageName: where.packageName,
        versionName: version,
        action: 'PUBLISH',
      }),
    );
    status = 'PUBLISHED';
  }
  return {
    outcome: 'unchanged',
    release: recorded,
    packageName: where.packageName,
    packageVersionArn: existing.packageVersionArn ?? '',
    status,
  };
}

/** Publish one release (see the module comment); `where` is the resolved bucket and package. */
export async function firmwarePublish(
  o: FirmwarePublishOptions,
  ctx: CliContext,
  where: FirmwareResources,
): Promise<FirmwarePublishResult> {
  const version = checkVersion(o.version);
  const hwRevs = checkHwRevs(o.hwRevs);
  const key = parseSigningKey(await readFile(o.signingKey as string, 'utf8'), o.signingKey as string);
  const image = await readFile(o.file);
  const digest = digestAndSign(image, key);

  try {
    await ctx.clients.iot.send(new GetPackageCommand({ packageName: where.packageName }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceNotFoundException') throw err;
    throw new CliError(
      `package ${where.packageName} does not exist in the Software Package Catalog; deploy the stack (it creates the package), ` +
        `or name the stack's package with --package / ${FIRMWARE_ENV.package}`,
    );
  }
  const before = await existingVersion(ctx, where.packageName, version);
  if (before) return settleExisting(ctx, where, before, digest.sha256);

  const objectKey = firmwareObjectKey(version);
  const put = await s3Client(ctx).send(
    new PutObjectCommand({
      Bucket: where.bucket,
      Key: objectKey,
      Body: image,
      ContentType: 'application/octet-stream',
      Metadata: { sha256: digest.sha256, version },
    }),
  );
  const release: ReleaseRecord = {
    version,
    hwRevs,
    sizeBytes: digest.sizeBytes,
    sha256: digest.sha256,
    signature: digest.signature,
    signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    s3: { bucket: where.bucket, key: objectKey, ...(put.VersionId ? { versionId: put.VersionId } : {}) },
    publishedAt: ctx.now().toISOString(),
  };
  let created;
  try {
    created = await ctx.clients.iot.send(
      new CreatePackageVersionCommand({
        packageName: where.packageName,
        versionName: version,
        description: `Firmware ${version} for ${hwRevs.join(', ')}`,
        attributes: releaseAttributes(release),
        artifact: {
          s3Location: {
            bucket: where.bucket,
            key: objectKey,
            ...(put.VersionId ? { version: put.VersionId } : {}),
          },
        },
      }),
    );
  } catch (err) {
    // Another publish of this version won the race: settle against what it recorded.
    if ((err as Error).name !== 'ConflictException') throw err;
    const raced = await existingVersion(ctx, where.packageName, version);
    if (!raced) throw err;
    return settleExisting(ctx, where, raced, digest.sha256);
  }
  await ctx.clients.iot.send(
    new UpdatePackageVersionCommand({
      packageName: where.packageName,
      versionName: version,
      action: 'PUBLISH',
    }),
  );
  return {
    outcome: 'published',
    release,
    packageName: where.packageName,
    packageVersionArn: created.packageVersionArn ?? '',
    status: 'PUBLISHED',
  };
}

/** Operator lines of a result. */
export function describePublish(r: FirmwarePublishResult): string[] {
  const rel = r.release;
  return [
    r.outcome === 'published'
      ? `published firmware ${rel.version} (${r.status})`
      : `firmware ${rel.version} is already released with this image (${r.status}); nothing to do`,
    `  package version  ${r.packageVersionArn}`,
    `  image            s3://${rel.s3.bucket}/${rel.s3.key}${rel.s3.versionId ? ` (version ${rel.s3.versionId})` : ''}`,
    `  size             ${rel.sizeBytes} bytes`,
    `  sha256           ${rel.sha256}`,
    `  signature        ${rel.signatureAlgorithm} ${rel.signature}`,
    `  hardware         ${rel.hwRevs.join(', ')}`,
    `  published at     ${rel.publishedAt}`,
  ];
}

/** `fleet firmware publish`. */
export function registerFirmware(program: Command, run: RunCommand): void {
  const firmware = program.command('firmware').description('firmware releases');
  firmware
    .command('publish')
    .description('upload, sign and record a firmware release in the Software Package Catalog')
    .requiredOption('--version <version>', 'release version, MAJOR.MINOR.PATCH[-suffix]')
    .requiredOption('--file <path>', 'the firmware image')
    .option('--hw-rev <rev...>', 'hardware revision(s) the image runs on (repeat, or comma-separated)')
    .option('--signing-key <path>', 'PEM ECDSA P-256 private key to sign the image with')
    .option('--signer-profile <name>', 'AWS Signer signing profile (not supported yet)')
    .option('--bucket <name>', `firmware bucket (env ${FIRMWARE_ENV.bucket}, output FirmwareBucketName)`)
    .option('--package <name>', `firmware package (env ${FIRMWARE_ENV.package}, output FirmwarePackageName)`)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The image is uploaded to the firmware bucket at firmware/<version>/image.bin (sha256 as object
metadata), signed with ECDSA P-256 over SHA-256 (DER, base64), and recorded as a version of the
firmware package in the Software Package Catalog (attributes: version, hwRevs, sizeBytes, sha256,
signature, signatureAlgorithm, s3Bucket, s3Key, s3VersionId, publishedAt), which is then published.
Publishing a version again with the same image changes nothing and prints the release; with
another image it is refused (exit 1): a version names one image.
Needs s3:PutObject on the bucket, and iot:GetPackage, iot:GetPackageVersion,
iot:CreatePackageVersion and iot:UpdatePackageVersion on the package.
${examples([
  'fleet firmware publish --version 2.4.0 --file build/fw.bin --hw-rev A --hw-rev B --signing-key release-key.pem',
  'fleet firmware publish --version 2.4.1-rc.1 --file fw.bin --hw-rev A,B --signing-key key.pem --json',
])}`,
    )
    .action(async (o, cmd: Command) => {
      const opts: FirmwarePublishOptions = {
        version: o.version,
        file: o.file,
        hwRevs: (o.hwRev ?? []).flatMap((v: string) => collect(v)),
        signingKey: o.signingKey,
        signerProfile: o.signerProfile,
        json: o.json,
      };
      return run(
        cmd,
        {
          files: [
            { path: opts.file, what: 'firmware image', flag: '--file' },
            ...(opts.signingKey
              ? [{ path: opts.signingKey, what: 'signing key', flag: '--signing-key' }]
              : []),
          ],
          validate: () => checkFirmwarePublishOptions(opts),
        },
        async (ctx) => {
          const flags = cmd.optsWithGlobals() as {
            bucket?: string;
            package?: string;
            stack?: string;
            region?: string;
          };
          const where = await resolveFirmwareResources({
            flags,
            readStackOutputs: cloudFormationOutputs(flags.region),
          });
          const result = await firmwarePublish(opts, ctx, where);
          if (opts.json) ctx.out.json(result);
          else describePublish(result).forEach((l) => ctx.out.info(l));
          return result;
        },
      );
    });
}
