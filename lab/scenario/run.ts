/**
 * The enrollment scenario on a running lab, shared by `npm run lab`, the lab e2e test and the
 * enrollment benchmark.
 *
 * Each phase is its own function returning its outcome: factory set-up (./factory.ts), the
 * enrollment waves (./waves.ts), the trail read-back and the expectations (./expectations.ts);
 * this module runs them in order and assembles the report.
 *
 * 1. Factory set-up through the same `fleet` command functions an operator runs (in-process,
 *    with a CliContext whose resource names come from the stack outputs, ./context.ts):
 *    `lot create`, `claim create` per lot for the lot's template (files under
 *    `<labDir>/claims/<lot>/`), `manifest import` of a generated CSV, `lot hold`.
 * 2. First wave: the simulator enrolls every unit (good and bad) through the fleet provisioning
 *    MQTT API; enrolled units reconnect as their thing and keep the session until the
 *    lifecycle rule (presence event → topic rule → presence Lambda) has made them ACTIVE.
 * 3. Second wave: the clone, once its original is ACTIVE.
 * 3b. Recovery wave: a unit whose RegisterThing answer the lab loses on purpose; it must time
 *    out, retry with the same key, be allowed as the same device and end ACTIVE.
 * 4. Reasons come from the audit trail (`fleet enrollment list`), because on AWS a denied
 *    device only sees AccessDenied; they are cross-checked against the plan.
 * 5. The MQTT probe (./mqtt-versions.ts): the plan runs a share of the fleet on MQTT 5 and the
 *    rest on 3.1.1; the ACTIVE units of each version connect in a burst, then publish in a burst,
 *    and the report compares the two versions' connect and publish throughput in the same run.
 * 6. The telemetry phase (./telemetry.ts), on both versions.
 *
 * With several provisioning templates the plan deals its lots out over them (see ./plan.ts);
 * every template must see its good units enroll, and the report says per template what happened.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { enrollmentList, type EnrollmentListResult } from '../../cli/commands/enrollment';
import { destroyContext, registryTables, type CliContext } from '../../cli/context';
import { memorySink } from '../../cli/output';
import { percentile, type BackoffOptions, type DeviceAgent, type DeviceRunResult } from '../../device';
import { STACK_OUTPUTS } from '../../core/stack-outputs';
import { Registry } from '../../lambda/shared/registry';
import type { LabRuntime } from '../runtime';
import { labCliContext } from './context';
import {
  checkExpectations,
  isBadCase,
  templateExpectations,
  templateSections,
  type Expectation,
  type TemplateSection,
  type UnitOutcome,
} from './expectations';
import { setUpFactory, type FactoryReport } from './factory';
import {
  checkProbeOptions,
  mqttExpectations,
  mqttSection,
  runMqttProbe,
  type MqttProbeOptions,
  type MqttSection,
  type ProbeResult,
} from './mqtt-versions';
import { buildPlan, DEFAULT_MQTT5_SHARE, type BadCase, type RecoveryCase, type ScenarioPlan } from './plan';
import { labStackOutputs } from './context';
import {
  runTelemetryPhase,
  telemetryExpectations,
  type TelemetryPhaseOptions,
  type TelemetrySection,
} from './telemetry';
import { runRecoveryWave, runWave, type WaveOutcome, type WaveSettings } from './waves';

export { labCliContext } from './context';
export type { Expectation, TemplateSection } from './expectations';

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
  /** Stream telemetry and health from every ACTIVE unit (`false`: enrollment only). @default {} */
  telemetry?: TelemetryPhaseOptions | false;
  /** Share of the units on MQTT 5 (0 to 1), the others on 3.1.1. @default 0.5 */
  mqtt5Share?: number;
  /** Measure connect and publish throughput per MQTT version after enrollment (`false`: skip). @default {} */
  mqttProbe?: MqttProbeOptions | false;
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
  /** Per provisioning template: its lots, units, enrollments, activations and denials. */
  templates: TemplateSection[];
  /** The telemetry phase (absent when it did not run). */
  telemetry?: TelemetrySection;
  /** Per MQTT version: units, enrollment, the probe's connect and publish throughput, streaming. */
  mqtt: MqttSection;
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
    mqttProbeMs: number;
    telemetryMs: number;
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
  factory: FactoryReport;
}

/** Response timeout of the recovery wave: how long a device waits for the answer the lab loses. */
const RECOVERY_RESPONSE_TIMEOUT_MS = 2_000;

