/**
 * Factory set-up through the same `fleet` command functions an operator runs: `lot create`,
 * `claim create` per lot for the lot's provisioning template (files under
 * `<labDir>/claims/<lot>/`), `manifest import` of a generated CSV, `lot hold`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { claimCreate, CLAIM_FILES } from '../../cli/commands/claim';
import { lotCreate, lotHold } from '../../cli/commands/lot';
import { manifestImport } from '../../cli/commands/manifest-import';
import type { CliContext } from '../../cli/context';
import type { MemorySink } from '../../cli/output';
import type { TlsCredentials } from '../../device';
import { manifestCsv, type ScenarioPlan } from './plan';

export interface FactoryReport {
  lotsCreated: string[];
  /** Claim certificate id per lot. */
  claims: Record<string, string>;
  /** Provisioning template per lot (the claim's). */
  claimTemplates: Record<string, string>;
  manifest: { file: string; rows: number; created: number };
  held: string[];
}

export interface FactoryOutcome {
  /** Claim certificate and key per lot, as the units hold them. */
  claims: Record<string, TlsCredentials>;
  report: FactoryReport;
}

export async function setUpFactory(
  plan: ScenarioPlan,
  ctx: CliContext,
  labDir: string,
): Promise<FactoryOutcome> {
  const claims: Record<string, TlsCredentials> = {};
  const claimIds: Record<string, string> = {};
  const claimTemplates: Record<string, string> = {};
  const lotsCreated: string[] = [];
  for (const lot of plan.lots) {
    const created = await lotCreate({ lot: lot.lot, requireAttestation: lot.requireAttestation }, ctx);
    if (created.created) lotsCreated.push(lot.lot);
    const dir = join(labDir, 'claims', lot.lot);
    const claim = await claimCreate({ lot: lot.lot, out: dir, force: true, template: lot.template }, ctx);
    claimIds[lot.lot] = claim.certificateId;
    claimTemplates[lot.lot] = claim.template;
    claims[lot.lot] = {
      certPem: await readFile(join(dir, CLAIM_FILES.certificate), 'utf8'),
      keyPem: await readFile(join(dir, CLAIM_FILES.privateKey), 'utf8'),
    };
  }
  const file = join(labDir, 'manifest.csv');
  await writeFile(file, manifestCsv(plan.manifest));
  const imported = await manifestImport({ file }, ctx);
  if (!imported.imported || imported.exitCode !== 0) {
    const out = ctx.out as MemorySink;
    throw new Error(
      `manifest import failed (exit ${imported.exitCode}): ${[...out.lines, ...out.warnings].slice(-10).join(' | ')}`,
    );
  }
  const held: string[] = [];
  for (const lot of plan.lots.filter((l) => l.hold)) {
    await lotHold({ lot: lot.lot, reason: 'lab scenario: incoming inspection found a defect' }, ctx);
    held.push(lot.lot);
  }
  return {
    claims,
    report: {
      lotsCreated,
      claims: claimIds,
      claimTemplates,
      manifest: { file, rows: imported.rows, created: imported.created },
      held,
    },
  };
}
