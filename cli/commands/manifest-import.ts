/**
 * `fleet manifest import <file>`: put a factory manifest on the manufacturing allowlist. The
 * decisions are the pure plan's (cli/manifest-import-plan.ts); this executor does the I/O:
 *
 * 1. Parse and validate every row (core/manifest.ts) with the stack's serial pattern, and print
 *    every row problem before any AWS call; then read the lots the file names.
 * 2. Plan: stop (invalid rows without `skipInvalid`, or nothing importable), or ask for the
 *    existing devices: BatchGetItem of the serials, then plan again with them.
 * 3. Unless a dry run: create the missing lots, BatchWriteItem the new devices, optionally their
 *    MANUFACTURED trail entries, and add the new units to the lots' unitCount.
 *
 * Re-running the same file is idempotent: everything is `unchanged` the second time.
 */
import { Command } from 'commander';
import { detectFormat, formatIssue, ManifestFormat, ManifestIssue, parseManifest } from '../../core/manifest';
import { LotRecord } from '../../core/model';
import { Registry } from '../../lambda/shared/registry';
import {
  lotsToRead,
  ManifestConflict,
  ManifestImportPlan,
  ManifestImportPlanInput,
  planManifestImport,
} from '../manifest-import-plan';
import { RegistryAdmin } from '../registry-admin';
import { CliContext, registryTables, requireResource } from '../context';
import { readInputFile } from '../files';
import { examples, RunCommand, TABLES } from '../registration';

export type { ManifestConflict } from '../manifest-import-plan';

export interface ManifestImportOptions {
  /** Path of the manifest (.csv or .json). Used for reading unless `content` is given. */
  file: string;
  /** Manifest text (in-process callers); `file` then only names it and picks the format. */
  content?: string;
  /** Force the format instead of detecting it from the file name and content. */
  format?: ManifestFormat;
  /** Import the valid rows even when some rows are invalid. @default false */
  skipInvalid?: boolean;
  /** Validate and compare with the registry, write nothing. @default false */
  dryRun?: boolean;
  /** Every row must carry a public key; lots created by this import require attestation. @default false */
  requireAttestation?: boolean;
  /** Also append a MANUFACTURED event per new device to the trail (doubles the writes). @default false */
  trail?: boolean;
}

export interface ManifestImportResult {
  file: string;
  /** Data rows in the file. */
  rows: number;
  /** New devices written (or, on a dry run, that would be written). */
  created: number;
  /** Serials already in the registry with the same attributes. */
  unchanged: number;
  conflicts: ManifestConflict[];
  /** Every problem found (a row may have several; line 0 is the file as a whole). */
  invalid: ManifestIssue[];
  /** Data rows that cannot be imported (each has at least one problem, or the header is unusable). */
  invalidRows: number;
  /** Lots this import created (or would create). */
  lotsCreated: string[];
  /** True when the registry was written. */
  imported: boolean;
  dryRun: boolean;
  /** 0: clean; 1: nothing imported because of invalid rows, or conflicts were found. */
  exitCode: number;
}

export async function manifestImport(
  opts: ManifestImportOptions,
  ctx: CliContext,
): Promise<ManifestImportResult> {
  const text = opts.content ?? (await readInputFile({ path: opts.file, what: 'manifest' }));
  const serialPattern = requireResource(ctx, 'serialPattern');
  const ringShares = requireResource(ctx, 'ringShares');
  const format = opts.format ?? detectFormat(opts.file, text);
  const parsed = parseManifest(text, format, {
    serialPattern,
    requirePublicKey: opts.requireAttestation === true,
  });
  // Row problems first, before any AWS call: an unreachable endpoint must not hide them.
  for (const issue of parsed.issues) ctx.out.warn(formatIssue(issue));
  const tables = registryTables(ctx);
  const registry = new Registry(ctx.clients.doc, tables, ctx.now);
  const admin = new RegistryAdmin(ctx.clients.doc, tables, { now: ctx.now, sleep: ctx.sleep });

  const input: ManifestImportPlanInput = {
    parsed,
    lots: await readLots(registry, lotsToRead(parsed)),
    ringShares,
    at: ctx.now().toISOString(),
    skipInvalid: opts.skipInvalid === true,
    requireAttestation: opts.requireAttestation === true,
    trail: opts.trail === true,
  };
  const plan = await planWithRegistry(input, admin, ctx);
  const result = resultOf(opts, parsed.rowCount, plan);
  if (plan.step === 'stop') {
    ctx.out.warn(stopWarning(opts.file, plan));
  } else {
    for (const c of plan.conflicts) ctx.out.warn(conflictWarning(c));
    if (!opts.dryRun) {
      result.lotsCreated = await applyPlan(plan, admin, ctx, input.requireAttestation);
      result.imported = true;
    }
  }
  printSummary(ctx, result);
  return result;
}

type FinalPlan = Exclude<ManifestImportPlan, { step: 'readDevices' }>;

/** The lots among `names` that exist (existing ones may require attestation). */
async function readLots(registry: Registry, names: readonly string[]): Promise<Map<string, LotRecord>> {
  const lots = new Map<string, LotRecord>();
  for (const lot of names) {
    const record = await registry.getLot(lot);
    if (record) lots.set(lot, record);
  }
  return lots;
}

/** Plan; print the problems the lots reveal; read the existing devices when the plan asks. */
async function planWithRegistry(
  input: ManifestImportPlanInput,
  admin: RegistryAdmin,
  ctx: CliContext,
): Promise<FinalPlan> {
  const first = planManifestImport(input);
  for (const issue of first.lotIssues) ctx.out.warn(formatIssue(issue));
  if (first.step !== 'readDevices') return first;
  const bar = ctx.out.progress('checking', first.serials.length);
  const existing = await admin.batchGetDevices(first.serials, (done) => bar.update(done));
  bar.stop();
  const plan = planManifestImport({ ...input, existing });
  if (plan.step === 'readDevices') throw new Error('the manifest import plan asked for the devices twice');
  return plan;
}

