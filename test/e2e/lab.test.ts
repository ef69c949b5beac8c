/**
 * The lab end to end: cdk.out (synthesized when stale) → emulators, IoT Core emulation, bundled
 * Lambdas, topic rules → the enrollment scenario of `npm run lab` (same module) with 12 units,
 * one of each bad case; then the same on the shipped example config (two templates, a hook
 * behind an alias with provisioned concurrency), and on the time-series example (Timestream and
 * InfluxDB actions into the lab's local stores). Every run includes the telemetry phase: the ACTIVE
 * units stream over Basic Ingest, the Kinesis emulator stops and comes back, replay brings back
 * what the error store caught, and nothing is lost. Loopback only, no AWS credentials.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startLabRuntime, type LabRuntime, type LabRuntimeOptions } from '../../lab/runtime';
import { labStackOutputs } from '../../lab/scenario/context';
import { BAD_CASE_REASON } from '../../lab/scenario/plan';
import { runScenario, type ScenarioReport } from '../../lab/scenario/run';

// A fresh clone has no cdk.out: synthesis with bundling takes about 20-30 s on 2 cores.
jest.setTimeout(180_000);

/** The denials both scenarios end with: one unit of each bad case, each denied for its own reason. */
const ONE_DENIAL_PER_BAD_CASE = {
  NOT_ON_ALLOWLIST: 1,
  CLAIM_LOT_MISMATCH: 1,
  LOT_ON_HOLD: 1,
  ATTESTATION_INVALID: 1,
  DEVICE_ALREADY_ACTIVE: 1,
};

const PROJECT_DIR = resolve(__dirname, '../..');

/**
 * For the describe it is called in: the lab started on `stack` in a fresh lab directory (a temp
 * directory named `tmpPrefix`…), and the report of the 12-unit scenario run in it; the lab stopped
 * and the directory removed after the describe's tests.
 */
