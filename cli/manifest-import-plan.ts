/**
 * The pure plan of `fleet manifest import` (the executor is cli/commands/manifest-import.ts).
 * Decide, then commit: from the parsed manifest, the lots it names that exist, and (once asked
 * for) the devices among its serials that exist, the plan says what to create, what conflicts and
 * what the counts are. It asks for the device read only when the rows can be imported. No I/O.
 *
 * Rules:
 * - a row of an existing lot that requires attestation needs a public key;
 * - any invalid row stops the import unless `skipInvalid`; no importable row stops it too;
 * - an existing serial with the same attributes is unchanged, one with other attributes is a
 *   conflict (reported, never overwritten), every other serial is new;
 * - new devices are MANUFACTURED, revision 0, with the ring of the stratified assignment over
 *   every valid row of the file; lots that get new devices and do not exist are created.
 */
import { publicKeyFingerprint } from '../core/attestation';
import type { ManifestIssue, ManifestRow, ParsedManifest } from '../core/manifest';
import type { DeviceRecord, LotRecord } from '../core/model';
import { assignRings, type RingShares } from '../core/rings';
import type { NewDeviceEvent } from '../core/trail';

export interface ManifestConflict {
  line: number;
  serial: string;
  /** Attributes that differ: what the registry holds vs what the manifest says. */
  differences: { field: string; registry: string; manifest: string }[];
}

export interface ManifestImportPlanInput {
  /** The manifest as core/manifest.ts parsed it. */
  parsed: ParsedManifest;
  /** The lots of {@link lotsToRead} that exist, by name. */
  lots: ReadonlyMap<string, LotRecord>;
  /** The devices among the asked-for serials that exist, by serial; absent until the plan asks for them. */
  existing?: ReadonlyMap<string, DeviceRecord>;
  ringShares: RingShares;
  /** ISO time stamped on new records and trail entries. */
  at: string;
  /** Import the valid rows even when some rows are invalid. */
  skipInvalid: boolean;
  /** Lots created by this import require attestation (every row already needed a key to parse). */
  requireAttestation: boolean;
  /** Plan a MANUFACTURED trail entry per new device. */
  trail: boolean;
}

/** What the rows and the lots decide, in every step. */
export interface ManifestRowCheck {
  /** Rows that can be imported, in file order. */
  rows: ManifestRow[];
  /** Problems only the lots reveal (rows of an attesting lot without a key), in file order. */
  lotIssues: ManifestIssue[];
  /** Every problem (the parser's and the lots'), by line. */
  invalid: ManifestIssue[];
  /** Data rows that cannot be imported. */
  invalidRows: number;
}

export type ManifestImportPlan =
  | (ManifestRowCheck & {
      step: 'stop';
      /** `invalid`: problems and no `skipInvalid`; `empty`: no row can be imported. */
      reason: 'invalid' | 'empty';
      exitCode: 0 | 1;
    })
  | (ManifestRowCheck & {
      step: 'readDevices';
      /** Serials to look up; call again with `existing`. */
      serials: string[];
    })
  | (ManifestRowCheck & ManifestImportWrites & { step: 'import'; exitCode: 0 | 1 });

/** What an import writes (nothing on a dry run). */
export interface ManifestImportWrites {
  /** New device records, in file order. */
  devices: DeviceRecord[];
  /** Serials already registered with the same attributes. */
  unchanged: number;
  conflicts: ManifestConflict[];
  /** Lots to create (they get new devices and do not exist), by name. */
  lotsToCreate: string[];
  /** New units per lot, to add to the lots' unit counts. */
  unitsPerLot: Map<string, number>;
  /** Existing lots that do not require attestation although `requireAttestation` was asked. */
  lotsWithoutAttestation: string[];
  /** MANUFACTURED trail entries of the new devices (empty unless `trail`). */
  trail: NewDeviceEvent[];
}

/** The lots whose records the plan needs: those named by the valid rows, by name. */
export function lotsToRead(parsed: ParsedManifest): string[] {
  return [...new Set(parsed.rows.map((r) => r.lot))].sort();
}

