/**
 * The enrollment scenario on a running lab, shared by `npm run lab`, the lab e2e test and the
 * enrollment benchmark.
 *
 * 1. Factory set-up through the same `fleet` command functions an operator runs (in-process,
 *    with a CliContext built from the lab's environment): `lot create`, `claim create` per lot
 *    (files under `<labDir>/claims/<lot>/`), `manifest import` of a generated CSV, `lot hold`.
 * 2. First wave: the simulator enrolls every unit (good and bad) through the fleet provisioning
 *    MQTT API; enrolled units reconnect as their thing and keep the session until the
 *    lifecycle rule (presence event → topic rule → presence Lambda) has made them ACTIVE.
 * 3. Second wave: the clone, once its original is ACTIVE.
 * 3b. Recovery wave: a unit whose RegisterThing answer the lab loses on purpose; it must time
 *    out, retry with the same key, be allowed as the same device and end ACTIVE.
 * 4. Reasons come from the audit trail (`fleet enrollment list`), because on AWS a denied
 *    device only sees AccessDenied; they are cross-checked against the plan.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { claimCreate, CLAIM_FILES } from '../../cli/commands/claim';
import { enrollmentList, type EnrollmentListResult } from '../../cli/commands/enrollment';
import { lotCreate, lotHold } from '../../cli/commands/lot';
import { manifestImport } from '../../cli/commands/manifest-import';
import { createContext, resolveResources, type CliContext } from '../../cli/context';
import { memorySink, type MemorySink } from '../../cli/output';
import {
  percentile,
  runFleet,
  type BackoffOptions,
  type DeviceRunResult,
  type FleetResult,
  type TlsCredentials,
} from '../../device';
import { Registry } from '../../lambda/shared/registry';
import type { LabRuntime } from '../runtime';
import {
  BAD_CASE_REASON,
  buildPlan,
  manifestCsv,
  RECOVERY_CASE_REASON,
  type BadCase,
  type PlannedDevice,
  type RecoveryCase,
  type ScenarioPlan,
} from './plan';

export interface ScenarioOptions {
  /** Simulated units, bad cases included. @default 200 */
  devices?: number;
  /** Include the deliberate bad cases. @default true */
  badCases?: boolean;
  /** Units enrolling at the same time. @default 32 */
  concurrency?: number;
  /** Simulator retry policy. @default DEFAULT_SCENARIO_BACKOFF (or QUOTA_BACKOFF with a quota) */
  backoff?: Partial<BackoffOptions>;
  /** Set when the lab enforces a RegisterThing quota: picks the quota backoff by default. */
  registerThingTps?: number;
  /** Give-ups tolerated by the expectations. @default 0 */
  allowedGiveUps?: number;
  /** Working directory for claims, manifest and device certificates. */
  labDir: string;
  /** Bound on waiting for activation after the first wave. @default 30000 */
  activationTimeoutMs?: number;
  /** Progress bar on stdout (TTY only with 'auto'). @default false */
  progressBar?: boolean | 'auto';
  /** Progress lines (phase starts and ends). */
  log?: (line: string) => void;
}

/** Retry policy for the default scenario: fast first retry, enough attempts for transient errors. */
export const DEFAULT_SCENARIO_BACKOFF: BackoffOptions = { baseMs: 100, capMs: 5_000, maxAttempts: 8 };

/**
 * Retry policy under a RegisterThing quota of `tps`: the window grows from about one token
 * interval up to the time the whole concurrent batch needs at the quota, so retries spread
 * over the refill instead of bunching; attempts cover the full queue.
 */
export function quotaBackoff(tps: number, concurrency: number): BackoffOptions {
  const interval = 1000 / tps;
  return {
    baseMs: Math.max(20, Math.round(interval * 2)),
    capMs: Math.max(500, Math.round((concurrency / tps) * 1000)),
    maxAttempts: 40,
  };
}

export interface Expectation {
  name: string;
  ok: boolean;
  detail: string;
}

