/**
 * `fleet claim create|revoke`: per-lot claim certificates.
 *
 * create: CreateKeysAndCertificate (active) -> write the key pair to disk at once (mode 0600;
 *   the private key exists only in that response) -> AttachPolicy (the template's claim policy)
 *   -> CreateThingGroup for the lot (the provisioning template adds devices to it, so it must
 *   exist before any unit enrolls) -> record the certificate id on the lot (created if needed).
 *   If any step after the certificate fails, the certificate is set INACTIVE and the files are
 *   removed, so no half-configured claim stays usable.
 * revoke: the kill switch. UpdateCertificate REVOKED (or INACTIVE with `deactivate`) for the
 *   lot's claim certificates; revoked ids are removed from the lot, so the hook also denies them.
 */
import { Command } from 'commander';
import { constants } from 'node:fs';
import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { thingGroupNames } from '../../core/model';
import { Registry } from '../../lambda/shared/registry';
import { RegistryAdmin } from '../registry-admin';
import { ProvisioningTemplateOutput } from '../../core/stack-outputs';
import { CliContext, registryTables, requireResource } from '../context';
import { CliError, UsageError } from '../errors';
import { assertWritableDirectory } from '../files';
import { ClaimIot, ClaimStatusChange } from '../iot-adapter';
import { examples, RunCommand } from '../registration';
import { validateLotName } from './lot';

/** File names written by `claim create` into the output directory. */
export const CLAIM_FILES = {
  certificate: 'claim.cert.pem',
  privateKey: 'claim.private.key',
  metadata: 'claim.json',
} as const;

export interface ClaimCreateOptions {
  lot: string;
  /** Output directory (created if missing). */
  out: string;
  /** Provisioning template name; optional when the stack has exactly one. */
  template?: string;
  /** Overwrite existing claim files in `out`. @default false */
  force?: boolean;
  /** When the lot does not exist yet, create it requiring attestation. @default false */
  requireAttestation?: boolean;
}

export interface ClaimCreateResult {
  certificateId: string;
  certificateArn: string;
  lot: string;
  template: string;
  claimPolicyName: string;
  claimClientIdPrefix: string;
  thingGroup: string;
  thingGroupCreated: boolean;
  lotCreated: boolean;
  files: { certificate: string; privateKey: string; metadata: string };
}

export interface ClaimRevokeOptions {
  lot: string;
  /** Only this certificate (must be one of the lot's). @default all of the lot's claim certificates */
  certificateId?: string;
  /** Set INACTIVE (reversible) instead of REVOKED; the ids stay on the lot. @default false */
  deactivate?: boolean;
}

export interface ClaimRevokeResult {
  lot: string;
  newStatus: ClaimStatusChange;
  certificates: { certificateId: string; outcome: 'UPDATED' | 'NOT_FOUND' | 'STATE_CONFLICT' }[];
  /** Claim certificate ids still recorded on the lot afterwards. */
  remainingOnLot: string[];
}

export function pickTemplate(
  templates: readonly ProvisioningTemplateOutput[],
  name?: string,
): ProvisioningTemplateOutput {
  const names = templates.map((t) => t.templateName).join(', ');
  if (name) {
    const hit = templates.find((t) => t.templateName === name);
    if (!hit)
      throw new UsageError(
        `template "${name}" is not one of the stack's provisioning templates (${names}); pick one with --template`,
      );
    return hit;
  }
  if (templates.length === 1) return templates[0];
  throw new UsageError(
    templates.length === 0
      ? 'the stack declares no provisioning templates; check the ProvisioningTemplates output or FLEET_PROVISIONING_TEMPLATES'
      : `the stack has ${templates.length} provisioning templates (${names}); choose one with --template NAME`,
  );
}

/** Where `claim create` writes, once checked. */
export interface ClaimOutput {
  lot: string;
  /** Absolute output directory. */
  dir: string;
  files: ClaimCreateResult['files'];
}

/**
 * Check the lot name and the output of `claim create` (a directory that can be created or
 * written, without claim files unless `force`), or throw a {@link UsageError} naming the fix.
 * Needs no AWS: run before any call, so a refusal leaves no orphan certificate in AWS IoT.
 */
export async function checkClaimCreateOptions(opts: ClaimCreateOptions): Promise<ClaimOutput> {
  const lot = validateLotName(opts.lot);
  if (!opts.out || opts.out.trim() === '')
    throw new UsageError('claim create needs --out DIR, the directory for the claim files');
  assertWritableDirectory({ path: opts.out, flag: '--out', example: `./claims/${lot}` });
  const dir = resolve(opts.out);
  const files = {
    certificate: join(dir, CLAIM_FILES.certificate),
    privateKey: join(dir, CLAIM_FILES.privateKey),
    metadata: join(dir, CLAIM_FILES.metadata),
  };
  if (!opts.force) {
    const existing: string[] = [];
    for (const f of Object.values(files)) if (await exists(f)) existing.push(f);
    if (existing.length > 0) {
      throw new UsageError(
        `${existing.join(', ')} already exist(s); choose another --out directory, or pass --force to overwrite`,
      );
    }
  }
  return { lot, dir, files };
}