function labScenario(
  tmpPrefix: string,
  stack: Partial<LabRuntimeOptions> = {},
): { lab?: LabRuntime; report: ScenarioReport } {
  const run = {} as { lab?: LabRuntime; report: ScenarioReport; dir?: string };
  beforeAll(async () => {
    run.dir = await mkdtemp(join(tmpdir(), tmpPrefix));
    run.lab = await startLabRuntime({ projectDir: PROJECT_DIR, ...stack, labDir: run.dir, logDir: false });
    run.report = await runScenario(run.lab, { devices: 12, labDir: run.dir, activationTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    await run.lab?.stop();
    if (run.dir) await rm(run.dir, { recursive: true, force: true });
  });
  return run;
}

/**
 * The stack synthesized from `examples/<config>`, its assembly kept in .lab/<cdkOut> between runs
 * (re-synthesized when stale).
 */
function exampleStack(config: string, cdkOut: string): Partial<LabRuntimeOptions> {
  const file = join(PROJECT_DIR, 'examples', config);
  return {
    cdkOut: join(PROJECT_DIR, '.lab', cdkOut),
    synthContext: { config: file },
    synthInputFiles: [file],
  };
}

describe('npm run lab scenario (12 units, every bad case)', () => {
  const run = labScenario('fleet-lab-e2e-');

  test('the lab declares every resource type it meets', () => {
    expect(run.lab?.topology.unsupported).toEqual([]);
  });

  test('every expectation of the scenario holds', () => {
    expect(run.report.failures).toEqual([]);
    expect(run.report.ok).toBe(true);
  });

  test('every allowlisted good unit enrolls and is activated by the lifecycle rule', () => {
    const e = run.report.enrollment;
    expect(e.attempted).toBe(12);
    expect(e.enrolled).toBe(7);
    expect(e.activated).toBe(7);
    expect(e.gaveUp).toBe(0);
    expect(e.p50Ms).toBeGreaterThan(0);
    expect(e.p99Ms).toBeGreaterThanOrEqual(e.p50Ms);
  });

  test('every bad case is denied with its own reason, read from the audit trail', () => {
    expect(run.report.enrollment.deniedByReason).toEqual(ONE_DENIAL_PER_BAD_CASE);
    for (const [kind, entry] of Object.entries(run.report.badCases)) {
      expect(entry.expectedReason).toBe(BAD_CASE_REASON[kind as keyof typeof BAD_CASE_REASON]);
      expect(entry.serials).toHaveLength(1);
    }
    // On the device side a denial is only AccessDenied, as on AWS.
    expect(Object.keys(run.report.enrollment.deniedByReasonSeenByDevices)).not.toContain(
      'DEVICE_ALREADY_ACTIVE',
    );
  });

  test('a unit whose RegisterThing answer was lost retries with the same key and is not stranded', () => {
    expect(run.report.recoveryCases.lostAnswer?.expectedReason).toBe('ALLOWED_RETRY_SAME_KEY');
    const [serial] = run.report.recoveryCases.lostAnswer?.serials ?? [];
    expect(serial).toBeDefined();
    const check = run.report.expectations.find((x) => x.name.startsWith(`lostAnswer ${serial}`));
    expect(check).toMatchObject({ ok: true });
    expect(check?.detail).toMatch(/^allowed ALLOWED then ALLOWED_RETRY_SAME_KEY; [1-9]\d* retr/);
  });

  test('the factory was set up through the fleet commands', () => {
    expect(run.report.factory.lotsCreated.sort()).toEqual(['LAB-A', 'LAB-ATT', 'LAB-B', 'LAB-HOLD']);
    expect(Object.keys(run.report.factory.claims).sort()).toEqual(['LAB-A', 'LAB-ATT', 'LAB-B', 'LAB-HOLD']);
    expect(run.report.factory.manifest).toMatchObject({ rows: 10, created: 10 });
    expect(run.report.factory.held).toEqual(['LAB-HOLD']);
  });

  test('no dead letters but the malformed health report; every function ran without errors', () => {
    const queues = new Set(run.report.lab.deadLetters.map((d) => d.queueName));
    expect(run.report.lab.deadLetters).toHaveLength(1);
    expect(queues.size).toBe(1);
    expect(JSON.parse(run.report.lab.deadLetters[0].body)).toMatchObject({ reason: 'MALFORMED' });
    for (const f of run.report.lab.functions)
      expect({ name: f.functionName, errors: f.errors }).toEqual({ name: f.functionName, errors: 0 });
    expect(run.report.lab.rules.reduce((a, r) => a + r.matched, 0)).toBeGreaterThanOrEqual(7);
  });

  test('a mixed fleet: half the units on MQTT 5, and both versions enroll, pass the probe and stream with nothing lost', () => {
    const m = run.report.mqtt;
    expect(m.mqtt5Share).toBe(0.5);
    expect(m.versions.map((v) => [v.version, v.units])).toEqual([
      ['3.1.1', 6],
      ['5', 6],
    ]);
    expect(m.versions.reduce((a, v) => a + v.active, 0)).toBe(7);
    for (const v of m.versions) {
      expect(v.active).toBeGreaterThan(0);
      expect(v.connect).toMatchObject({ attempted: v.active * 2, succeeded: v.active * 2, failures: {} });
      expect(v.publish).toMatchObject({ attempted: v.active * 40, succeeded: v.active * 40, failures: {} });
      expect(v.connect!.perSecond).toBeGreaterThan(0);
      expect(v.publish!.perSecond).toBeGreaterThan(0);
      expect(v.stream).toMatchObject({ devices: v.active, lost: 0 });
      expect(v.stream!.acked).toBeGreaterThan(0);
    }
  });

  test('the one template saw every unit', () => {
    expect(run.report.templates).toEqual([
      expect.objectContaining({ template: 'fleet-default', attempted: 12, enrolled: 7, activated: 7 }),
    ]);
  });

  test('telemetry: every ACTIVE unit streamed, the outage went through the error store and replay, nothing was lost', () => {
    const t = run.report.telemetry!;
    expect(t.devices).toBe(7);
    expect(t.published).toBeGreaterThan(0);
    expect(t.lost).toBe(0);
    expect(t.inErrorStore).toBeGreaterThan(0);
    expect(t.replay.counts.replayed).toBe(t.replay.counts.found - t.replay.counts.skipped);
    expect(t.replayed).toBeGreaterThan(0);
    expect(t.delivered + t.replayed).toBe(t.published);
    expect(t.archived).toBe(t.published);
  });

  test('health: the crash-looping release candidate is the only cohort with unexpected reboots', () => {
    const t = run.report.telemetry!;
    const rc = t.cohorts.filter((c) => c.firmware === t.firmware.crashLooping);
    expect(rc.reduce((a, c) => a + c.unexpectedReboots, 0)).toBeGreaterThan(0);
    expect(rc.reduce((a, c) => a + c.crashResets, 0)).toBeGreaterThan(0);
    for (const c of t.cohorts.filter((x) => x.firmware !== t.firmware.crashLooping))
      expect({ cohort: `${c.firmware} ${c.ring}`, reboots: c.unexpectedReboots }).toEqual({
        cohort: `${c.firmware} ${c.ring}`,
        reboots: 0,
      });
    expect(t.registry).toMatchObject({ lastSeenSet: 7, firmwareRecorded: t.registry.switched });
    expect(t.registry.firmwareChangedEntries).toBe(t.registry.switched);
  });
});

describe('npm run lab -- --config examples/fleet.config.json (two templates, hook alias with provisioned concurrency)', () => {
  const run = labScenario('fleet-lab-e2e-example-', exampleStack('fleet.config.json', 'cdk.out-e2e-example'));

  test('the stack synthesized from the config runs: its templates, the hook alias, no unsupported type', () => {
    expect(run.lab?.assembly.stacks.map((s) => s.tags.stage)).toEqual(['prod']);
    expect(Object.values(run.lab?.topology.provisioningTemplates ?? {}).sort()).toEqual([
      'acme-gateway',
      'acme-sensor',
    ]);
    expect(Object.values(run.lab?.topology.functionQualifiers ?? {}).map((q) => q.arn)).toEqual(
      expect.arrayContaining([expect.stringMatching(/:function:[^:]+:live$/)]),
    );
    expect(run.lab?.topology.unsupported).toEqual([]);
    expect(labStackOutputs(run.lab as LabRuntime).ThingNamePrefix).toBe('acme');
  });

  test('every expectation holds', () => {
    expect(run.report.failures).toEqual([]);
    expect(run.report.ok).toBe(true);
  });

  test('every template enrolled and activated good units of its own', () => {
    expect(run.report.templates.map((t) => t.template).sort()).toEqual(['acme-gateway', 'acme-sensor']);
    for (const t of run.report.templates) {
      expect(t.good).toBeGreaterThan(0);
      // Good units plus, on LAB-B's template, the recovered unit.
      expect(t.activated).toBeGreaterThanOrEqual(t.good);
      expect(t.activated).toBe(t.enrolled);
    }
    expect(run.report.enrollment.activated).toBe(run.report.enrollment.enrolled);
  });

  test('every bad case appeared, each with its own reason', () => {
    expect(run.report.enrollment.deniedByReason).toEqual(ONE_DENIAL_PER_BAD_CASE);
    expect(Object.keys(run.report.badCases).sort()).toEqual(Object.keys(BAD_CASE_REASON).sort());
    expect(run.report.recoveryCases.lostAnswer?.serials).toHaveLength(1);
  });

  test("the hook behind the alias decided its template's enrollments", () => {
    const hooks = run.report.lab.functions.filter((f) => /ProvisioningTemplate\dHook/.test(f.functionName));
    expect(hooks).toHaveLength(2);
    for (const h of hooks) {
      expect(h.invocations).toBeGreaterThan(0);
      expect(h.errors).toBe(0);
    }
  });

  test('telemetry went through the config-named rules, nothing lost', () => {
    expect(labStackOutputs(run.lab as LabRuntime).TelemetryRules).toBe(
      JSON.stringify({ telemetry: 'acme_telemetry', health: 'acme_health' }),
    );
    expect(run.report.telemetry?.lost).toBe(0);
    expect(run.report.telemetry?.published).toBeGreaterThan(0);
  });
});

describe('npm run lab -- --config examples/timeseries.config.json (Timestream and InfluxDB options on)', () => {
  const run = labScenario(
    'fleet-lab-e2e-timeseries-',
    exampleStack('timeseries.config.json', 'cdk.out-e2e-timeseries'),
  );

  test('the stack with both options runs in the lab with no unsupported type', () => {
    expect(run.lab?.topology.unsupported).toEqual([]);
    expect(run.report.failures).toEqual([]);
    expect(run.report.ok).toBe(true);
  });

  test('the health reports reached the Timestream table and the InfluxDB destination, with lot and ring', () => {
    const ts = run.report.telemetry!.timeSeries;
    expect(ts.timestream).toEqual([
      expect.objectContaining({
        database: 'fleet_telemetry',
        table: 'device_health',
        records: expect.any(Number),
      }),
    ]);
    expect(ts.timestream[0].records).toBeGreaterThan(0);
    expect(ts.influxdb).toHaveLength(1);
    expect(ts.influxdb[0].points).toBeGreaterThan(0);
    const records = run.lab!.timeSeries.timestreamRecords('fleet_telemetry', 'device_health');
    const dims = (records[0] as { Dimensions?: { Name: string; Value: string }[] }).Dimensions ?? [];
    expect(dims.map((d) => d.Name).sort()).toEqual(['firmware', 'lot', 'ring', 'thingName']);
    expect(dims.find((d) => d.Name === 'lot')?.Value).toMatch(/^LAB-/);
    expect(run.report.telemetry?.lost).toBe(0);
  });
});