export interface EnrollmentSection {
  attempted: number;
  enrolled: number;
  /** Denials per reason code, from the audit trail (the hook's decisions). */
  deniedByReason: Record<string, number>;
  /** Denials per reason as the devices saw them (on AWS: AccessDenied only). */
  deniedByReasonSeenByDevices: Record<string, number>;
  gaveUp: number;
  retries: number;
  activated: number;
  p50Ms: number;
  p99Ms: number;
  /** Wall time of the enrollment waves (first wave + activation wait + clone wave). */
  wallMs: number;
  firstTimeSuccessRate: number | null;
}

export interface ScenarioReport {
  ok: boolean;
  devices: number;
  lots: { lot: string; requireAttestation: boolean; hold: boolean; hwRevs: string[] }[];
  badCases: Record<BadCase, { serials: string[]; expectedReason: string }>;
  /** Units that must recover from an injected fault, with the allow reason of their retry. */
  recoveryCases: Partial<Record<RecoveryCase, { serials: string[]; expectedReason: string }>>;
  enrollment: EnrollmentSection;
  expectations: Expectation[];
  failures: string[];
  timings: {
    synthMs: number;
    labStartMs: number;
    factorySetupMs: number;
    firstWaveMs: number;
    activationWaitMs: number;
    cloneWaveMs: number;
    recoveryWaveMs: number;
    scenarioMs: number;
  };
  lab: {
    registerThingTps?: number;
    concurrency: number;
    backoff: BackoffOptions;
    functions: ReturnType<LabRuntime['stats']>['functions'];
    rules: ReturnType<LabRuntime['stats']>['rules'];
    queues: ReturnType<LabRuntime['stats']>['queues'];
    iot: unknown;
    deadLetters: { queueName: string; source?: string; body: string }[];
  };
  factory: {
    lotsCreated: string[];
    claims: Record<string, string>;
    manifest: { file: string; rows: number; created: number };
    held: string[];
  };
}

/** A CliContext on the lab: resources resolved from the lab's env as the CLI does, clients on its endpoints. */
export async function labCliContext(lab: LabRuntime, out: MemorySink = memorySink()): Promise<CliContext> {
  const env = lab.env;
  const resources = await resolveResources({
    flags: {},
    env,
    needs: ['devicesTable', 'lotsTable', 'eventsTable', 'thingPrefix', 'provisioningTemplates'],
    wants: ['devicePolicy'],
    readStackOutputs: async () => ({}),
  });
  const config = {
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  };
  const dynamo = new DynamoDBClient({ ...config, endpoint: env.AWS_ENDPOINT_URL_DYNAMODB });
  return createContext({
    resources,
    clients: {
      dynamo,
      doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
      iot: new IoTClient({ ...config, endpoint: env.AWS_ENDPOINT_URL_IOT }),
    },
    out,
    actor: 'lab',
  });
}

function destroyContext(ctx: CliContext): void {
  ctx.clients.doc.destroy();
  ctx.clients.dynamo.destroy();
  ctx.clients.iot.destroy();
}

interface FactoryResult {
  claims: Record<string, TlsCredentials>;
  report: ScenarioReport['factory'];
}

async function setUpFactory(plan: ScenarioPlan, ctx: CliContext, labDir: string): Promise<FactoryResult> {
  const claims: Record<string, TlsCredentials> = {};
  const claimIds: Record<string, string> = {};
  const lotsCreated: string[] = [];
  for (const lot of plan.lots) {
    const created = await lotCreate({ lot: lot.lot, requireAttestation: lot.requireAttestation }, ctx);
    if (created.created) lotsCreated.push(lot.lot);
    const dir = join(labDir, 'claims', lot.lot);
    const claim = await claimCreate({ lot: lot.lot, out: dir, force: true }, ctx);
    claimIds[lot.lot] = claim.certificateId;
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
      manifest: { file, rows: imported.rows, created: imported.created },
      held,
    },
  };
}