export async function claimCreate(opts: ClaimCreateOptions, ctx: CliContext): Promise<ClaimCreateResult> {
  // Refuse before creating anything, so a refusal leaves no orphan certificate.
  const { lot, dir, files } = await checkClaimCreateOptions(opts);
  const template = pickTemplate(requireResource(ctx, 'provisioningTemplates'), opts.template);
  const prefix = requireResource(ctx, 'thingPrefix');
  const tables = registryTables(ctx, ['lotsTable']);
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const iot = new ClaimIot(ctx.clients.iot);
  const cert = await iot.createClaimCertificate();
  const written: string[] = [];
  const thingGroup = thingGroupNames.lot(prefix, lot);
  try {
    await writeSecret(files.privateKey, cert.privateKey, opts.force === true);
    written.push(files.privateKey);
    await writeSecret(files.certificate, cert.certificatePem, opts.force === true);
    written.push(files.certificate);
    const metadata = {
      certificateId: cert.certificateId,
      certificateArn: cert.certificateArn,
      lot,
      template: template.templateName,
      claimClientIdPrefix: template.claimClientIdPrefix,
      createdAt: ctx.now().toISOString(),
    };
    await writeSecret(files.metadata, `${JSON.stringify(metadata, null, 2)}\n`, opts.force === true);
    written.push(files.metadata);
    await iot.attachPolicy(template.claimPolicyName, cert.certificateArn);
    const thingGroupCreated = await iot.ensureThingGroup(thingGroup, { lot });
    const admin = new RegistryAdmin(ctx.clients.doc, tables, { now: ctx.now, sleep: ctx.sleep });
    const lotCreated = await admin.createLot(lot, { requireAttestation: opts.requireAttestation === true });
    await admin.addClaimCertificate(lot, cert.certificateId);
    const result: ClaimCreateResult = {
      certificateId: cert.certificateId,
      certificateArn: cert.certificateArn,
      lot,
      template: template.templateName,
      claimPolicyName: template.claimPolicyName,
      claimClientIdPrefix: template.claimClientIdPrefix,
      thingGroup,
      thingGroupCreated,
      lotCreated,
      files,
    };
    ctx.out.info(
      `claim certificate ${cert.certificateId} created for lot ${lot} (template ${template.templateName})`,
    );
    ctx.out.info(
      `  policy ${template.claimPolicyName} attached; thing group ${thingGroup} ${thingGroupCreated ? 'created' : 'present'}`,
    );
    ctx.out.info(`  lot ${lot} ${lotCreated ? 'created and ' : ''}now lists this claim certificate`);
    ctx.out.info(`  wrote ${files.certificate}, ${files.privateKey} (mode 0600) and ${files.metadata}`);
    ctx.out.info(`  devices must connect with a client id starting with "${template.claimClientIdPrefix}"`);
    return result;
  } catch (err) {
    // Roll back: an unrecorded claim must not stay usable, and its key must not linger on disk.
    const cleanup: string[] = [];
    try {
      await iot.setCertificateStatus(cert.certificateId, 'INACTIVE');
      cleanup.push('certificate set INACTIVE');
    } catch {
      cleanup.push(`could NOT deactivate certificate ${cert.certificateId}: deactivate it by hand`);
    }
    for (const f of written) await rm(f, { force: true });
    cleanup.push('claim files removed');
    throw new CliError(
      `claim create for lot ${lot} failed after creating certificate ${cert.certificateId} (${describe(err)}); ` +
        `${cleanup.join(', ')}; fix the cause and run the command again`,
    );
  }
}