/** Write what the plan says; returns the lots this call created. */
async function applyPlan(
  plan: Extract<ManifestImportPlan, { step: 'import' }>,
  admin: RegistryAdmin,
  ctx: CliContext,
  requireAttestation: boolean,
): Promise<string[]> {
  const created: string[] = [];
  for (const lot of plan.lotsToCreate) {
    if (await admin.createLot(lot, { requireAttestation })) created.push(lot);
  }
  for (const lot of plan.lotsWithoutAttestation) {
    ctx.out.warn(
      `lot ${lot} already exists without the attestation requirement; --require-attestation does not change existing lots`,
    );
  }
  if (plan.devices.length > 0) {
    const bar = ctx.out.progress('importing', plan.devices.length);
    await admin.batchPutDevices(plan.devices, (done) => bar.update(done));
    bar.stop();
    if (plan.trail.length > 0) await admin.batchAppendEvents(plan.trail);
    for (const [lot, n] of plan.unitsPerLot) await admin.addLotUnits(lot, n);
  }
  return created;
}

function stopWarning(file: string, plan: Extract<ManifestImportPlan, { step: 'stop' }>): string {
  if (plan.reason === 'empty') return `no valid rows in ${file}; nothing to import`;
  return (
    `nothing imported: ${plan.invalid.length} problem(s) in ${file}; fix them and run again` +
    (plan.rows.length > 0 ? `, or pass --skip-invalid to import the ${plan.rows.length} valid row(s)` : '')
  );
}

/** The command's result for a plan (before any write: `imported` false, lots to create). */
function resultOf(opts: ManifestImportOptions, rows: number, plan: FinalPlan): ManifestImportResult {
  const importing = plan.step === 'import';
  return {
    file: opts.file,
    rows,
    created: importing ? plan.devices.length : 0,
    unchanged: importing ? plan.unchanged : 0,
    conflicts: importing ? plan.conflicts : [],
    invalid: plan.invalid,
    invalidRows: plan.invalidRows,
    lotsCreated: importing ? plan.lotsToCreate : [],
    imported: false,
    dryRun: opts.dryRun === true,
    exitCode: plan.exitCode,
  };
}

function conflictWarning(c: ManifestConflict): string {
  return (
    `line ${c.line} (serial ${c.serial}): conflict, the registry already holds this serial with ` +
    c.differences.map((d) => `${d.field} ${d.registry} (manifest says ${d.manifest})`).join(', ') +
    '; the registry was not changed: correct the manifest (an import never rewrites a registered unit; see docs/operations.md, "Importing a manufacturing manifest")'
  );
}

function printSummary(ctx: CliContext, r: ManifestImportResult): void {
  const verb = r.dryRun ? 'dry run, nothing written' : r.imported ? 'imported' : 'not imported';
  ctx.out.info(
    `${r.file}: ${r.rows} row(s), ${verb}: created ${r.created}, unchanged ${r.unchanged}, ` +
      `conflicts ${r.conflicts.length}, invalid rows ${r.invalidRows}` +
      (r.invalid.length > 0 ? ` (${r.invalid.length} problem(s))` : '') +
      (r.lotsCreated.length > 0
        ? `; lots ${r.dryRun ? 'to create' : 'created'}: ${r.lotsCreated.join(', ')}`
        : ''),
  );
}

/** `fleet manifest import` (on the `manifest` group). */
export function registerManifestImport(manifest: Command, run: RunCommand): void {
  manifest
    .command('import')
    .description(
      'validate a manifest and add its units to the registry (idempotent; conflicts are never overwritten)',
    )
    .argument('<file>', 'manifest: .csv (header serial,lot,hwRev,factoryFirmware[,publicKey]) or .json')
    .option('--skip-invalid', 'import the valid rows even when some rows are invalid')
    .option('--dry-run', 'validate and compare with the registry, write nothing')
    .option(
      '--require-attestation',
      'every row needs a publicKey; lots created by this import require attestation',
    )
    .option('--trail', 'also append a MANUFACTURED event per new unit to the trail (doubles the writes)')
    .addHelpText(
      'after',
      `
Every row is validated (the stack's serial pattern, lot, hwRev, firmware, P-256 publicKey as
PEM or base64 SPKI DER, duplicates) and every problem is reported with its line number and the
fix, before any registry call. Rings are assigned with the stack's ring shares. Any invalid row
means nothing is imported unless --skip-invalid. Exit code 1 on invalid rows or conflicts.
To check a file without AWS, use "fleet manifest validate".
${examples([
  'fleet manifest import units.csv',
  'fleet manifest import units.json --dry-run',
  'fleet manifest import units.csv --skip-invalid --require-attestation',
])}
CSV example:
  serial,lot,hwRev,factoryFirmware,publicKey
  SN-000001,L2026-07,A,1.4.0,MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...
  SN-000002,L2026-07,A,1.4.0,
`,
    )
    .action(async (file: string, o, cmd: Command) =>
      run(
        cmd,
        {
          needs: [...TABLES, 'serialPattern', 'ringShares'],
          files: [{ path: file, what: 'manifest' }],
          hint: `  (to check the rows without AWS: fleet manifest validate ${file})`,
        },
        (ctx) =>
          manifestImport(
            {
              file,
              skipInvalid: o.skipInvalid,
              dryRun: o.dryRun,
              requireAttestation: o.requireAttestation,
              trail: o.trail,
            },
            ctx,
          ),
      ),
    );
}
