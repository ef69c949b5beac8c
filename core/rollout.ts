/**
 * The rollout controller's pure step: observe → decide → act, as data. The Lambda gathers an
 * observation (jobs, executions, health, silence, alarms, operator commands), calls {@link step},
 * and runs the actions in order; `recordState` always comes last and is guarded by the revision,
 * so a crash before it repeats the same decision on the next pass, and of two concurrent passes
 * only one records. Job ids are deterministic (`rolloutJobId`), and a `createJob` is emitted only
 * for a job the observation says does not exist: a repeated or concurrent pass creates no second
 * job.
 *
 * States:
 * ```
 * PENDING ──first stage job──▶ RUNNING ──gates pass──▶ next stage (RUNNING) … ──last stage──▶ SUCCEEDED
 * RUNNING ──gates pass, approval required──▶ WAITING_APPROVAL ──approve──▶ next stage
 * RUNNING | WAITING_APPROVAL ──pause──▶ PAUSED ──resume──▶ where it was
 * PENDING | RUNNING | WAITING_APPROVAL | PAUSED ──abort (gate or operator)──▶
 *     ROLLING_BACK (devices reached the new version, rollback enabled) or ABORTED (nothing to undo)
 * ROLLING_BACK ──every rollback execution SUCCEEDED──▶ ROLLED_BACK
 * ROLLING_BACK ──all rollback executions ended, some not SUCCEEDED (or no release to go back to)──▶ ROLLBACK_FAILED
 * ```
 * PAUSED holds promotion and new jobs; the current stage job keeps running and the abort gates
 * keep watching it (AWS IoT jobs cannot be paused).
 *
 * A scheduled stage job that AWS canceled at its start (job CANCELED, no execution ever left
 * QUEUED, not canceled by us) is recreated under a new deterministic id, up to the stage's
 * `schedule.restartsOnCanceledStart` (default 1); after that the rollout PAUSES with
 * SCHEDULED_JOB_CANCELED, and a resume allows one more restart. It never aborts: no device was
 * touched, so there is nothing to roll back. A stage job canceled after executions started
 * (AWS's abort config, or a cancel outside the controller) aborts the rollout (JOB_CANCELED).
 *
 * Two-phase inputs (decide, then commit): a step that must start a stage without `candidates`,
 * or build rollback jobs without the previous `releases`, returns decision `need-input` naming
 * what it needs; the caller loads it and steps again.
 */
import { firmwareJobDocument, rolloutJobId, type FirmwareJobDocument, type ReleaseRecord } from './ota';
import {
  abortOnDone,
  abortReason,
  newlySilent,
  promotionBlockers,
  type AlarmState,
  type GateDevice,
  type HealthObservation,
  type Reason,
} from './rollout-gates';
import {
  isTerminal,
  mergeExecution,
  type DeviceOutcome,
  type ExecutionObservation,
  type ExecutionRecord,
} from './rollout-ledger';
import { rolloutIdFor, templateClassOf, type RolloutPlan, type Stage } from './rollout-plan';
import { planRings, selectStageTargets, type RolloutCandidate, type StageTarget } from './rollout-targets';

/** States of a rollout. */
export const ROLLOUT_STATES = [
  'PENDING',
  'RUNNING',
  'PAUSED',
  'WAITING_APPROVAL',
  'SUCCEEDED',
  'ABORTED',
  'ROLLING_BACK',
  'ROLLED_BACK',
  'ROLLBACK_FAILED',
] as const;
export type RolloutStatus = (typeof ROLLOUT_STATES)[number];

/** States no step leaves. */
export const FINAL_ROLLOUT_STATES: readonly RolloutStatus[] = [
  'SUCCEEDED',
  'ABORTED',
  'ROLLED_BACK',
  'ROLLBACK_FAILED',
];