/** Poll the Devices table until every serial is ACTIVE or the time is up; returns the ACTIVE ones. */
async function waitForActivation(
  lab: LabRuntime,
  registry: Registry,
  serials: string[],
  timeoutMs: number,
): Promise<Set<string>> {
  const active = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  let pending = [...serials];
  for (;;) {
    await lab.idle();
    const still: string[] = [];
    for (let i = 0; i < pending.length; i += 25) {
      const batch = pending.slice(i, i + 25);
      const records = await Promise.all(batch.map((s) => registry.getDevice(s)));
      records.forEach((r, j) => (r?.status === 'ACTIVE' ? active.add(batch[j]) : still.push(batch[j])));
    }
    pending = still;
    if (pending.length === 0 || Date.now() >= deadline) return active;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function reasonsSeenByDevices(results: DeviceRunResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    if (r.outcome !== 'denied') continue;
    const token = /\[([A-Z][A-Z0-9_]*)\]/.exec(r.errorMessage)?.[1] ?? r.errorCode;
    out[token] = (out[token] ?? 0) + 1;
  }
  return out;
}

/** Run the scenario on a running lab. Never throws for failed expectations: see `report.ok`. */
export async function runScenario(lab: LabRuntime, options: ScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const labDir = resolvePath(options.labDir);
  await mkdir(labDir, { recursive: true });
  const plan = buildPlan({ devices: options.devices, badCases: options.badCases });
  const concurrency = options.concurrency ?? 32;
  const backoff: BackoffOptions = {
    ...(options.registerThingTps
      ? quotaBackoff(options.registerThingTps, concurrency)
      : DEFAULT_SCENARIO_BACKOFF),
    ...(options.backoff ?? {}),
  };
  const out = memorySink();
  const ctx = await labCliContext(lab, out);
  const sessions: FleetResult[] = [];
  try {
    const tables = {
      devices: ctx.resources.devicesTable ?? '',
      lots: ctx.resources.lotsTable ?? '',
      events: ctx.resources.eventsTable ?? '',
    };
    const registry = new Registry(ctx.clients.doc, tables);
    const template = (ctx.resources.provisioningTemplates ?? [])[0];
    if (!template) throw new Error('the lab declares no provisioning template');

    // 1. Factory.
    log(`factory: ${plan.lots.length} lots, claim certificates, manifest of ${plan.manifest.length} units`);
    const t0 = Date.now();
    const factory = await setUpFactory(plan, ctx, labDir);
    const factorySetupMs = Date.now() - t0;
    const trailSince = new Date(Date.now() - 1000).toISOString();

    const fleetOptions = {
      endpoint: {
        host: lab.endpoints.mqtt.host,
        port: lab.endpoints.mqtt.port,
        caPem: lab.endpoints.mqtt.caPem,
      },
      claims: factory.claims,
      templateName: template.templateName,
      claimClientIdPrefix: template.claimClientIdPrefix,
      concurrency,
      backoff,
      progressBar: options.progressBar ?? false,
      certDir: join(labDir, 'devices'),
    };

    // 2. First wave; thing sessions stay open until activation is observed.
    log(`enrolling ${plan.firstWave.length} units (concurrency ${concurrency})`);
    const t1 = Date.now();
    const first = await runFleet({
      ...fleetOptions,
      devices: plan.firstWave.map((d) => d.spec),
      keepConnected: true,
    });
    sessions.push(first);
    const firstWaveMs = Date.now() - t1;
    const enrolledSerials = first.results.filter((r) => r.outcome === 'enrolled').map((r) => r.specSerial);
    const t2 = Date.now();
    const active = await waitForActivation(
      lab,
      registry,
      enrolledSerials,
      options.activationTimeoutMs ?? 30_000,
    );
    const activationWaitMs = Date.now() - t2;
    log(`${first.summary.enrolled} enrolled, ${active.size} activated`);
    await first.close();

    // 3. Second wave: clones of units that are ACTIVE now.
    const t3 = Date.now();
    let second: FleetResult | undefined;
    if (plan.secondWave.length > 0) {
      log(`enrolling ${plan.secondWave.length} clone(s) of enrolled serials`);
      second = await runFleet({
        ...fleetOptions,
        devices: plan.secondWave.map((d) => d.spec),
        keepConnected: false,
      });
      await lab.idle();
    }
    const cloneWaveMs = Date.now() - t3;

    // 3b. Recovery wave: the lab loses each unit's RegisterThing answer once.
    const t4 = Date.now();
    let recovery: FleetResult | undefined;
    if (plan.recoveryWave.length > 0) {
      const faults = lab.iot.faults;
      if (!faults) throw new Error('this lab offers no fault injection; run the scenario without bad cases');
      for (const p of plan.recoveryWave)
        faults.loseNextRegisterThingAnswer(`${template.claimClientIdPrefix}${p.spec.identity.serial}`);
      log(`enrolling ${plan.recoveryWave.length} unit(s) whose RegisterThing answer is lost`);
      recovery = await runFleet({
        ...fleetOptions,
        devices: plan.recoveryWave.map((d) => d.spec),
        keepConnected: true,
        // The lost answer surfaces as a response timeout; keep it short so the retry comes soon.
        responseTimeoutMs: RECOVERY_RESPONSE_TIMEOUT_MS,
      });
      sessions.push(recovery);
      const recovered = recovery.results.filter((r) => r.outcome === 'enrolled').map((r) => r.specSerial);
      for (const serial of await waitForActivation(
        lab,
        registry,
        recovered,
        options.activationTimeoutMs ?? 30_000,
      ))
        active.add(serial);
      await recovery.close();
    }
    const recoveryWaveMs = Date.now() - t4;
    const wallMs = Date.now() - t1;

    // 4. The audit trail, through the operator's command.
    const trail = await enrollmentList(
      { since: trailSince, until: new Date(Date.now() + 1000).toISOString(), limit: 1_000_000, json: true },
      ctx,
    );

    const planned: { planned: PlannedDevice; result: DeviceRunResult }[] = [
      ...plan.firstWave.map((p, i) => ({ planned: p, result: findResult(first, p, i) })),
      ...plan.secondWave.map((p, i) => ({ planned: p, result: findResult(second as FleetResult, p, i) })),
      ...plan.recoveryWave.map((p, i) => ({ planned: p, result: findResult(recovery as FleetResult, p, i) })),
    ];
    const results = planned.map((p) => p.result);
    const enrollTimes = results.flatMap((r) => (r.outcome === 'enrolled' ? [r.enrollMs] : []));
    const enrollment: EnrollmentSection = {
      attempted: results.length,
      enrolled: enrollTimes.length,
      deniedByReason: trail.stats.deniedByReason,
      deniedByReasonSeenByDevices: reasonsSeenByDevices(results),
      gaveUp: results.filter((r) => r.outcome === 'gaveUp').length,
      retries: results.reduce((a, r) => a + r.retries, 0),
      activated: active.size,
      p50Ms: percentile(enrollTimes, 50),
      p99Ms: percentile(enrollTimes, 99),
      wallMs,
      firstTimeSuccessRate: trail.stats.firstTimeSuccessRate,
    };
    const stats = lab.stats();
    const deadLetters = lab
      .deadLetters()
      .map((m) => ({ queueName: m.queueName, source: m.source, body: m.body }));
    const expectations = checkExpectations(
      planned,
      trail,
      active,
      enrollment,
      deadLetters.length,
      options.allowedGiveUps ?? 0,
    );
    const erroring = stats.functions
      .filter((f) => f.errors > 0)
      .map(
        (f) =>
          `${f.functionName} failed ${f.errors}/${f.invocations} invocations (see its log under ${join(labDir, 'logs')})`,
      );
    if (erroring.length > 0)
      expectations.push({ name: 'no function errors', ok: false, detail: erroring.join('; ') });
    const failures = expectations.filter((e) => !e.ok).map((e) => `${e.name}: ${e.detail}`);
    const badCases = {} as ScenarioReport['badCases'];
    for (const p of [...plan.firstWave, ...plan.secondWave]) {
      if (!isBadCase(p.kind)) continue;
      const entry = (badCases[p.kind] ??= { serials: [], expectedReason: p.expectedReason ?? '' });
      entry.serials.push(p.spec.identity.serial);
    }
    const recoveryCases: ScenarioReport['recoveryCases'] = {};
    for (const p of plan.recoveryWave) {
      const kind = p.kind as RecoveryCase;
      const entry = (recoveryCases[kind] ??= { serials: [], expectedReason: p.expectedReason ?? '' });
      entry.serials.push(p.spec.identity.serial);
    }
    return {
      ok: failures.length === 0,
      devices: plan.counts.devices,
      lots: plan.lots,
      badCases,
      recoveryCases,
      enrollment,
      expectations,
      failures,
      timings: {
        synthMs: lab.timings.synthMs,
        labStartMs: lab.timings.startMs,
        factorySetupMs,
        firstWaveMs,
        activationWaitMs,
        cloneWaveMs,
        recoveryWaveMs,
        scenarioMs: Date.now() - started,
      },
      lab: {
        ...(options.registerThingTps ? { registerThingTps: options.registerThingTps } : {}),
        concurrency,
        backoff,
        functions: stats.functions,
        rules: stats.rules,
        queues: stats.queues,
        iot: stats.iot,
        deadLetters,
      },
      factory: factory.report,
    };
  } finally {
    for (const s of sessions) await s.close().catch(() => undefined);
    destroyContext(ctx);
  }
}

/** Response timeout of the recovery wave: how long a device waits for the answer the lab loses. */
const RECOVERY_RESPONSE_TIMEOUT_MS = 2_000;

function isBadCase(kind: PlannedDevice['kind']): kind is BadCase {
  return kind in BAD_CASE_REASON;
}

function findResult(fleet: FleetResult, p: PlannedDevice, index: number): DeviceRunResult {
  // runFleet returns results in its run order; match on the spec's serial (unique per wave).
  return fleet.results.find((r) => r.specSerial === p.spec.identity.serial) ?? fleet.results[index];
}

function checkExpectations(
  planned: { planned: PlannedDevice; result: DeviceRunResult }[],
  trail: EnrollmentListResult,
  active: Set<string>,
  enrollment: EnrollmentSection,
  deadLetters: number,
  allowedGiveUps: number,
): Expectation[] {
  const denialsBySerial = new Map<string, string[]>();
  for (const a of trail.attempts) {
    if (a.decision !== 'DENIED' || !a.reason) continue;
    denialsBySerial.set(a.serial, [...(denialsBySerial.get(a.serial) ?? []), a.reason]);
  }
  const good = planned.filter((p) => p.planned.kind === 'good');
  const bad = planned.filter((p) => isBadCase(p.planned.kind));
  const recovering = planned.filter((p) => p.planned.kind in RECOVERY_CASE_REASON);
  const allowsBySerial = new Map<string, string[]>();
  for (const a of trail.attempts) {
    if (a.decision !== 'ALLOWED' || !a.reason) continue;
    allowsBySerial.set(a.serial, [...(allowsBySerial.get(a.serial) ?? []), a.reason]);
  }
  const gaveUp = planned.filter((p) => p.result.outcome === 'gaveUp');
  const notEnrolled = good.filter((p) => p.result.outcome !== 'enrolled' && p.result.outcome !== 'gaveUp');
  const notActive = good.filter(
    (p) => p.result.outcome === 'enrolled' && !active.has(p.planned.spec.identity.serial),
  );
  const expectations: Expectation[] = [];

  const describe = (p: { planned: PlannedDevice; result: DeviceRunResult }): string => {
    const r = p.result;
    const seen =
      r.outcome === 'denied'
        ? `denied ${r.errorCode}: ${r.errorMessage}`
        : r.outcome === 'gaveUp'
          ? `gave up (${r.phase}: ${r.lastError})`
          : 'enrolled';
    const trailReasons = denialsBySerial.get(p.planned.spec.identity.serial);
    return `${p.planned.spec.identity.serial} [${p.planned.kind}] ${seen}${trailReasons ? `; trail: ${trailReasons.join(', ')}` : ''}`;
  };
  const list = (items: { planned: PlannedDevice; result: DeviceRunResult }[]): string =>
    items.slice(0, 10).map(describe).join('; ') + (items.length > 10 ? `; … ${items.length - 10} more` : '');

  expectations.push({
    name: 'every allowlisted good unit enrolls',
    ok:
      notEnrolled.length === 0 &&
      good.every((p) => p.result.outcome === 'enrolled' || p.result.outcome === 'gaveUp'),
    detail:
      notEnrolled.length === 0
        ? `${good.length - gaveUp.filter((g) => g.planned.kind === 'good').length}/${good.length}`
        : list(notEnrolled),
  });
  expectations.push({
    name: 'every enrolled unit is activated by the lifecycle rule',
    ok: notActive.length === 0,
    detail: notActive.length === 0 ? `${active.size} ACTIVE` : `not ACTIVE: ${list(notActive)}`,
  });
  for (const p of bad) {
    const serial = p.planned.spec.identity.serial;
    const reasons = denialsBySerial.get(serial) ?? [];
    const ok = p.result.outcome === 'denied' && reasons.includes(p.planned.expectedReason as string);
    expectations.push({
      name: `${p.planned.kind} ${serial} is denied with ${p.planned.expectedReason}`,
      ok,
      detail: ok ? 'denied, reason recorded in the trail' : describe(p),
    });
  }
  for (const p of recovering) {
    const serial = p.planned.spec.identity.serial;
    const allows = allowsBySerial.get(serial) ?? [];
    const ok =
      p.result.outcome === 'enrolled' &&
      p.result.retries > 0 &&
      active.has(serial) &&
      allows.includes(p.planned.expectedReason as string);
    expectations.push({
      name: `${p.planned.kind} ${serial} retries and is allowed as ${p.planned.expectedReason}, then ACTIVE`,
      ok,
      detail: ok
        ? `allowed ${[...allows].reverse().join(' then ')}; ${p.result.retries} retr${p.result.retries === 1 ? 'y' : 'ies'}`
        : `${describe(p)}; allowed: ${allows.join(', ') || 'never'}; ${active.has(serial) ? 'ACTIVE' : 'not ACTIVE'}`,
    });
  }
  // No decision other than the planned ones: good units are never denied on the way.
  const expectedCounts: Record<string, number> = {};
  for (const p of bad)
    expectedCounts[p.planned.expectedReason as string] =
      (expectedCounts[p.planned.expectedReason as string] ?? 0) + 1;
  const actual = enrollment.deniedByReason;
  const keys = [...new Set([...Object.keys(expectedCounts), ...Object.keys(actual)])].sort();
  const mismatched = keys.filter((k) => (expectedCounts[k] ?? 0) !== (actual[k] ?? 0));
  expectations.push({
    name: 'trail denials match the planned bad cases',
    ok: mismatched.length === 0,
    detail:
      mismatched.length === 0
        ? keys.map((k) => `${k} ${actual[k]}`).join(', ') || 'none'
        : mismatched
            .map((k) => `${k}: expected ${expectedCounts[k] ?? 0}, trail ${actual[k] ?? 0}`)
            .join('; '),
  });
  expectations.push({
    name: `gave up ≤ ${allowedGiveUps}`,
    ok: gaveUp.length <= allowedGiveUps,
    detail: gaveUp.length === 0 ? '0' : `${gaveUp.length}: ${list(gaveUp)}`,
  });
  expectations.push({ name: 'no dead letters', ok: deadLetters === 0, detail: String(deadLetters) });
  return expectations;
}
