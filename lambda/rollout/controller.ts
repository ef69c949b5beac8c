/**
 * One controller pass, observe → step → act, for every active rollout. The decision is the pure
 * `step` of core/rollout.ts; this module only gathers its inputs and runs its actions, through
 * injected ports (the rollout store, the IoT Jobs API, the registry's candidates, the trail).
 *
 * Safe to repeat and to run concurrently: job ids are deterministic and CreateJob on an existing
 * id counts as done; trail entries are keyed by job and device so a retry writes nothing twice;
 * the state is recorded last with the revision read as guard, so of two concurrent passes only
 * one records, and the other's actions were the same idempotent ones.
 */
import type { ReleaseRecord } from '../../core/ota';
import {
  jobIdsOf,
  step,
  type CreateJobAction,
  type RolloutAction,
  type RolloutObservation,
  type RolloutState,
  type StepResult,
} from '../../core/rollout';
import type { RolloutCandidate } from '../../core/rollout-targets';
import type { IotJobsApi } from './iot-jobs';
import { releaseFromAttributes as releaseOfPackageVersion } from '../../core/ota';
import { RolloutRevisionConflictError, type StoredRollout } from './rollout-store';

/** Most things one job names directly; beyond it the job targets a static thing group. */
export const MAX_DIRECT_TARGETS = 100;

type AppendTrailAction = Extract<RolloutAction, { kind: 'appendTrail' }>;

export interface ControllerStore {
  listActiveIds(): Promise<string[]>;
  get(rolloutId: string): Promise<StoredRollout | undefined>;
  record(state: RolloutState, expectedRevision: number): Promise<void>;
}

export interface ControllerDeps {
  store: ControllerStore;
  jobs: IotJobsApi;
  /** The registry's devices as rollout candidates (asked only when a step needs them). */
  candidates(): Promise<RolloutCandidate[]>;
  /**
   * Appends one device outcome to its trail at `at` (the `updatedAt` of the state the pass stepped
   * from); a second append of the same outcome, job and time is a no-op.
   */
  appendTrail(action: AppendTrailAction, at: string): Promise<void>;
  /** Name of the firmware package in the Software Package Catalog. */
  packageName: string;
  /** Job template ARN per stage class. */
  jobTemplateArns: Readonly<Record<string, string>>;
  /** `arn:<partition>:iot:<region>:<account>:` of the account the jobs run in. */
  iotArnPrefix: string;
  /** Optional further observations (health aggregates, alarms, last health reports). */
  observeMore?(state: RolloutState): Promise<Partial<RolloutObservation>>;
  log?: (message: string, detail: Record<string, unknown>) => void;
}

/** What a pass did with one rollout. */
export interface PassOutcome {
  rolloutId: string;
  decision?: StepResult['decision']['kind'];
  recorded: boolean;
  jobsCreated: string[];
  error?: string;
}

/** Run one pass over every active rollout; one rollout's failure does not stop the others. */
export async function runControllerPass(deps: ControllerDeps, now: () => Date): Promise<PassOutcome[]> {
  const out: PassOutcome[] = [];
  for (const id of await deps.store.listActiveIds()) {
    try {
      out.push(await reconcile(deps, id, now));
    } catch (err) {
      deps.log?.('rollout pass failed', { rolloutId: id, error: (err as Error).message });
      out.push({ rolloutId: id, recorded: false, jobsCreated: [], error: (err as Error).message });
    }
  }
  return out;
}

/** Observe, step (asking for candidates and releases only when the step needs them), act. */
export async function reconcile(
  deps: ControllerDeps,
  rolloutId: string,
  now: () => Date,
): Promise<PassOutcome> {
  const stored = await deps.store.get(rolloutId);
  if (!stored) return { rolloutId, recorded: false, jobsCreated: [] };
  const observation = await observe(deps, stored);
  let result = step(stored.state, observation, now());
  if (result.decision.kind === 'need-input') {
    const wanted = result.decision;
    if (wanted.candidates) observation.candidates = await deps.candidates();
    if (wanted.releases) observation.releases = await releases(deps, wanted.releases);
    result = step(stored.state, observation, now());
  }
  const jobsCreated = await act(deps, result.actions, stored.state.updatedAt);
  const recorded = await recordLast(deps, result.actions);
  deps.log?.('rollout stepped', {
    rolloutId,
    decision: result.decision.kind,
    reasons: result.reasons,
    recorded,
    jobsCreated,
  });
  return { rolloutId, decision: result.decision.kind, recorded, jobsCreated };
}