/** One stage's progress. */
export interface StageProgress {
  name: string;
  status: 'NOT_STARTED' | 'RUNNING' | 'DONE' | 'SKIPPED';
  /** The stage's current job id (a restart after a canceled start changes it). */
  jobId?: string;
  /** Restarts after a canceled start so far. */
  restarts: number;
  /** Restarts still allowed. */
  restartBudget: number;
  /** ISO time the stage's job was created. */
  startedAt?: string;
  /** ISO time every device of the stage reached a terminal outcome (soak starts). */
  installDoneAt?: string;
  approvedBy?: string;
  /** Devices targeted, and excluded by reason. */
  targeted: number;
  excluded: Record<string, number>;
}

/** One device's line in the ledger. */
export interface LedgerEntry extends StageTarget {
  stage: number;
  jobId: string;
  /** The latest merged execution of the stage job; absent until one was observed (QUEUED). */
  exec?: ExecutionRecord;
  /** ISO time the silence gate declared the device silent (sticky). */
  silentAt?: string;
  rollback?: { jobId: string; exec?: ExecutionRecord };
}

/** The rollback of an aborted rollout. */
export interface RollbackProgress {
  /** One job per previous version; absent until the previous releases were resolved. */
  groups?: { jobId: string; version: string; things: string[] }[];
  /** The devices to roll back, fixed at the abort. */
  things: string[];
  /** Devices whose previous version has no published release to go back to. */
  unrollable: string[];
}

/** The rollout record. */
export interface RolloutState {
  rolloutId: string;
  release: ReleaseRecord;
  plan: RolloutPlan;
  status: RolloutStatus;
  /** Index of the current stage. */
  stage: number;
  /** Bumped by every recorded change; the guard of the conditional write. */
  revision: number;
  createdAt: string;
  updatedAt: string;
  stages: StageProgress[];
  ledger: Record<string, LedgerEntry>;
  pausedFrom?: 'RUNNING' | 'WAITING_APPROVAL';
  abort?: { at: string; reason: Reason };
  rollback?: RollbackProgress;
  /** Ids of operator commands already applied (a command applies once). */
  appliedCommands: string[];
}

/** AWS IoT job statuses (DescribeJob). */
export type JobStatus = 'SCHEDULED' | 'IN_PROGRESS' | 'COMPLETED' | 'CANCELED' | 'DELETION_IN_PROGRESS';

/** An operator command recorded by the API (`pause`, `resume`, `abort`, `approve`). */
export interface OperatorCommand {
  id: string;
  kind: 'pause' | 'resume' | 'abort' | 'approve';
  /** For `approve`: the stage index approved. */
  stage?: number;
  by: string;
  reason?: string;
}

/** What a controller pass observed. */
export interface RolloutObservation {
  /** Every job of this rollout that exists, by id, with its status. */
  jobs: Readonly<Record<string, { status: JobStatus }>>;
  executions: readonly ExecutionObservation[];
  health?: HealthObservation;
  /** Epoch ms of each updated device's last health report. */
  lastHealthReportAt?: Readonly<Record<string, number>>;
  alarms?: Readonly<Record<string, AlarmState>>;
  commands?: readonly OperatorCommand[];
  /** Candidate devices, when a stage is to start. */
  candidates?: readonly RolloutCandidate[];
  /** Releases by version, when a rollback is to be built; null: no such release. */
  releases?: Readonly<Record<string, ReleaseRecord | null>>;
}

/** A job to create, in AWS CreateJob terms (the adapter adds ARNs; >100 things go in a static group). */
export interface CreateJobAction {
  kind: 'createJob';
  jobId: string;
  purpose: 'stage' | 'rollback';
  stage?: number;
  templateClass: string;
  things: string[];
  document: FirmwareJobDocument;
  description: string;
  jobExecutionsRolloutConfig?: {
    maximumPerMinute: number;
    exponentialRate?: {
      baseRatePerMinute: number;
      incrementFactor: number;
      rateIncreaseCriteria: { numberOfNotifiedThings?: number; numberOfSucceededThings?: number };
    };
  };
  abortConfig?: {
    criteriaList: {
      failureType: string;
      action: 'CANCEL';
      thresholdPercentage: number;
      minNumberOfExecutedThings: number;
    }[];
  };
  timeoutConfig: { inProgressTimeoutInMinutes: number };
  /** The step timer the device sets on its updates. */
  stepTimeoutMinutes?: number;
  jobExecutionsRetryConfig?: { criteriaList: { failureType: string; numberOfRetries: number }[] };
  schedulingConfig?: {
    startTime?: string;
    endTime?: string;
    endBehavior?: string;
    maintenanceWindows?: { startTime: string; durationInMinutes: number }[];
  };
}