export async function claimRevoke(opts: ClaimRevokeOptions, ctx: CliContext): Promise<ClaimRevokeResult> {
  const lot = validateLotName(opts.lot);
  const tables = registryTables(ctx, ['lotsTable']);
  const registry = new Registry(ctx.clients.doc, tables, ctx.now);
  const record = await registry.getLot(lot);
  if (!record) throw new CliError(`lot ${lot} does not exist; check the name with "fleet lot list"`);
  let ids = record.claimCertificateIds;
  if (opts.certificateId) {
    if (!ids.includes(opts.certificateId)) {
      throw new UsageError(
        `certificate ${opts.certificateId} is not a claim certificate of lot ${lot} (it lists ${ids.length > 0 ? ids.join(', ') : 'none'}); check --certificate-id`,
      );
    }
    ids = [opts.certificateId];
  }
  const newStatus: ClaimStatusChange = opts.deactivate ? 'INACTIVE' : 'REVOKED';
  if (ids.length === 0) {
    ctx.out.info(
      `lot ${lot} has no claim certificates; nothing to ${opts.deactivate ? 'deactivate' : 'revoke'}`,
    );
    return { lot, newStatus, certificates: [], remainingOnLot: [] };
  }
  const iot = new ClaimIot(ctx.clients.iot);
  const certificates: ClaimRevokeResult['certificates'] = [];
  for (const certificateId of ids) {
    const outcome = await iot.setCertificateStatus(certificateId, newStatus);
    certificates.push({ certificateId, outcome });
    const note =
      outcome === 'UPDATED'
        ? newStatus
        : outcome === 'NOT_FOUND'
          ? 'not found in AWS IoT (already deleted)'
          : `AWS IoT refused ${newStatus} (probably REVOKED already)`;
    ctx.out.info(`claim certificate ${certificateId}: ${note}`);
  }
  let remainingOnLot = record.claimCertificateIds;
  if (!opts.deactivate) {
    const admin = new RegistryAdmin(ctx.clients.doc, tables, { now: ctx.now, sleep: ctx.sleep });
    remainingOnLot = (await admin.removeClaimCertificates(lot, ids)).claimCertificateIds;
    ctx.out.info(
      `removed ${ids.length} claim certificate id(s) from lot ${lot}; ${remainingOnLot.length} remain`,
    );
  } else {
    ctx.out.info(
      `lot ${lot} still lists the deactivated certificate(s); re-enable with "aws iot update-certificate --new-status ACTIVE", ` +
        'or revoke for good with "fleet claim revoke" without --deactivate',
    );
  }
  ctx.out.info(
    `units of lot ${lot} cannot enroll with ${ids.length === 1 ? 'this claim' : 'these claims'} any more; issue a new one with "fleet claim create --lot ${lot}"`,
  );
  return { lot, newStatus, certificates, remainingOnLot };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Write a file readable by the owner only; `wx` unless overwriting is allowed. */
export async function writeSecret(path: string, content: string, overwrite: boolean): Promise<void> {
  try {
    await writeFile(path, content, { mode: 0o600, flag: overwrite ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(
        `${path} already exists; choose another --out directory, or pass --force to overwrite`,
      );
    }
    throw err;
  }
  // An overwritten file keeps its old mode: set it explicitly.
  await chmod(path, 0o600);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** `fleet claim create|revoke`. */
export function registerClaim(program: Command, run: RunCommand): void {
  const claim = program.command('claim').description('per-lot claim certificates for fleet provisioning');
  claim
    .command('create')
    .description(
      "create a lot's claim certificate, attach the claim policy, record it on the lot, write the key pair",
    )
    .requiredOption('--lot <lot>', 'lot the claim is for')
    .requiredOption(
      '--out <dir>',
      `directory for claim.cert.pem, claim.private.key (mode 0600) and claim.json`,
    )
    .option('--template <name>', 'provisioning template (needed when the stack has several)')
    .option('--force', 'overwrite existing claim files in --out')
    .option('--require-attestation', 'when the lot does not exist yet, create it requiring attestation')
    .addHelpText(
      'after',
      `
The lot's thing group is created first if missing (the template adds devices to it). The
private key exists only in the CreateKeysAndCertificate answer: keep the files safe.
${examples(['fleet claim create --lot L2026-07 --out ./claims/L2026-07', 'fleet claim create --lot L2026-07 --out ./c --template sensor-v2'])}`,
    )
    .action(async (o, cmd: Command) => {
      const opts: ClaimCreateOptions = {
        lot: o.lot,
        out: o.out,
        template: o.template,
        force: o.force,
        requireAttestation: o.requireAttestation,
      };
      return run(
        cmd,
        {
          needs: ['lotsTable', 'thingPrefix', 'provisioningTemplates'],
          validate: async () => void (await checkClaimCreateOptions(opts)),
        },
        (ctx) => claimCreate(opts, ctx),
      );
    });
  claim
    .command('revoke')
    .description("kill switch: revoke (or deactivate) a lot's claim certificates")
    .requiredOption('--lot <lot>', 'lot whose claims to revoke')
    .option('--certificate-id <id>', 'only this claim certificate of the lot')
    .option('--deactivate', 'set INACTIVE (reversible) instead of REVOKED; the ids stay on the lot')
    .addHelpText(
      'after',
      examples([
        'fleet claim revoke --lot L2026-07',
        'fleet claim revoke --lot L2026-07 --certificate-id 3f2a...',
        'fleet claim revoke --lot L2026-07 --deactivate',
      ]),
    )
    .action(async (o, cmd: Command) =>
      run(cmd, { needs: ['lotsTable'], validate: () => void validateLotName(o.lot) }, (ctx) =>
        claimRevoke({ lot: o.lot, certificateId: o.certificateId, deactivate: o.deactivate }, ctx),
      ),
    );
}
