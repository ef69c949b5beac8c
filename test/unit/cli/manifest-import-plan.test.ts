/** The pure plan of `fleet manifest import`, with plain objects (no parser, no registry). */
import {
  lotsToRead,
  ManifestImportPlan,
  ManifestImportPlanInput,
  planManifestImport,
} from '../../../cli/manifest-import-plan';
import type { ManifestIssue, ManifestRow, ParsedManifest } from '../../../core/manifest';
import type { DeviceRecord, LotRecord } from '../../../core/model';
import { assignRings } from '../../../core/rings';

const AT = '2026-07-10T12:00:00.000Z';
const SHARES = { canaryPercent: 2, earlyPercent: 18 };
const KEY = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
const OTHER_KEY = '-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n';

const row = (line: number, serial: string, over: Partial<ManifestRow> = {}): ManifestRow => ({
  line,
  serial,
  lot: 'L1',
  hwRev: 'A',
  factoryFirmware: '1.0.0',
  ...over,
});

const issue = (line: number, serial: string): ManifestIssue => ({
  line,
  serial,
  field: 'serial',
  problem: 'bad serial',
  fix: 'fix it',
});

const lot = (name: string, requireAttestation: boolean): LotRecord => ({
  lot: name,
  status: 'OK',
  requireAttestation,
  claimCertificateIds: [],
  unitCount: 0,
  createdAt: AT,
  updatedAt: AT,
});

const device = (r: ManifestRow, over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  serial: r.serial,
  lot: r.lot,
  hwRev: r.hwRev,
  factoryFirmware: r.factoryFirmware,
  currentFirmware: r.factoryFirmware,
  status: 'ACTIVE',
  ...(r.publicKey ? { publicKey: r.publicKey } : {}),
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  revision: 3,
  ...over,
});

function input(
  parsed: Partial<ParsedManifest>,
  over: Partial<ManifestImportPlanInput> = {},
): ManifestImportPlanInput {
  const rows = parsed.rows ?? [];
  const issues = parsed.issues ?? [];
  return {
    parsed: { rows, issues, rowCount: parsed.rowCount ?? rows.length + issues.length },
    lots: new Map(),
    ringShares: SHARES,
    at: AT,
    skipInvalid: false,
    requireAttestation: false,
    trail: false,
    ...over,
  };
}

function expectStep<S extends ManifestImportPlan['step']>(
  plan: ManifestImportPlan,
  step: S,
): Extract<ManifestImportPlan, { step: S }> {
  expect(plan.step).toBe(step);
  return plan as Extract<ManifestImportPlan, { step: S }>;
}

describe('rows and lots', () => {
  test('the lots to read are those of the valid rows, once each, by name', () => {
    const parsed = input({
      rows: [row(2, 'SN-1', { lot: 'LB' }), row(3, 'SN-2', { lot: 'LA' }), row(4, 'SN-3', { lot: 'LB' })],
      issues: [{ ...issue(5, 'SN-4') }],
    }).parsed;
    expect(lotsToRead(parsed)).toEqual(['LA', 'LB']);
  });

  test('a row of an attesting lot without a key is invalid; rows with a key, or of other lots, stay', () => {
    const plan = planManifestImport(
      input(
        {
          rows: [row(2, 'SN-1'), row(3, 'SN-2', { publicKey: KEY }), row(4, 'SN-3', { lot: 'L2' })],
          issues: [issue(5, 'bad'), issue(1, 'first')],
        },
        { lots: new Map([['L1', lot('L1', true)]]), skipInvalid: true },
      ),
    );
    expect(plan.lotIssues).toEqual([
      {
        line: 2,
        serial: 'SN-1',
        field: 'publicKey',
        problem: 'publicKey is missing, and lot L1 requires attestation',
        fix: 'add the factory P-256 public key of this unit (PEM or base64 SPKI DER)',
      },
    ]);
    expect(plan.invalid.map((i) => i.line)).toEqual([1, 2, 5]);
    expect(plan.rows.map((r) => r.serial)).toEqual(['SN-2', 'SN-3']);
    expect(plan.invalidRows).toBe(3);
    expect(expectStep(plan, 'readDevices').serials).toEqual(['SN-2', 'SN-3']);
  });

  test.each([
    [
      'a problem without --skip-invalid',
      { rows: [row(2, 'SN-1')], issues: [issue(3, 'x')] },
      false,
      'invalid',
      1,
    ],
    ['only problems, with --skip-invalid', { rows: [], issues: [issue(2, 'x')] }, true, 'empty', 1],
    ['no data rows at all', { rows: [], issues: [] }, false, 'empty', 0],
  ] as const)('%s: the plan stops before any device read', (_name, parsed, skipInvalid, reason, exitCode) => {
    const plan = expectStep(
      planManifestImport(input({ rows: [...parsed.rows], issues: [...parsed.issues] }, { skipInvalid })),
      'stop',
    );
    expect(plan).toMatchObject({ reason, exitCode });
  });
});