/** An action of a step, run in order by the adapter. */
export type RolloutAction =
  | CreateJobAction
  | { kind: 'cancelJob'; jobId: string; force: boolean; reasonCode: string; comment: string }
  | {
      kind: 'appendTrail';
      thing: string;
      serial: string;
      jobId: string;
      version: string;
      previousFirmware: string;
      outcome: DeviceOutcome;
      rollback: boolean;
    }
  | { kind: 'recordState'; state: RolloutState; expectedRevision: number };

/** The decision of a step. */
export type RolloutDecision =
  | { kind: 'wait' }
  | { kind: 'start-stage'; stage: number }
  | { kind: 'restart-stage'; stage: number }
  | { kind: 'promote'; from: number; to: number }
  | { kind: 'await-approval'; stage: number }
  | { kind: 'complete' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'abort'; rollback: boolean }
  | { kind: 'rollback-done' }
  | { kind: 'rollback-failed' }
  | { kind: 'need-input'; candidates?: { stage: number }; releases?: string[] }
  | { kind: 'final' };

/** What a step returns. */
export interface StepResult {
  state: RolloutState;
  actions: RolloutAction[];
  decision: RolloutDecision;
  reasons: Reason[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (t: string | undefined) => (t === undefined ? undefined : Date.parse(t));

/** A new rollout of `release` under `plan`, PENDING; the first step starts its first stage. */
export function newRollout(release: ReleaseRecord, plan: RolloutPlan, now: Date): RolloutState {
  const at = now.toISOString();
  return {
    rolloutId: rolloutIdFor(release.version, plan),
    release,
    plan,
    status: 'PENDING',
    stage: 0,
    revision: 0,
    createdAt: at,
    updatedAt: at,
    stages: plan.stages.map((s) => ({
      name: s.name,
      status: 'NOT_STARTED',
      restarts: 0,
      restartBudget: s.schedule?.restartsOnCanceledStart ?? 1,
      targeted: 0,
      excluded: {},
    })),
    ledger: {},
    appliedCommands: [],
  };
}

/** The outcome of a ledger entry. */
export function outcomeOf(e: LedgerEntry): DeviceOutcome {
  return e.silentAt ? 'SILENT' : (e.exec?.outcome ?? 'QUEUED');
}

/** The id of stage `index`'s job after `restarts` restarts. */
export function stageJobId(
  state: Pick<RolloutState, 'rolloutId' | 'release'>,
  index: number,
  restarts: number,
): string {
  const id = restarts === 0 ? state.rolloutId : `${state.rolloutId}#restart${restarts}`;
  return rolloutJobId(id, state.release.version, index);
}

/** Working context of one step. */
interface Pass {
  s: RolloutState;
  obs: RolloutObservation;
  now: number;
  actions: RolloutAction[];
  reasons: Reason[];
}

/**
 * One controller pass: `state` and `observation` in, the next state, the actions to run (in
 * order, `recordState` last when anything changed), the decision and its reasons out.
 */
export function step(state: RolloutState, observation: RolloutObservation, now: Date): StepResult {
  const p: Pass = {
    s: structuredClone(state),
    obs: observation,
    now: now.getTime(),
    actions: [],
    reasons: [],
  };
  let decision: RolloutDecision;
  if (FINAL_ROLLOUT_STATES.includes(p.s.status)) {
    decision = { kind: 'final' };
  } else {
    ingestExecutions(p);
    const command = applyCommands(p);
    if (command?.kind === 'abort') decision = command;
    else {
      // The gates run in a pass with a command too: a pause never hides an abort.
      const decided = decide(p);
      decision = decided.kind === 'abort' || !command ? decided : command;
    }
  }
  if (JSON.stringify(p.s) !== JSON.stringify(state)) {
    p.s.revision = state.revision + 1;
    p.s.updatedAt = now.toISOString();
    p.actions.push({ kind: 'recordState', state: p.s, expectedRevision: state.revision });
  }
  return { state: p.s, actions: p.actions, decision, reasons: p.reasons };
}

function ingestExecutions(p: Pass): void {
  for (const o of p.obs.executions) {
    const e = p.s.ledger[o.thing];
    if (!e) continue;
    const rollback = e.rollback?.jobId === o.jobId;
    if (!rollback && e.jobId !== o.jobId) continue;
    const prior = rollback ? e.rollback?.exec : e.exec;
    const next = mergeExecution(prior, o, p.now);
    if (next === prior) continue;
    if (rollback && e.rollback) e.rollback.exec = next;
    else e.exec = next;
    if (isTerminal(next.outcome) && next.outcome !== prior?.outcome && (rollback || !e.silentAt)) {
      trail(p, e, next.outcome, rollback);
    }
  }
}

function trail(p: Pass, e: LedgerEntry, outcome: DeviceOutcome, rollback: boolean): void {
  p.actions.push({
    kind: 'appendTrail',
    thing: e.thing,
    serial: e.serial,
    jobId: rollback ? (e.rollback?.jobId ?? e.jobId) : e.jobId,
    version: rollback ? e.previousFirmware : p.s.release.version,
    previousFirmware: rollback ? p.s.release.version : e.previousFirmware,
    outcome,
    rollback,
  });
}

/** Apply new operator commands; returns a decision when one settles the pass. */
function applyCommands(p: Pass): RolloutDecision | undefined {
  let decision: RolloutDecision | undefined;
  for (const c of p.obs.commands ?? []) {
    if (p.s.appliedCommands.includes(c.id)) continue;
    p.s.appliedCommands = [...p.s.appliedCommands, c.id].slice(-100);
    const st = p.s.status;
    if (c.kind === 'abort' && ['PENDING', 'RUNNING', 'WAITING_APPROVAL', 'PAUSED'].includes(st)) {
      return abort(p, {
        code: 'OPERATOR_ABORT',
        detail: `aborted by ${c.by}${c.reason ? `: ${c.reason}` : ''}`,
      });
    }
    if (c.kind === 'pause' && (st === 'RUNNING' || st === 'WAITING_APPROVAL')) {
      p.s.pausedFrom = st;
      p.s.status = 'PAUSED';
      p.reasons.push({
        code: 'OPERATOR_PAUSE',
        detail: `paused by ${c.by}${c.reason ? `: ${c.reason}` : ''}`,
      });
      decision = { kind: 'pause' };
    } else if (c.kind === 'resume' && st === 'PAUSED') {
      p.s.status = p.s.pausedFrom ?? 'RUNNING';
      delete p.s.pausedFrom;
      const sp = p.s.stages[p.s.stage];
      const canceled = sp.jobId !== undefined && p.obs.jobs[sp.jobId]?.status === 'CANCELED';
      if (canceled && sp.restartBudget <= sp.restarts) sp.restartBudget = sp.restarts + 1;
      decision = undefined;
    } else if (c.kind === 'approve' && c.stage !== undefined && p.s.stages[c.stage]) {
      p.s.stages[c.stage].approvedBy ??= c.by;
    }
  }
  return decision;
}

function decide(p: Pass): RolloutDecision {
  switch (p.s.status) {
    case 'PENDING':
      return startStage(p, 0);
    case 'ROLLING_BACK':
      return rollingBack(p);
    default:
      return runStage(p);
  }
}

function stageDevices(p: Pass, index: number): { entry: LedgerEntry; gate: GateDevice }[] {
  return Object.values(p.s.ledger)
    .filter((e) => e.stage === index)
    .map((entry) => ({ entry, gate: { thing: entry.thing, outcome: outcomeOf(entry), exec: entry.exec } }));
}

/** Start stage `index` (or the next non-empty one), or complete the rollout past the last. */
function startStage(p: Pass, index: number): RolloutDecision {
  const { s } = p;
  for (let i = index; i < s.plan.stages.length; i++) {
    if (!p.obs.candidates) {
      p.reasons.push({
        code: 'NEED_CANDIDATES',
        detail: `stage ${s.plan.stages[i].name} needs its candidate devices`,
      });
      return { kind: 'need-input', candidates: { stage: i } };
    }
    const stage = s.plan.stages[i];
    const sel = selectStageTargets(
      stage,
      p.obs.candidates,
      s.release,
      new Set(Object.keys(s.ledger)),
      planRings(s.plan),
    );
    const sp = s.stages[i];
    sp.targeted = sel.targets.length;
    sp.excluded = {};
    for (const x of sel.excluded) sp.excluded[x.reason] = (sp.excluded[x.reason] ?? 0) + 1;
    s.stage = i;
    if (sel.targets.length === 0) {
      sp.status = 'SKIPPED';
      p.reasons.push({ code: 'STAGE_EMPTY', detail: `stage ${stage.name} has no eligible device; skipped` });
      continue;
    }
    const jobId = stageJobId(s, i, sp.restarts);
    for (const t of sel.targets) s.ledger[t.thing] = { ...t, stage: i, jobId };
    sp.status = 'RUNNING';
    sp.jobId = jobId;
    sp.startedAt = iso(p.now);
    s.status = 'RUNNING';
    const things = sel.targets.map((t) => t.thing);
    if (!p.obs.jobs[jobId]) p.actions.push(stageJob(s, i, jobId, things, p.now));
    return { kind: 'start-stage', stage: i };
  }
  s.status = 'SUCCEEDED';
  return { kind: 'complete' };
}

function stageJob(
  s: RolloutState,
  index: number,
  jobId: string,
  things: string[],
  now: number,
): CreateJobAction {
  const stage = s.plan.stages[index];
  const sched = stage.schedule;
  const start = now + (sched?.startAfterMinutes ?? 0) * 60_000;
  const schedulingConfig =
    sched && (sched.startAfterMinutes !== undefined || sched.maintenanceWindows || sched.endAfterMinutes)
      ? {
          startTime: iso(start),
          ...(sched.endAfterMinutes ? { endTime: iso(start + sched.endAfterMinutes * 60_000) } : {}),
          ...(sched.endBehavior ? { endBehavior: sched.endBehavior } : {}),
          ...(sched.maintenanceWindows ? { maintenanceWindows: sched.maintenanceWindows } : {}),
        }
      : undefined;
  return {
    kind: 'createJob',
    jobId,
    purpose: 'stage',
    stage: index,
    templateClass: templateClassOf(stage),
    things,
    document: firmwareJobDocument(s.release),
    description: `rollout ${s.rolloutId} of ${s.release.version}, stage ${index} (${stage.name})`,
    jobExecutionsRolloutConfig: {
      maximumPerMinute: stage.rate.maximumPerMinute,
      ...(stage.rate.exponential ? { exponentialRate: stage.rate.exponential } : {}),
    },
    abortConfig: { criteriaList: stage.abort.map((c) => ({ ...c, action: 'CANCEL' as const })) },
    timeoutConfig: { inProgressTimeoutInMinutes: stage.timeouts.inProgressMinutes },
    ...(stage.timeouts.stepMinutes ? { stepTimeoutMinutes: stage.timeouts.stepMinutes } : {}),
    ...(stage.retries?.length ? { jobExecutionsRetryConfig: { criteriaList: stage.retries } } : {}),
    ...(schedulingConfig ? { schedulingConfig } : {}),
  };
}

/** RUNNING, WAITING_APPROVAL or PAUSED: watch the current stage, abort or promote. */
function runStage(p: Pass): RolloutDecision {
  const { s } = p;
  const index = s.stage;
  const stage = s.plan.stages[index];
  const sp = s.stages[index];
  const jobId = sp.jobId ?? stageJobId(s, index, sp.restarts);
  const job = p.obs.jobs[jobId];
  let devices = stageDevices(p, index);

  if (!job && s.status !== 'PAUSED') {
    // Our record says the job exists; the observation does not: create it again (same id).
    p.actions.push(
      stageJob(
        s,
        index,
        jobId,
        devices.map((d) => d.entry.thing),
        p.now,
      ),
    );
  }
  const started = devices.some((d) => d.entry.exec && !['QUEUED', 'CANCELED'].includes(d.entry.exec.outcome));
  if (job?.status === 'CANCELED' && !started) return canceledAtStart(p, stage, index);

  const jobTerminal = job?.status === 'COMPLETED' || job?.status === 'CANCELED';
  const inputs = {
    now: p.now,
    installDoneAt: ms(sp.installDoneAt),
    jobTerminal,
    health: p.obs.health,
    lastHealthReportAt: p.obs.lastHealthReportAt,
    alarms: p.obs.alarms,
  };
  for (const thing of newlySilent(
    stage,
    devices.map((d) => d.gate),
    inputs,
  )) {
    const e = s.ledger[thing];
    e.silentAt = iso(p.now);
    trail(p, e, 'SILENT', false);
  }
  devices = stageDevices(p, index);
  const gates = devices.map((d) => d.gate);

  const bad = abortReason(stage, gates, inputs);
  if (bad) return abort(p, bad);
  if (job?.status === 'CANCELED' && gates.some((d) => !isTerminal(d.outcome) || d.outcome === 'CANCELED')) {
    return abort(p, {
      code: 'JOB_CANCELED',
      detail: `stage job ${jobId} was canceled outside the controller`,
    });
  }

  const done = gates.every((d) => isTerminal(d.outcome));
  if (!done) {
    const open = gates.filter((d) => !isTerminal(d.outcome)).length;
    p.reasons.push(
      jobTerminal
        ? {
            code: 'RECONCILING',
            detail: `the job ended but ${open} device(s) have no terminal outcome observed yet`,
          }
        : { code: 'INSTALLING', detail: `${open} of ${gates.length} device(s) still installing` },
    );
    return { kind: 'wait' };
  }
  sp.installDoneAt ??= iso(p.now);
  inputs.installDoneAt = ms(sp.installDoneAt);
  const shortfall = abortOnDone(stage, gates);
  if (shortfall) return abort(p, shortfall);
  if (s.status === 'PAUSED') {
    if (!p.reasons.some((r) => r.code === 'OPERATOR_PAUSE'))
      p.reasons.push({ code: 'OPERATOR_PAUSE', detail: 'paused: promotion is held until resume' });
    return { kind: 'wait' };
  }
  const blockers = promotionBlockers(stage, gates, inputs);
  if (blockers.length > 0) {
    p.reasons.push(...blockers);
    return { kind: 'wait' };
  }
  if (stage.promotion.requireApproval && !sp.approvedBy) {
    s.status = 'WAITING_APPROVAL';
    p.reasons.push({
      code: 'APPROVAL_REQUIRED',
      detail: `stage ${stage.name} passed its gates; approve to promote`,
    });
    return { kind: 'await-approval', stage: index };
  }
  sp.status = 'DONE';
  const next = startStage(p, index + 1);
  if (next.kind === 'start-stage') return { kind: 'promote', from: index, to: next.stage };
  if (next.kind === 'need-input') {
    // Stay on this stage until the candidates come; the gates are evaluated again then.
    sp.status = 'RUNNING';
    s.stage = index;
  }
  return next;
}

function canceledAtStart(p: Pass, stage: Stage, index: number): RolloutDecision {
  const { s } = p;
  const sp = s.stages[index];
  if (sp.restarts >= sp.restartBudget) {
    if (s.status !== 'PAUSED') {
      s.pausedFrom = 'RUNNING';
      s.status = 'PAUSED';
    }
    p.reasons.push({
      code: 'SCHEDULED_JOB_CANCELED',
      detail: `stage ${stage.name}'s job was canceled at its scheduled start ${sp.restarts + 1} time(s); resume to try again`,
    });
    return { kind: 'pause' };
  }
  if (s.status === 'PAUSED') return { kind: 'wait' };
  sp.restarts++;
  const jobId = stageJobId(s, index, sp.restarts);
  const things = stageDevices(p, index).map((d) => d.entry.thing);
  for (const t of things) {
    s.ledger[t].jobId = jobId;
    delete s.ledger[t].exec;
  }
  sp.jobId = jobId;
  sp.startedAt = iso(p.now);
  p.reasons.push({
    code: 'SCHEDULED_JOB_CANCELED',
    detail: `stage ${stage.name}'s job was canceled at its scheduled start; recreated as ${jobId}`,
  });
  if (!p.obs.jobs[jobId]) p.actions.push(stageJob(s, index, jobId, things, p.now));
  return { kind: 'restart-stage', stage: index };
}

/** Abort: cancel the current stage job, then roll back what reached the new version. */
function abort(p: Pass, reason: Reason): RolloutDecision {
  const { s } = p;
  s.abort = { at: iso(p.now), reason };
  p.reasons.push(reason);
  const sp = s.stages[s.stage];
  const jobId = sp?.jobId;
  const job = jobId ? p.obs.jobs[jobId] : undefined;
  if (jobId && job && (job.status === 'SCHEDULED' || job.status === 'IN_PROGRESS')) {
    p.actions.push({
      kind: 'cancelJob',
      jobId,
      force: s.plan.rollback.forceCancel,
      reasonCode: reason.code,
      comment: reason.detail.slice(0, 2028),
    });
  }
  delete s.pausedFrom;
  const toRollBack = rollbackDevices(s);
  if (!s.plan.rollback.enabled || toRollBack.length === 0) {
    s.status = 'ABORTED';
    return { kind: 'abort', rollback: false };
  }
  s.status = 'ROLLING_BACK';
  s.rollback = { things: toRollBack.map((e) => e.thing), unrollable: [] };
  rollingBack(p);
  return { kind: 'abort', rollback: true };
}

/** Devices that reached (or may have reached) the new version: succeeded, silent, or mid-install. */
function rollbackDevices(s: RolloutState): LedgerEntry[] {
  return Object.values(s.ledger)
    .filter((e) => ['SUCCEEDED', 'SILENT', 'IN_PROGRESS'].includes(outcomeOf(e)))
    .sort((a, b) => a.thing.localeCompare(b.thing));
}

function rollingBack(p: Pass): RolloutDecision {
  const { s } = p;
  const rb = (s.rollback ??= { things: rollbackDevices(s).map((e) => e.thing), unrollable: [] });
  if (!rb.groups) {
    const devices = rb.things.map((t) => s.ledger[t]);
    const versions = [...new Set(devices.map((d) => d.previousFirmware))].sort();
    const missing = versions.filter((v) => p.obs.releases?.[v] === undefined);
    if (missing.length > 0) {
      p.reasons.push({
        code: 'NEED_RELEASES',
        detail: `the rollback needs the releases ${missing.join(', ')}`,
      });
      return { kind: 'need-input', releases: missing };
    }
    rb.groups = [];
    versions.forEach((version, i) => {
      const things = devices.filter((d) => d.previousFirmware === version).map((d) => d.thing);
      if (!p.obs.releases?.[version]) {
        rb.unrollable.push(...things);
        return;
      }
      const jobId = rolloutJobId(s.rolloutId, s.release.version, `rb${i + 1}`);
      rb.groups?.push({ jobId, version, things });
      for (const t of things) s.ledger[t].rollback = { jobId };
    });
  }
  for (const g of rb.groups) {
    const release = p.obs.releases?.[g.version];
    if (!p.obs.jobs[g.jobId] && release) p.actions.push(rollbackJob(s, g, release));
  }
  if (rb.unrollable.length > 0) {
    p.reasons.push({
      code: 'ROLLBACK_UNAVAILABLE',
      detail: `no published release to return ${rb.unrollable.length} device(s) to: ${rb.unrollable.slice(0, 10).join(', ')}`,
    });
  }
  const pending: string[] = [];
  const failed: string[] = [...rb.unrollable];
  for (const g of rb.groups) {
    const canceled = p.obs.jobs[g.jobId]?.status === 'CANCELED';
    for (const t of g.things) {
      const out = s.ledger[t].rollback?.exec?.outcome;
      if (out === 'SUCCEEDED') continue;
      if ((out && isTerminal(out)) || canceled) failed.push(t);
      else pending.push(t);
    }
  }
  if (pending.length > 0) {
    p.reasons.push({ code: 'ROLLBACK_PENDING', detail: `${pending.length} device(s) still rolling back` });
    return { kind: 'wait' };
  }
  if (failed.length > 0) {
    s.status = 'ROLLBACK_FAILED';
    p.reasons.push({
      code: 'ROLLBACK_FAILED',
      detail: `${failed.length} device(s) did not return to their previous version: ${failed.slice(0, 20).join(', ')}`,
    });
    return { kind: 'rollback-failed' };
  }
  s.status = 'ROLLED_BACK';
  return { kind: 'rollback-done' };
}

function rollbackJob(
  s: RolloutState,
  g: { jobId: string; version: string; things: string[] },
  release: ReleaseRecord,
): CreateJobAction {
  const policy = s.plan.rollback;
  return {
    kind: 'createJob',
    jobId: g.jobId,
    purpose: 'rollback',
    templateClass: 'rollback',
    things: g.things,
    document: firmwareJobDocument(release, true),
    description: `rollback of rollout ${s.rolloutId}: ${s.release.version} back to ${g.version}`,
    timeoutConfig: { inProgressTimeoutInMinutes: policy.inProgressMinutes },
    ...(policy.retries > 0
      ? {
          jobExecutionsRetryConfig: {
            criteriaList: [{ failureType: 'ALL', numberOfRetries: policy.retries }],
          },
        }
      : {}),
  };
}

/**
 * Unique devices that reached (or may have reached) the new version: succeeded, silent or
 * mid-install, across all stages (the lab's `maxDevicesOnBadVersion` is its peak).
 */
export function devicesOnNewVersion(state: RolloutState): number {
  return rollbackDevices(state).length;
}

/** A start request for a release that already has a running rollout under a different plan. */
export class RolloutConflictError extends Error {}

/**
 * The rollout a start request gives: the existing one when the same release and plan was
 * started before (whatever its state), a new PENDING one otherwise. A different plan for a
 * release whose rollout is still active is a conflict: abort that one first.
 */
export function resolveStart(
  existing: readonly RolloutState[],
  release: ReleaseRecord,
  plan: RolloutPlan,
  now: Date,
): { rollout: RolloutState; created: boolean } {
  const id = rolloutIdFor(release.version, plan);
  const same = existing.find((r) => r.rolloutId === id);
  if (same) return { rollout: same, created: false };
  const active = existing.find(
    (r) => r.release.version === release.version && !FINAL_ROLLOUT_STATES.includes(r.status),
  );
  if (active) {
    throw new RolloutConflictError(
      `release ${release.version} already has rollout ${active.rolloutId} (${active.status}) under another plan; abort it first or start with the same plan`,
    );
  }
  return { rollout: newRollout(release, plan, now), created: true };
}

/** Every job id the rollout has created or will look for: what the observer describes each pass. */
export function jobIdsOf(state: RolloutState): string[] {
  const stageJobs = state.stages.flatMap((sp) => (sp.jobId ? [sp.jobId] : []));
  return [...stageJobs, ...(state.rollback?.groups ?? []).map((g) => g.jobId)];
}

/** Per-stage unique-device counts of a rollout (status output, the lab report). */
export function stageCounts(
  state: RolloutState,
): { stage: string; targeted: number; outcomes: Record<string, number> }[] {
  return state.stages.map((sp, i) => {
    const outcomes: Record<string, number> = {};
    for (const e of Object.values(state.ledger)) {
      if (e.stage !== i) continue;
      const o = outcomeOf(e);
      outcomes[o] = (outcomes[o] ?? 0) + 1;
    }
    return { stage: sp.name, targeted: sp.targeted, outcomes };
  });
}