/** Run the scenario on a running lab. Never throws for failed expectations: see `report.ok`. */
export async function runScenario(lab: LabRuntime, options: ScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const labDir = resolvePath(options.labDir);
  await mkdir(labDir, { recursive: true });
  const ctx = await labCliContext(lab, memorySink());
  try {
    const templates = (ctx.resources.provisioningTemplates ?? []).map((t) => t.templateName);
    if (templates.length === 0) throw new Error('the stack declares no provisioning template');
    const mqtt5Share = options.mqtt5Share ?? DEFAULT_MQTT5_SHARE;
    const plan = buildPlan({ devices: options.devices, badCases: options.badCases, templates, mqtt5Share });
    const probeOptions = options.mqttProbe === false ? undefined : checkProbeOptions(options.mqttProbe ?? {});
    const concurrency = options.concurrency ?? 32;
    const backoff: BackoffOptions = {
      ...(options.registerThingTps
        ? quotaBackoff(options.registerThingTps, concurrency)
        : DEFAULT_SCENARIO_BACKOFF),
      ...(options.backoff ?? {}),
    };

    log(
      `factory: ${plan.lots.length} lots over ${templates.length} template(s) (${templates.join(', ')}), claim certificates, manifest of ${plan.manifest.length} units; of all ${plan.counts.mqtt['3.1.1'] + plan.counts.mqtt['5']} simulated units ${plan.counts.mqtt['3.1.1']} on MQTT 3.1.1, ${plan.counts.mqtt['5']} on MQTT 5`,
    );
    const t0 = Date.now();
    const factory = await setUpFactory(plan, ctx, labDir);
    const factorySetupMs = Date.now() - t0;
    const trailSince = new Date(Date.now() - 1000).toISOString();

    const waves: WaveSettings = {
      lab,
      ctx,
      registry: new Registry(ctx.clients.doc, registryTables(ctx)),
      claims: factory.claims,
      concurrency,
      backoff,
      progressBar: options.progressBar ?? false,
      labDir,
      activationTimeoutMs: options.activationTimeoutMs ?? 30_000,
    };
    const enrollment = await enroll(plan, waves, log);
    const trail = await readTrail(ctx, trailSince);
    const activeAgents = [...enrollment.agents]
      .filter(([serial]) => enrollment.active.has(serial))
      .map(([, a]) => a);
    const t1 = Date.now();
    const probe = probeOptions
      ? {
          ...probeOptions,
          result: await runMqttProbe(activeAgents, { ...probeOptions, settle: () => lab.idle(), log }),
        }
      : undefined;
    const mqttProbeMs = Date.now() - t1;
    const t2 = Date.now();
    const telemetry =
      options.telemetry === false
        ? undefined
        : await runTelemetryPhase(lab, ctx, waves.registry, activeAgents, {
            log,
            ...(options.telemetry ?? {}),
          });
    const telemetryMs = Date.now() - t2;
    return assembleReport({
      lab,
      plan,
      options,
      concurrency,
      backoff,
      factory: factory.report,
      enrollment,
      trail,
      telemetry,
      mqtt5Share,
      probe,
      timings: { factorySetupMs, mqttProbeMs, telemetryMs, started },
    });
  } finally {
    destroyContext(ctx);
  }
}

interface EnrollmentOutcome {
  first: WaveOutcome;
  clones: WaveOutcome;
  recovery: WaveOutcome;
  units: UnitOutcome[];
  active: Set<string>;
  /** Agents of the enrolled units by serial (sessions closed; each can reconnect as its thing). */
  agents: Map<string, DeviceAgent>;
}

/** The three waves: everyone (kept connected until ACTIVE), the clones, the recovery case. */
async function enroll(
  plan: ScenarioPlan,
  s: WaveSettings,
  log: (line: string) => void,
): Promise<EnrollmentOutcome> {
  log(`enrolling ${plan.firstWave.length} units (concurrency ${s.concurrency})`);
  const first = await runWave(s, plan.firstWave, { activate: true });
  const enrolled = first.units.filter((u) => u.result.outcome === 'enrolled').length;
  log(`${enrolled} enrolled, ${first.active.size} activated`);
  if (plan.secondWave.length > 0) log(`enrolling ${plan.secondWave.length} clone(s) of enrolled serials`);
  const clones = await runWave(s, plan.secondWave, { activate: false });
  if (plan.recoveryWave.length > 0)
    log(`enrolling ${plan.recoveryWave.length} unit(s) whose RegisterThing answer is lost`);
  const recovery = await runRecoveryWave(s, plan.recoveryWave, RECOVERY_RESPONSE_TIMEOUT_MS);
  return {
    first,
    clones,
    recovery,
    units: [...first.units, ...clones.units, ...recovery.units],
    active: new Set([...first.active, ...recovery.active]),
    agents: new Map([...first.agents, ...recovery.agents]),
  };
}