/** Plan the import: stop, ask for the existing devices, or say what to write. */
export function planManifestImport(input: ManifestImportPlanInput): ManifestImportPlan {
  const check = checkRows(input.parsed, input.lots);
  if (check.invalid.length > 0 && !input.skipInvalid) {
    return { ...check, step: 'stop', reason: 'invalid', exitCode: 1 };
  }
  if (check.rows.length === 0) {
    return { ...check, step: 'stop', reason: 'empty', exitCode: check.invalid.length > 0 ? 1 : 0 };
  }
  if (!input.existing) return { ...check, step: 'readDevices', serials: check.rows.map((r) => r.serial) };
  const writes = planWrites(input, check.rows, input.existing);
  return { ...check, ...writes, step: 'import', exitCode: writes.conflicts.length > 0 ? 1 : 0 };
}

function checkRows(parsed: ParsedManifest, lots: ReadonlyMap<string, LotRecord>): ManifestRowCheck {
  const rows: ManifestRow[] = [];
  const lotIssues: ManifestIssue[] = [];
  for (const row of parsed.rows) {
    if (!row.publicKey && lots.get(row.lot)?.requireAttestation) {
      lotIssues.push({
        line: row.line,
        serial: row.serial,
        field: 'publicKey',
        problem: `publicKey is missing, and lot ${row.lot} requires attestation`,
        fix: 'add the factory P-256 public key of this unit (PEM or base64 SPKI DER)',
      });
    } else rows.push(row);
  }
  const invalid = [...parsed.issues, ...lotIssues].sort((a, b) => a.line - b.line);
  return { rows, lotIssues, invalid, invalidRows: parsed.rowCount - rows.length };
}

function planWrites(
  input: ManifestImportPlanInput,
  rows: readonly ManifestRow[],
  existing: ReadonlyMap<string, DeviceRecord>,
): ManifestImportWrites {
  const fresh: ManifestRow[] = [];
  const conflicts: ManifestConflict[] = [];
  let unchanged = 0;
  for (const row of rows) {
    const current = existing.get(row.serial);
    if (!current) {
      fresh.push(row);
      continue;
    }
    const differences = compare(current, row);
    if (differences.length === 0) unchanged += 1;
    else conflicts.push({ line: row.line, serial: row.serial, differences });
  }
  // Rings are stratified over the file's lot x hwRev strata (every valid row, not just new ones).
  const rings = assignRings(input.parsed.rows, input.ringShares);
  const devices: DeviceRecord[] = fresh.map((row) => ({
    serial: row.serial,
    lot: row.lot,
    hwRev: row.hwRev,
    factoryFirmware: row.factoryFirmware,
    currentFirmware: row.factoryFirmware,
    status: 'MANUFACTURED',
    ...(row.publicKey ? { publicKey: row.publicKey } : {}),
    ring: rings.get(row.serial) ?? 'broad',
    createdAt: input.at,
    updatedAt: input.at,
    revision: 0,
  }));
  const unitsPerLot = new Map<string, number>();
  for (const d of devices) unitsPerLot.set(d.lot, (unitsPerLot.get(d.lot) ?? 0) + 1);
  const lotNames = lotsToRead(input.parsed);
  return {
    devices,
    unchanged,
    conflicts,
    lotsToCreate: lotNames.filter((l) => !input.lots.has(l) && unitsPerLot.has(l)),
    unitsPerLot,
    lotsWithoutAttestation: input.requireAttestation
      ? lotNames.filter((l) => input.lots.has(l) && !input.lots.get(l)?.requireAttestation)
      : [],
    trail: input.trail
      ? devices.map((d) => ({
          serial: d.serial,
          at: input.at,
          type: 'MANUFACTURED' as const,
          lot: d.lot,
          detail: {
            hwRev: d.hwRev,
            factoryFirmware: d.factoryFirmware,
            ring: d.ring ?? 'broad',
            source: 'manifest',
          },
        }))
      : [],
  };
}

const COMPARED_FIELDS = ['lot', 'hwRev', 'factoryFirmware', 'publicKey'] as const;

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
