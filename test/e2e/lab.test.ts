/**
 * The lab end to end: cdk.out (synthesized when stale) → emulators, IoT Core emulation, bundled
 * Lambdas, topic rules → the enrollment scenario of `npm run lab` (same module) with 12 units,
 * one of each bad case. Loopback only, no AWS credentials.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startLabRuntime, type LabRuntime } from '../../lab/runtime';
import { BAD_CASE_REASON } from '../../lab/scenario/plan';
import { runScenario, type ScenarioReport } from '../../lab/scenario/run';

// A fresh clone has no cdk.out: synthesis with bundling takes about 20-30 s on 2 cores.
jest.setTimeout(180_000);

describe('npm run lab scenario (12 units, every bad case)', () => {
  let lab: LabRuntime | undefined;
  let dir: string;
  let report: ScenarioReport;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-lab-e2e-'));
    lab = await startLabRuntime({ projectDir: resolve(__dirname, '../..'), labDir: dir, logDir: false });
    report = await runScenario(lab, { devices: 12, labDir: dir, activationTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the lab declares every resource type it meets', () => {
    expect(lab?.topology.unsupported).toEqual([]);
  });

  test('every expectation of the scenario holds', () => {
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
  });

  test('every allowlisted good unit enrolls and is activated by the lifecycle rule', () => {
    const e = report.enrollment;
    expect(e.attempted).toBe(12);
    expect(e.enrolled).toBe(7);
    expect(e.activated).toBe(7);
    expect(e.gaveUp).toBe(0);
    expect(e.p50Ms).toBeGreaterThan(0);
    expect(e.p99Ms).toBeGreaterThanOrEqual(e.p50Ms);
  });

  test('every bad case is denied with its own reason, read from the audit trail', () => {
    expect(report.enrollment.deniedByReason).toEqual({
      NOT_ON_ALLOWLIST: 1,
      CLAIM_LOT_MISMATCH: 1,
      LOT_ON_HOLD: 1,
      ATTESTATION_INVALID: 1,
      DEVICE_ALREADY_ACTIVE: 1,
    });
    for (const [kind, entry] of Object.entries(report.badCases)) {
      expect(entry.expectedReason).toBe(BAD_CASE_REASON[kind as keyof typeof BAD_CASE_REASON]);
      expect(entry.serials).toHaveLength(1);
    }
    // On the device side a denial is only AccessDenied, as on AWS.
    expect(Object.keys(report.enrollment.deniedByReasonSeenByDevices)).not.toContain('DEVICE_ALREADY_ACTIVE');
  });

  test('a unit whose RegisterThing answer was lost retries with the same key and is not stranded', () => {
    expect(report.recoveryCases.lostAnswer?.expectedReason).toBe('ALLOWED_RETRY_SAME_KEY');
    const [serial] = report.recoveryCases.lostAnswer?.serials ?? [];
    expect(serial).toBeDefined();
    const check = report.expectations.find((x) => x.name.startsWith(`lostAnswer ${serial}`));
    expect(check).toMatchObject({ ok: true });
    expect(check?.detail).toMatch(/^allowed ALLOWED then ALLOWED_RETRY_SAME_KEY; [1-9]\d* retr/);
  });

  test('the factory was set up through the fleet commands', () => {
    expect(report.factory.lotsCreated.sort()).toEqual(['LAB-A', 'LAB-ATT', 'LAB-B', 'LAB-HOLD']);
    expect(Object.keys(report.factory.claims).sort()).toEqual(['LAB-A', 'LAB-ATT', 'LAB-B', 'LAB-HOLD']);
    expect(report.factory.manifest).toMatchObject({ rows: 10, created: 10 });
    expect(report.factory.held).toEqual(['LAB-HOLD']);
  });

  test('no dead letters; the hook and presence functions ran without errors', () => {
    expect(report.lab.deadLetters).toEqual([]);
    for (const f of report.lab.functions)
      expect({ name: f.functionName, errors: f.errors }).toEqual({ name: f.functionName, errors: 0 });
    expect(report.lab.rules.reduce((a, r) => a + r.matched, 0)).toBeGreaterThanOrEqual(7);
  });
});