/** The audit trail of the run, through the operator's command. */
function readTrail(ctx: CliContext, since: string): Promise<EnrollmentListResult> {
  return enrollmentList(
    { since, until: new Date(Date.now() + 1000).toISOString(), limit: 1_000_000, json: true },
    ctx,
  );
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

function assembleReport(input: {
  lab: LabRuntime;
  plan: ScenarioPlan;
  options: ScenarioOptions;
  concurrency: number;
  backoff: BackoffOptions;
  factory: FactoryReport;
  enrollment: EnrollmentOutcome;
  trail: EnrollmentListResult;
  telemetry?: TelemetrySection;
  mqtt5Share: number;
  probe?: { result: ProbeResult } & Required<MqttProbeOptions>;
  timings: { factorySetupMs: number; mqttProbeMs: number; telemetryMs: number; started: number };
}): ScenarioReport {
  const { lab, plan, options, enrollment: e, trail } = input;
  const results = e.units.map((u) => u.result);
  const enrollTimes = results.flatMap((r) => (r.outcome === 'enrolled' ? [r.enrollMs] : []));
  const section: EnrollmentSection = {
    attempted: results.length,
    enrolled: enrollTimes.length,
    deniedByReason: trail.stats.deniedByReason,
    deniedByReasonSeenByDevices: reasonsSeenByDevices(results),
    gaveUp: results.filter((r) => r.outcome === 'gaveUp').length,
    retries: results.reduce((a, r) => a + r.retries, 0),
    activated: e.active.size,
    p50Ms: percentile(enrollTimes, 50),
    p99Ms: percentile(enrollTimes, 99),
    wallMs: e.first.wallMs + e.clones.wallMs + e.recovery.wallMs,
    firstTimeSuccessRate: trail.stats.firstTimeSuccessRate,
  };
  const stats = lab.stats();
  const deadLetters = lab
    .deadLetters()
    .map((m) => ({ queueName: m.queueName, source: m.source, body: m.body }));
  // The health consumer's queue holds the telemetry phase's deliberate malformed report; the
  // telemetry expectations account for it.
  const healthQueue = labStackOutputs(lab)[STACK_OUTPUTS.healthDeadLetterQueue];
  const healthDeadLetters = healthQueue ? lab.deadLetters(healthQueue).length : 0;
  const templateNames = [...new Set(plan.lots.map((l) => l.template))];
  const templates = templateSections(
    templateNames.map((template) => ({
      template,
      lots: plan.lots.filter((l) => l.template === template).map((l) => l.lot),
    })),
    e.units,
    trail,
    e.active,
  );
  const mqtt = mqttSection({
    mqtt5Share: input.mqtt5Share,
    units: e.units,
    active: e.active,
    probe: input.probe,
    stream: input.telemetry?.byMqttVersion,
  });
  const expectations = [
    ...checkExpectations({
      units: e.units,
      trail,
      active: e.active,
      deniedByReason: section.deniedByReason,
      deadLetters: deadLetters.length - healthDeadLetters,
      allowedGiveUps: options.allowedGiveUps ?? 0,
    }),
    ...templateExpectations(templates, e.units, e.active),
    ...(input.telemetry ? telemetryExpectations(input.telemetry) : []),
    ...mqttExpectations(mqtt, e.units),
  ];
  const erroring = stats.functions
    .filter((f) => f.errors > 0)
    .map(
      (f) =>
        `${f.functionName} failed ${f.errors}/${f.invocations} invocations (see its log under ${join(resolvePath(options.labDir), 'logs')})`,
    );
  if (erroring.length > 0)
    expectations.push({ name: 'no function errors', ok: false, detail: erroring.join('; ') });
  const failures = expectations.filter((x) => !x.ok).map((x) => `${x.name}: ${x.detail}`);
  return {
    ok: failures.length === 0,
    devices: plan.counts.devices,
    lots: plan.lots,
    badCases: casesByKind(e.units, isBadCase) as ScenarioReport['badCases'],
    recoveryCases: casesByKind(e.units, (k): k is RecoveryCase => k === 'lostAnswer'),
    enrollment: section,
    templates,
    ...(input.telemetry ? { telemetry: input.telemetry } : {}),
    mqtt,
    expectations,
    failures,
    timings: {
      synthMs: lab.timings.synthMs,
      labStartMs: lab.timings.startMs,
      factorySetupMs: input.timings.factorySetupMs,
      firstWaveMs: e.first.enrollMs,
      activationWaitMs: e.first.activationWaitMs,
      cloneWaveMs: e.clones.wallMs,
      recoveryWaveMs: e.recovery.wallMs,
      mqttProbeMs: input.timings.mqttProbeMs,
      telemetryMs: input.timings.telemetryMs,
      scenarioMs: Date.now() - input.timings.started,
    },
    lab: {
      ...(options.registerThingTps ? { registerThingTps: options.registerThingTps } : {}),
      concurrency: input.concurrency,
      backoff: input.backoff,
      functions: stats.functions,
      rules: stats.rules,
      queues: stats.queues,
      iot: stats.iot,
      deadLetters,
    },
    factory: input.factory,
  };
}

/** Serials and expected reason per bad or recovery kind. */
function casesByKind<K extends BadCase | RecoveryCase>(
  units: readonly UnitOutcome[],
  is: (kind: UnitOutcome['planned']['kind']) => kind is K,
): Partial<Record<K, { serials: string[]; expectedReason: string }>> {
  const out: Partial<Record<K, { serials: string[]; expectedReason: string }>> = {};
  for (const { planned } of units) {
    if (!is(planned.kind)) continue;
    const kind = planned.kind;
    const entry = (out[kind] ??= { serials: [], expectedReason: planned.expectedReason ?? '' });
    entry.serials.push(planned.spec.identity.serial);
  }
  return out;
}