describe('with the existing devices', () => {
  const rows = [
    row(2, 'SN-NEW1'),
    row(3, 'SN-SAME', { publicKey: KEY }),
    row(4, 'SN-HWREV', { hwRev: 'B' }),
    row(5, 'SN-KEY', { publicKey: OTHER_KEY }),
    row(6, 'SN-NEW2', { lot: 'L2', publicKey: KEY }),
  ];
  const existing = new Map<string, DeviceRecord>([
    ['SN-SAME', device(rows[1])],
    ['SN-HWREV', device(rows[2], { hwRev: 'A' })],
    ['SN-KEY', device(rows[3], { publicKey: KEY })],
  ]);

  test('new, unchanged and conflicting serials; new records are MANUFACTURED at revision 0', () => {
    const plan = expectStep(planManifestImport(input({ rows }, { existing })), 'import');
    expect(plan.unchanged).toBe(1);
    expect(plan.conflicts).toEqual([
      { line: 4, serial: 'SN-HWREV', differences: [{ field: 'hwRev', registry: 'A', manifest: 'B' }] },
      {
        line: 5,
        serial: 'SN-KEY',
        differences: [{ field: 'publicKey', registry: 'a key', manifest: 'another key' }],
      },
    ]);
    expect(plan.exitCode).toBe(1);
    const rings = assignRings(rows, SHARES);
    expect(plan.devices).toEqual([
      {
        serial: 'SN-NEW1',
        lot: 'L1',
        hwRev: 'A',
        factoryFirmware: '1.0.0',
        currentFirmware: '1.0.0',
        status: 'MANUFACTURED',
        ring: rings.get('SN-NEW1'),
        createdAt: AT,
        updatedAt: AT,
        revision: 0,
      },
      expect.objectContaining({ serial: 'SN-NEW2', lot: 'L2', publicKey: KEY, ring: rings.get('SN-NEW2') }),
    ]);
    expect([...plan.unitsPerLot]).toEqual([
      ['L1', 1],
      ['L2', 1],
    ]);
    expect(plan.lotsToCreate).toEqual(['L1', 'L2']);
    expect(plan.trail).toEqual([]);
  });

  test('no conflict: exit code 0', () => {
    const plan = expectStep(planManifestImport(input({ rows: [rows[0], rows[1]] }, { existing })), 'import');
    expect(plan).toMatchObject({ exitCode: 0, unchanged: 1, conflicts: [] });
  });

  test('a key without one on either side, and one missing on one side', () => {
    const noKey = row(2, 'SN-A');
    const plan = expectStep(
      planManifestImport(
        input(
          { rows: [noKey, row(3, 'SN-B')] },
          {
            existing: new Map([
              ['SN-A', device(noKey)],
              ['SN-B', device(row(3, 'SN-B'), { publicKey: KEY })],
            ]),
          },
        ),
      ),
      'import',
    );
    expect(plan.unchanged).toBe(1);
    expect(plan.conflicts[0].differences).toEqual([
      { field: 'publicKey', registry: 'a key', manifest: '(none)' },
    ]);
  });

  test('rings are stratified over every valid row of the file, not only the new ones', () => {
    const many = Array.from({ length: 50 }, (_, i) => row(i + 2, `SN-${String(i).padStart(3, '0')}`));
    const known = new Map(many.slice(0, 25).map((r) => [r.serial, device(r)]));
    const plan = expectStep(planManifestImport(input({ rows: many }, { existing: known })), 'import');
    const rings = assignRings(many, SHARES);
    expect(plan.devices.map((d) => [d.serial, d.ring])).toEqual(
      many.slice(25).map((r) => [r.serial, rings.get(r.serial)]),
    );
  });

  test('only missing lots that get new devices are created; existing lots get their new units', () => {
    const plan = expectStep(
      planManifestImport(
        input(
          {
            rows: [
              row(2, 'SN-1', { lot: 'LX' }),
              row(3, 'SN-2', { lot: 'LY' }),
              row(4, 'SN-3', { lot: 'LZ' }),
            ],
          },
          {
            lots: new Map([['LX', lot('LX', false)]]),
            existing: new Map([['SN-2', device(row(3, 'SN-2', { lot: 'LY' }))]]),
          },
        ),
      ),
      'import',
    );
    expect(plan.lotsToCreate).toEqual(['LZ']);
    expect([...plan.unitsPerLot]).toEqual([
      ['LX', 1],
      ['LZ', 1],
    ]);
    expect(plan.lotsWithoutAttestation).toEqual([]);
  });

  test('--require-attestation names the existing lots that do not require it', () => {
    const plan = expectStep(
      planManifestImport(
        input(
          {
            rows: [
              row(2, 'SN-1', { lot: 'LX', publicKey: KEY }),
              row(3, 'SN-2', { lot: 'LY', publicKey: KEY }),
              row(4, 'SN-3', { lot: 'LZ', publicKey: KEY }),
            ],
          },
          {
            requireAttestation: true,
            lots: new Map([
              ['LX', lot('LX', false)],
              ['LY', lot('LY', true)],
            ]),
            existing: new Map(),
          },
        ),
      ),
      'import',
    );
    expect(plan.lotsWithoutAttestation).toEqual(['LX']);
    expect(plan.lotsToCreate).toEqual(['LZ']);
  });

  test('--trail plans one MANUFACTURED entry per new device', () => {
    const plan = expectStep(planManifestImport(input({ rows }, { existing, trail: true })), 'import');
    expect(plan.trail).toEqual(
      plan.devices.map((d) => ({
        serial: d.serial,
        at: AT,
        type: 'MANUFACTURED',
        lot: d.lot,
        detail: { hwRev: d.hwRev, factoryFirmware: d.factoryFirmware, ring: d.ring, source: 'manifest' },
      })),
    );
    expect(plan.trail).toHaveLength(2);
  });
});
