/**
 * `fleet manifest import <file>`: put a factory manifest on the manufacturing allowlist.
 *
 * 1. Parse and validate every row (pure, core/manifest.ts) with the stack's serial pattern, and
 *    print every row problem before any AWS call; then read the lots the file names, so rows of
 *    a lot that requires attestation must carry a public key.
 * 2. Any invalid row: import nothing (unless `skipInvalid`).
 * 3. BatchGetItem the serials: an existing serial with the same attributes is unchanged, one
 *    with different attributes is a conflict (reported, never overwritten); the rest are new.
 * 4. Create missing lots, BatchWriteItem the new devices (status MANUFACTURED, revision 0, ring
 *    from the stratified assignment over the file's rows), optionally a MANUFACTURED trail
 *    event each, and add the new units to the lots' unitCount.
 *
 * Re-running the same file is idempotent: everything is `unchanged` the second time.
 */
import { Command } from 'commander';
import { assignRings } from '../../core/rings';
import {
  detectFormat,
  formatIssue,
  ManifestFormat,
  ManifestIssue,
  ManifestRow,
  parseManifest,
} from '../../core/manifest';
import { DeviceRecord, LotRecord } from '../../core/model';
import { publicKeyFingerprint } from '../../core/attestation';
import { Registry } from '../../lambda/shared/registry';
import { RegistryAdmin } from '../registry-admin';
import { CliContext, registryTables, requireResource } from '../context';
import { readInputFile } from '../files';
import { examples, RunCommand, TABLES } from '../registration';

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

export interface ManifestConflict {
  line: number;
  serial: string;
  /** Attributes that differ: what the registry holds vs what the manifest says. */
  differences: { field: string; registry: string; manifest: string }[];
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

const COMPARED_FIELDS = ['lot', 'hwRev', 'factoryFirmware', 'publicKey'] as const;

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

  // Lots named by the valid rows: existing ones may require attestation.
  const lotNames = [...new Set(parsed.rows.map((r) => r.lot))].sort();
  const lots = new Map<string, LotRecord>();
  for (const lot of lotNames) {
    const record = await registry.getLot(lot);
    if (record) lots.set(lot, record);
  }
  const invalid = [...parsed.issues];
  const rows: ManifestRow[] = [];
  for (const row of parsed.rows) {
    if (!row.publicKey && lots.get(row.lot)?.requireAttestation) {
      const issue: ManifestIssue = {
        line: row.line,
        serial: row.serial,
        field: 'publicKey',
        problem: `publicKey is missing, and lot ${row.lot} requires attestation`,
        fix: 'add the factory P-256 public key of this unit (PEM or base64 SPKI DER)',
      };
      invalid.push(issue);
      ctx.out.warn(formatIssue(issue));
    } else rows.push(row);
  }
  invalid.sort((a, b) => a.line - b.line);

  const result: ManifestImportResult = {
    file: opts.file,
    rows: parsed.rowCount,
    created: 0,
    unchanged: 0,
    conflicts: [],
    invalid,
    invalidRows: parsed.rowCount - rows.length,
    lotsCreated: [],
    imported: false,
    dryRun: opts.dryRun === true,
    exitCode: 0,
  };
  if (invalid.length > 0 && !opts.skipInvalid) {
    result.exitCode = 1;
    ctx.out.warn(
      `nothing imported: ${invalid.length} problem(s) in ${opts.file}; fix them and run again` +
        (rows.length > 0 ? `, or pass --skip-invalid to import the ${rows.length} valid row(s)` : ''),
    );
    printSummary(ctx, result);
    return result;
  }
  if (rows.length === 0) {
    ctx.out.warn(`no valid rows in ${opts.file}; nothing to import`);
    result.exitCode = invalid.length > 0 ? 1 : 0;
    printSummary(ctx, result);
    return result;
  }