async function observe(deps: ControllerDeps, stored: StoredRollout): Promise<RolloutObservation> {
  const jobs: Record<string, { status: NonNullable<Awaited<ReturnType<IotJobsApi['describeJob']>>> }> = {};
  const executions: RolloutObservation['executions'][number][] = [];
  for (const jobId of jobIdsOf(stored.state)) {
    const status = await deps.jobs.describeJob(jobId);
    if (!status) continue;
    jobs[jobId] = { status };
    for (const e of await deps.jobs.listExecutions(jobId)) executions.push({ jobId, ...e });
  }
  const more = deps.observeMore ? await deps.observeMore(stored.state) : {};
  return { ...more, jobs, executions, commands: stored.commands };
}

async function releases(
  deps: ControllerDeps,
  versions: readonly string[],
): Promise<Record<string, ReleaseRecord | null>> {
  const out: Record<string, ReleaseRecord | null> = {};
  for (const v of versions) {
    const pv = await deps.jobs.getPackageVersion(deps.packageName, v);
    out[v] = pv && pv.status === 'PUBLISHED' ? (releaseOfPackageVersion(v, pv.attributes) ?? null) : null;
  }
  return out;
}

/** Every action but recordState, in order; returns the job ids this call created. */
async function act(deps: ControllerDeps, actions: readonly RolloutAction[], at: string): Promise<string[]> {
  const created: string[] = [];
  for (const a of actions) {
    if (a.kind === 'createJob') {
      if (await createJob(deps, a)) created.push(a.jobId);
    } else if (a.kind === 'cancelJob') {
      await deps.jobs.cancelJob(a.jobId, a.force, a.reasonCode, a.comment);
    } else if (a.kind === 'appendTrail') {
      await deps.appendTrail(a, at);
    }
  }
  return created;
}

async function recordLast(deps: ControllerDeps, actions: readonly RolloutAction[]): Promise<boolean> {
  const record = actions.find((a) => a.kind === 'recordState');
  if (!record) return false;
  try {
    await deps.store.record(record.state, record.expectedRevision);
    return true;
  } catch (err) {
    // Another pass recorded first; its actions were these same idempotent ones.
    if (err instanceof RolloutRevisionConflictError) return false;
    throw err;
  }
}

/** The CreateJob request of an action (template, package version, targets). */
export async function createJob(deps: ControllerDeps, a: CreateJobAction): Promise<boolean> {
  const jobTemplateArn = deps.jobTemplateArns[a.templateClass];
  if (!jobTemplateArn) {
    throw new Error(
      `no job template for stage class "${a.templateClass}" (known: ${Object.keys(deps.jobTemplateArns).join(', ') || 'none'}): ` +
        'add the class to the ota.jobTemplates config and redeploy, or set templateClass on the plan stage',
    );
  }
  const p = deps.iotArnPrefix;
  const targets =
    a.things.length > MAX_DIRECT_TARGETS
      ? [await deps.jobs.ensureThingGroup(a.jobId, a.things)]
      : a.things.map((t) => `${p}thing/${t}`);
  return deps.jobs.createJob(a.jobId, {
    targets,
    targetSelection: 'SNAPSHOT',
    jobTemplateArn,
    document: JSON.stringify(a.document),
    description: a.description,
    destinationPackageVersions: [`${p}package/${deps.packageName}/version/${a.document.version}`],
    jobExecutionsRolloutConfig: a.jobExecutionsRolloutConfig,
    abortConfig: a.abortConfig,
    timeoutConfig: a.timeoutConfig,
    jobExecutionsRetryConfig: a.jobExecutionsRetryConfig,
    schedulingConfig: a.schedulingConfig,
  });
}