  // Compare with the registry.
  const bar = ctx.out.progress('checking', rows.length);
  const existing = await admin.batchGetDevices(
    rows.map((r) => r.serial),
    (done) => bar.update(done),
  );
  bar.stop();
  const fresh: ManifestRow[] = [];
  for (const row of rows) {
    const current = existing.get(row.serial);
    if (!current) {
      fresh.push(row);
      continue;
    }
    const differences = compare(current, row);
    if (differences.length === 0) result.unchanged += 1;
    else result.conflicts.push({ line: row.line, serial: row.serial, differences });
  }
  for (const c of result.conflicts) {
    ctx.out.warn(
      `line ${c.line} (serial ${c.serial}): conflict, the registry already holds this serial with ` +
        c.differences.map((d) => `${d.field} ${d.registry} (manifest says ${d.manifest})`).join(', ') +
        '; the registry was not changed: correct the manifest (an import never rewrites a registered unit; see docs/operations.md, "Importing a manufacturing manifest")',
    );
  }

  // New devices, rings stratified over the file's lot x hwRev strata.
  const rings = assignRings(parsed.rows, ringShares);
  const at = ctx.now().toISOString();
  const devices: DeviceRecord[] = fresh.map((row) => ({
    serial: row.serial,
    lot: row.lot,
    hwRev: row.hwRev,
    factoryFirmware: row.factoryFirmware,
    currentFirmware: row.factoryFirmware,
    status: 'MANUFACTURED',
    ...(row.publicKey ? { publicKey: row.publicKey } : {}),
    ring: rings.get(row.serial) ?? 'broad',
    createdAt: at,
    updatedAt: at,
    revision: 0,
  }));
  result.created = devices.length;
  const perLot = new Map<string, number>();
  for (const d of devices) perLot.set(d.lot, (perLot.get(d.lot) ?? 0) + 1);
  result.lotsCreated = lotNames.filter((l) => !lots.has(l) && (perLot.get(l) ?? 0) > 0);

  if (opts.dryRun) {
    result.exitCode = result.conflicts.length > 0 ? 1 : 0;
    printSummary(ctx, result);
    return result;
  }

  const requireAttestation = opts.requireAttestation === true;
  const created: string[] = [];
  for (const lot of result.lotsCreated) {
    if (await admin.createLot(lot, { requireAttestation })) created.push(lot);
  }
  result.lotsCreated = created;
  for (const lot of lotNames) {
    const record = lots.get(lot);
    if (record && requireAttestation && !record.requireAttestation) {
      ctx.out.warn(
        `lot ${lot} already exists without the attestation requirement; --require-attestation does not change existing lots`,
      );
    }
  }
  if (devices.length > 0) {
    const writeBar = ctx.out.progress('importing', devices.length);
    await admin.batchPutDevices(devices, (done) => writeBar.update(done));
    writeBar.stop();
    if (opts.trail) {
      await admin.batchAppendEvents(
        devices.map((d) => ({
          serial: d.serial,
          at,
          type: 'MANUFACTURED' as const,
          lot: d.lot,
          detail: {
            hwRev: d.hwRev,
            factoryFirmware: d.factoryFirmware,
            ring: d.ring ?? 'broad',
            source: 'manifest',
          },
        })),
      );
    }
    for (const [lot, n] of perLot) await admin.addLotUnits(lot, n);
  }
  result.imported = true;
  result.exitCode = result.conflicts.length > 0 ? 1 : 0;
  printSummary(ctx, result);
  return result;
}

function compare(current: DeviceRecord, row: ManifestRow): ManifestConflict['differences'] {
  const out: ManifestConflict['differences'] = [];
  for (const field of COMPARED_FIELDS) {
    const a = current[field];
    const b = row[field];
    if (field === 'publicKey') {
      if (!sameKey(a, b))
        out.push({ field, registry: a ? 'a key' : '(none)', manifest: b ? 'another key' : '(none)' });
    } else if (a !== b) out.push({ field, registry: String(a ?? '(none)'), manifest: String(b) });
  }
  return out;
}

function sameKey(a?: string, b?: string): boolean {
  if (!a || !b) return !a && !b;
  if (a.trim() === b.trim()) return true;
  try {
    return publicKeyFingerprint(a) === publicKeyFingerprint(b);
  } catch {
    return false;
  }
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
