/**
 * The lab's AWS IoT Jobs service: jobs, job templates and job executions in memory, with the
 * rollout, abort, timeout, retry and cancel semantics of the AWS IoT Developer Guide ("Job
 * configurations", "Jobs and job execution states"). The control plane (`control-plane/jobs.ts`)
 * and the device MQTT API (`device-api.ts`) are two faces of this one service.
 *
 * Time comes from an injected clock (ms). Time-driven changes (rollout rate, in-progress and
 * step timers, scheduling) happen in `tick()`, which every request runs first and the lab runs
 * once a second; tests advance a fake clock and call `tick()`.
 *
 * Lab choices where AWS does not spell it out (see README):
 * - the abort percentage is failures (executions of the failure type, retries included) over
 *   the things notified so far; `minNumberOfExecutedThings` counts notified things;
 * - an abort cancels the job with reasonCode `ABORT_CRITERIA_MET`;
 * - jobProcessDetails counts every execution, retries included (as AWS's counts do).
 */
import { randomUUID } from 'node:crypto';
import { alreadyExists, invalidRequest, IotError, notFound } from '../errors';
import type { IotRegistry } from '../state';
import {
  TERMINAL,
  type ExecutionStatus,
  type JobConfigs,
  type JobExecutionRecord,
  type JobRecord,
  type JobTemplateRecord,
  type SchedulingConfig,
} from './types';
import { substitutePackageParameters, type PackageVersionLookup } from './package-substitution';
import { validateJobConfigs, validateScheduling } from './validate';

type Log = (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;

const MINUTE = 60_000;
const MAX_TARGETS = 100;
const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;

export interface JobsServiceOptions {
  registry: IotRegistry;
  /** Epoch milliseconds. */
  clock: () => number;
  /** Publish a message through the broker (notify topics and job events). */
  publish: (topic: string, payload: unknown) => void;
  /** The Software Package Catalog, for destinationPackageVersions and substitution parameters. */
  packageVersion?: PackageVersionLookup;
  log?: Log;
}

export interface CreateJobInput extends JobConfigs {
  targets?: string[];
  targetSelection?: 'SNAPSHOT' | 'CONTINUOUS';
  jobTemplateArn?: string;
  schedulingConfig?: SchedulingConfig;
}

export type EventType = 'JOB' | 'JOB_EXECUTION' | string;

/** An error the device MQTT API answers on `…/rejected` (code as the Jobs MQTT API names it). */
export class JobsRejection extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly executionState?: JobExecutionRecord,
  ) {
    super(message);
  }
}

export class JobsService {
  readonly jobs = new Map<string, JobRecord>();
  readonly templates = new Map<string, JobTemplateRecord>();
  /** Event configuration (DescribeEventConfigurations); AWS's default is every type disabled. */
  readonly eventConfigurations = new Map<string, boolean>();
  eventConfigurationsModified?: number;
  private readonly eventConfigurationsCreated: number;
  /** Per thing: the last pending list and next execution its notify topics announced. */
  private readonly announced = new Map<string, { pending: string; next: string }>();
  /** Things whose queue may have changed, and jobs that may have completed, since the last settle. */
  private readonly dirtyThings = new Set<string>();
  private readonly dirtyJobs = new Set<JobRecord>();
  /** The document a device receives (the device API replaces presigned URL placeholders). */
  renderDocument: (e: JobExecutionRecord) => unknown = (e) => {
    const d = this.jobs.get(e.jobId)?.document;
    return d ? (JSON.parse(d) as unknown) : undefined;
  };

  constructor(private readonly o: JobsServiceOptions) {
    this.eventConfigurationsCreated = o.clock();
    o.registry.events.on('thingGroupMembershipChanged', () => this.tick());
  }

  now(): number {
    return this.o.clock();
  }

  arn(resource: string): string {
    return this.o.registry.arn(resource);
  }

  // ------------------------------------------------------------------ templates

  createJobTemplate(
    id: string,
    input: JobConfigs & { jobArn?: string; maintenanceWindows?: SchedulingConfig['maintenanceWindows'] },
  ): JobTemplateRecord {
    if (!JOB_ID.test(id))
      throw invalidRequest(`jobTemplateId ${id} must be 1-64 characters of [a-zA-Z0-9_-]`);
    if (this.templates.has(id)) throw alreadyExists(`Job template ${id} already exists`);
    let configs: JobConfigs = input;
    if (input.jobArn) {
      const source = this.jobs.get(input.jobArn.slice(input.jobArn.indexOf(':job/') + 5));
      if (!source) throw notFound(`Job ${input.jobArn} does not exist`);
      configs = { ...pickConfigs(source), ...stripUndefined(input) };
    }
    if (!configs.document && !configs.documentSource)
      throw invalidRequest('A job template needs a document, a documentSource or a jobArn');
    validateJobConfigs(configs);
    const t: JobTemplateRecord = {
      ...pickConfigs(configs),
      jobTemplateId: id,
      jobTemplateArn: this.arn(`jobtemplate/${id}`),
      jobArn: input.jobArn,
      maintenanceWindows: input.maintenanceWindows,
      createdAt: this.now(),
    };
    this.templates.set(id, t);
    return t;
  }

  getJobTemplate(id: string): JobTemplateRecord {
    const t = this.templates.get(id);
    if (!t) throw notFound(`Job template ${id} does not exist`);
    return t;
  }

  deleteJobTemplate(id: string): void {
    this.getJobTemplate(id);
    this.templates.delete(id);
  }

  // ------------------------------------------------------------------ jobs

  /**
   * CreateJob: checks the input, merges the template, substitutes package parameters (async:
   * the catalog is asked), then creates the job and starts its rollout unless it is scheduled.
   */
  async createJob(jobId: string, input: CreateJobInput): Promise<JobRecord> {
    const { configs, targets } = this.checkCreateJob(jobId, input);
    let document = configs.document as string;
    const lookup = this.o.packageVersion;
    if (lookup) {
      document = await substitutePackageParameters(document, configs.destinationPackageVersions, lookup);
    } else if (document.includes('${aws:iot:package:')) {
      this.o.log?.({
        level: 'warn',
        msg: 'job document has package substitution parameters but no package catalog is configured: left unchanged',
        jobId,
      });
    }
    if (this.jobs.has(jobId)) throw alreadyExists(`Job ${jobId} already exists`);
    const now = this.now();
    const scheduling = input.schedulingConfig;
    const job: JobRecord = {
      ...configs,
      document,
      documentBeforeSubstitution: configs.document,
      jobId,
      jobArn: this.arn(`job/${jobId}`),
      targets: [...targets],
      targetSelection: input.targetSelection ?? 'SNAPSHOT',
      jobTemplateArn: input.jobTemplateArn,
      schedulingConfig: scheduling,
      status: scheduleTime(scheduling?.startTime) > now ? 'SCHEDULED' : 'IN_PROGRESS',
      createdAt: now,
      lastUpdatedAt: now,
      waiting: [],
      executions: [],
      latest: new Map(),
      notified: new Set(),
      retries: new Map(),
      window: { start: now, count: 0 },
    };
    this.jobs.set(jobId, job);
    this.dirtyJobs.add(job);
    if (job.status === 'IN_PROGRESS') this.startRollout(job);
    this.settle();
    return job;
  }

  /** CreateJob's synchronous checks and the template merge. */
  private checkCreateJob(jobId: string, input: CreateJobInput): { configs: JobConfigs; targets: string[] } {
    this.tick();
    if (!JOB_ID.test(jobId)) throw invalidRequest(`jobId ${jobId} must be 1-64 characters of [a-zA-Z0-9_-]`);
    if (this.jobs.has(jobId)) throw alreadyExists(`Job ${jobId} already exists`);
    const targets = input.targets ?? [];
    if (targets.length < 1 || targets.length > MAX_TARGETS)
      throw invalidRequest(`targets must name 1 to ${MAX_TARGETS} things or thing groups`);
    let configs: JobConfigs = pickConfigs(input);
    if (input.jobTemplateArn) {
      const id = input.jobTemplateArn.slice(input.jobTemplateArn.indexOf(':jobtemplate/') + 13);
      const t = this.getJobTemplate(id);
      // The job's own settings override the template's.
      configs = { ...pickConfigs(t), ...stripUndefined(configs) };
    }
    if (configs.document && configs.documentSource)
      throw invalidRequest('Specify either document or documentSource, not both');
    if (!configs.document && !configs.documentSource)
      throw invalidRequest('A job needs a document, a documentSource or a jobTemplateArn');
    if (configs.documentSource)
      throw invalidRequest(
        'The lab serves inline job documents only: pass document instead of documentSource',
      );
    if (configs.document) {
      if (Buffer.byteLength(configs.document) > 32_768) throw invalidRequest('document exceeds 32,768 bytes');
      try {
        JSON.parse(configs.document);
      } catch {
        throw invalidRequest('document is not valid JSON');
      }
    }
    validateJobConfigs(configs);
    const scheduling = input.schedulingConfig;
    if (scheduling) validateScheduling(scheduling);
    for (const t of targets) this.resolveTarget(t); // validates each target
    return { configs, targets };
  }

  /**
   * UpdateJob: description and the rollout, abort, timeout, retry and presigned URL configs of a
   * job that is not finished. A new rollout rate applies from the next one-minute window; a new
   * abort config is checked at once.
   */
  updateJob(jobId: string, input: JobConfigs): JobRecord {
    const job = this.getJob(jobId);
    if (job.status === 'COMPLETED' || job.status === 'CANCELED' || job.status === 'DELETION_IN_PROGRESS')
      throw invalidRequest(`Job ${jobId} is ${job.status} and cannot be updated`);
    const changes = stripUndefined({
      description: input.description,
      presignedUrlConfig: input.presignedUrlConfig,
      jobExecutionsRolloutConfig: input.jobExecutionsRolloutConfig,
      abortConfig: input.abortConfig,
      timeoutConfig: input.timeoutConfig,
      jobExecutionsRetryConfig: input.jobExecutionsRetryConfig,
    });
    validateJobConfigs(changes);
    Object.assign(job, changes);
    job.lastUpdatedAt = this.now();
    this.checkAbort(job);
    this.settle();
    return job;
  }

  /** AssociateTargetsWithJob: more targets for a CONTINUOUS job that is IN_PROGRESS (≤ 100 in all). */
  associateTargets(jobId: string, targets: string[], comment?: string): JobRecord {
    const job = this.getJob(jobId);
    if (job.targetSelection !== 'CONTINUOUS' || job.status !== 'IN_PROGRESS')
      throw invalidRequest('AssociateTargetsWithJob needs a CONTINUOUS job that is IN_PROGRESS');
    const added = targets.filter((t) => !job.targets.includes(t));
    if (job.targets.length + added.length > MAX_TARGETS)
      throw invalidRequest(`A job has at most ${MAX_TARGETS} targets`);
    for (const t of added) this.resolveTarget(t);
    job.targets.push(...added);
    if (comment !== undefined) job.comment = comment;
    job.lastUpdatedAt = this.now();
    this.tick();
    return job;
  }

  getJob(jobId: string): JobRecord {
    this.tick();
    const j = this.jobs.get(jobId);
    if (!j) throw notFound(`Job ${jobId} does not exist`);
    return j;
  }

  /** The latest execution of each thing (ListJobExecutionsForJob), optionally of one status. */
  latestExecutions(job: JobRecord, status?: string | null): JobExecutionRecord[] {
    return [...job.latest.values()].filter((e) => !status || e.status === status);
  }

  /** Every execution of a thing, across jobs (ListJobExecutionsForThing), latest per job. */
  executionsForThing(thingName: string): JobExecutionRecord[] {
    this.tick();
    const out: JobExecutionRecord[] = [];
    for (const j of this.jobs.values()) {
      const e = latestOf(j, thingName);
      if (e) out.push(e);
    }
    return out;
  }

  getExecution(jobId: string, thingName: string, executionNumber?: number): JobExecutionRecord {
    const job = this.getJob(jobId);
    const e =
      executionNumber === undefined
        ? latestOf(job, thingName)
        : job.executions.find((x) => x.thingName === thingName && x.executionNumber === executionNumber);
    if (!e) throw notFound(`No execution of job ${jobId} on thing ${thingName}`);
    return e;
  }

  /** jobProcessDetails of DescribeJob and of the `completed` event. */
  processDetails(job: JobRecord): Record<string, unknown> {
    const n = (s: ExecutionStatus): number => job.executions.filter((e) => e.status === s).length;
    return {
      processingTargets: job.status === 'IN_PROGRESS' || job.status === 'SCHEDULED' ? job.targets : [],
      numberOfCanceledThings: n('CANCELED'),
      numberOfSucceededThings: n('SUCCEEDED'),
      numberOfFailedThings: n('FAILED'),
      numberOfRejectedThings: n('REJECTED'),
      numberOfQueuedThings: n('QUEUED'),
      numberOfInProgressThings: n('IN_PROGRESS'),
      numberOfRemovedThings: n('REMOVED'),
      numberOfTimedOutThings: n('TIMED_OUT'),
    };
  }

  /**
   * CancelJob: QUEUED executions (and things not yet notified) are canceled; IN_PROGRESS ones
   * only with `force`, after which the device can no longer update them.
   */
  cancelJob(jobId: string, o: { force?: boolean; reasonCode?: string; comment?: string } = {}): JobRecord {
    const job = this.getJob(jobId);
    if (job.status === 'COMPLETED') throw invalidRequest(`Job ${jobId} is COMPLETED and cannot be canceled`);
    if (job.status === 'DELETION_IN_PROGRESS') throw invalidRequest(`Job ${jobId} is being deleted`);
    if (job.status === 'CANCELED' && (!o.force || job.forceCanceled))
      throw invalidRequest(`Job ${jobId} is already CANCELED`);
    if (o.reasonCode && !/^[A-Z0-9_]{1,128}$/.test(o.reasonCode))
      throw invalidRequest('reasonCode must be at most 128 characters of [A-Z0-9_]');
    this.cancel(job, o.force === true, o.reasonCode, o.comment);
    this.settle();
    return job;
  }

  cancelExecution(
    jobId: string,
    thingName: string,
    o: { force?: boolean; expectedVersion?: number; statusDetails?: Record<string, string> } = {},
  ): void {
    const e = this.getExecution(jobId, thingName);
    if (TERMINAL.has(e.status))
      throw new IotError('InvalidStateTransitionException', 409, `The execution is already ${e.status}`);
    if (e.status === 'IN_PROGRESS' && !o.force)
      throw new IotError(
        'InvalidStateTransitionException',
        409,
        'The execution is IN_PROGRESS: pass force=true to cancel it',
      );
    if (o.expectedVersion !== undefined && o.expectedVersion !== e.versionNumber)
      throw new IotError(
        'VersionConflictException',
        409,
        `expectedVersion ${o.expectedVersion} is not ${e.versionNumber}`,
      );
    const job = this.getJob(jobId);
    if (o.statusDetails) e.statusDetails = { ...e.statusDetails, ...o.statusDetails };
    this.finish(job, e, 'CANCELED', { forceCanceled: o.force === true });
    this.settle();
  }

  deleteJob(jobId: string, force = false): void {
    const job = this.getJob(jobId);
    if (job.status === 'IN_PROGRESS' && !force)
      throw new IotError(
        'InvalidStateTransitionException',
        409,
        `Job ${jobId} is IN_PROGRESS: pass force=true to delete it`,
      );
    job.status = 'DELETION_IN_PROGRESS';
    for (const t of job.latest.keys()) this.dirtyThings.add(t);
    this.jobEvent(job, 'deletion_in_progress');
    this.jobs.delete(jobId);
    this.jobEvent(job, 'deleted');
    this.settle();
  }

  // ------------------------------------------------------------------ device side

  /** Pending executions of a thing: IN_PROGRESS first, then QUEUED, oldest first. */
  pending(thingName: string): JobExecutionRecord[] {
    const out: JobExecutionRecord[] = [];
    for (const j of this.jobs.values()) {
      const e = latestOf(j, thingName);
      if (e && !TERMINAL.has(e.status)) out.push(e);
    }
    const rank = (e: JobExecutionRecord): number => (e.status === 'IN_PROGRESS' ? 0 : 1);
    return out.sort((a, b) => rank(a) - rank(b) || a.queuedAt - b.queuedAt);
  }

  job(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  /** A device status change (UpdateJobExecution / StartNextPendingJobExecution). */
  deviceUpdate(
    e: JobExecutionRecord,
    status: ExecutionStatus,
    statusDetails: Record<string, string> | undefined,
    stepTimeoutInMinutes: number | undefined,
  ): void {
    const job = this.jobs.get(e.jobId);
    if (!job) throw new JobsRejection('ResourceNotFound', `Job ${e.jobId} does not exist`);
    const now = this.now();
    if (statusDetails) e.statusDetails = { ...e.statusDetails, ...statusDetails };
    if (status === 'IN_PROGRESS') {
      if (e.status === 'QUEUED') {
        e.startedAt = now;
        const t = job.timeoutConfig?.inProgressTimeoutInMinutes;
        if (t) e.inProgressDeadline = now + t * MINUTE;
      }
      e.status = 'IN_PROGRESS';
      this.dirtyThings.add(e.thingName);
      e.lastUpdatedAt = now;
      e.versionNumber += 1;
      this.setStepTimer(e, stepTimeoutInMinutes, now);
    } else {
      this.finish(job, e, status);
    }
    this.settle();
  }

  private setStepTimer(e: JobExecutionRecord, minutes: number | undefined, now: number): void {
    if (minutes === undefined) return;
    if (minutes === -1) {
      e.stepDeadline = undefined;
      return;
    }
    const deadline = now + minutes * MINUTE;
    // A step timer cannot outlast the in-progress timer.
    e.stepDeadline = e.inProgressDeadline !== undefined ? Math.min(deadline, e.inProgressDeadline) : deadline;
  }

  /** StartNextPendingJobExecution's step timer and details on an execution it starts. */
  validateStepTimeout(minutes: unknown): number | undefined {
    if (minutes === undefined || minutes === null) return undefined;
    if (
      typeof minutes !== 'number' ||
      !Number.isInteger(minutes) ||
      (minutes !== -1 && (minutes < 1 || minutes > 10080))
    )
      throw new JobsRejection(
        'InvalidRequest',
        'stepTimeoutInMinutes must be -1 or an integer from 1 to 10080',
      );
    return minutes;
  }

  // ------------------------------------------------------------------ time

  /** Applies everything due by now: scheduled starts and ends, rollout releases, timeouts. */
  tick(): void {
    const now = this.now();
    for (const job of [...this.jobs.values()]) {
      const s = job.schedulingConfig;
      if (job.status === 'SCHEDULED' && scheduleTime(s?.startTime) <= now) {
        job.status = 'IN_PROGRESS';
        job.window = { start: now, count: 0 };
        job.lastUpdatedAt = now;
        this.startRollout(job);
      }
      if (
        job.status === 'IN_PROGRESS' &&
        s?.endTime &&
        scheduleTime(s.endTime) <= now &&
        !job.rolloutStopped
      ) {
        job.rolloutStopped = true;
        job.waiting = [];
        if (s.endBehavior === 'CANCEL' || s.endBehavior === 'FORCE_CANCEL')
          this.cancel(job, s.endBehavior === 'FORCE_CANCEL', 'SCHEDULED_END', 'The job reached its endTime');
      }
      if (job.targetSelection === 'CONTINUOUS' && job.status === 'IN_PROGRESS') this.syncMembership(job);
      this.release(job, now);
      for (const e of job.latest.values()) {
        if (e.status !== 'IN_PROGRESS') continue;
        const due = Math.min(e.stepDeadline ?? Infinity, e.inProgressDeadline ?? Infinity);
        if (due <= now) this.finish(job, e, 'TIMED_OUT');
      }
    }
    this.settle();
  }

  // ------------------------------------------------------------------ internals

  private startRollout(job: JobRecord): void {
    this.dirtyJobs.add(job);
    const things = new Set<string>();
    for (const t of job.targets) for (const name of this.resolveTarget(t)) things.add(name);
    job.waiting = [...things];
    this.release(job, this.now());
  }

  /** Thing names a target ARN stands for (a thing group includes its child groups). */
  private resolveTarget(target: string): string[] {
    const reg = this.o.registry;
    const m = /^arn:aws[\w-]*:iot:[^:]*:[^:]*:(thing|thinggroup)\/(.+)$/.exec(target);
    if (!m) throw invalidRequest(`Target ${target} is not a thing or thing group ARN`);
    if (m[1] === 'thing') {
      if (!reg.things.has(m[2])) throw notFound(`Thing ${m[2]} does not exist`);
      return [m[2]];
    }
    const root = reg.getThingGroup(m[2]);
    const names = new Set(root.things);
    const stack = [root.thingGroupName];
    while (stack.length) {
      const parent = stack.pop() as string;
      for (const g of reg.thingGroups.values()) {
        if (g.parentGroupName !== parent) continue;
        g.things.forEach((t) => names.add(t));
        stack.push(g.thingGroupName);
      }
    }
    return [...names];
  }

  /** CONTINUOUS jobs: things that joined a target group get an execution, things that left are REMOVED. */
  private syncMembership(job: JobRecord): void {
    const members = new Set<string>();
    for (const t of job.targets) {
      try {
        for (const n of this.resolveTarget(t)) members.add(n);
      } catch {
        // a deleted target group or thing has no members
      }
    }
    for (const name of members) {
      if (job.notified.has(name) || job.waiting.includes(name)) continue;
      // A thing that joins again gets the next execution number.
      this.queueExecution(job, name, 0, (job.latest.get(name)?.executionNumber ?? 0) + 1);
    }
    for (const e of this.latestExecutions(job)) {
      if (members.has(e.thingName)) continue;
      if (!TERMINAL.has(e.status)) this.finish(job, e, 'REMOVED');
      // A thing that left may get a new execution when it joins again.
      job.notified.delete(e.thingName);
      job.retries.delete(e.thingName);
    }
    job.waiting = job.waiting.filter((n) => members.has(n));
  }

  /** The rollout rate now (things per minute), or undefined when unlimited. */
  private rate(job: JobRecord): number | undefined {
    const cfg = job.jobExecutionsRolloutConfig;
    if (!cfg || (cfg.maximumPerMinute === undefined && !cfg.exponentialRate)) return undefined;
    const exp = cfg.exponentialRate;
    if (!exp) return cfg.maximumPerMinute;
    const c = exp.rateIncreaseCriteria;
    const done = c.numberOfNotifiedThings
      ? Math.floor(job.notified.size / c.numberOfNotifiedThings)
      : Math.floor(
          new Set(job.executions.filter((e) => e.status === 'SUCCEEDED').map((e) => e.thingName)).size /
            (c.numberOfSucceededThings ?? Infinity),
        );
    const r = Math.floor(exp.baseRatePerMinute * Math.pow(exp.incrementFactor, done));
    return Math.min(r, cfg.maximumPerMinute ?? 1000);
  }

  /**
   * Notifies waiting things as the rollout rate allows. The rate is fixed for each one-minute
   * window when the window opens (an exponential rate grows from one window to the next).
   */
  private release(job: JobRecord, now: number): void {
    if (job.status !== 'IN_PROGRESS' || job.rolloutStopped) return;
    if (job.window.rate === undefined || now - job.window.start >= MINUTE) {
      const start = job.window.rate === undefined ? now : now - ((now - job.window.start) % MINUTE);
      job.window = { start, count: 0, rate: this.rate(job) ?? Infinity };
    }
    while (job.waiting.length > 0 && job.window.count < (job.window.rate ?? Infinity)) {
      const name = job.waiting.shift() as string;
      job.window.count += 1;
      this.queueExecution(job, name, 0, 1);
    }
  }

  private queueExecution(
    job: JobRecord,
    thingName: string,
    retryAttempt: number,
    executionNumber: number,
  ): void {
    const now = this.now();
    job.notified.add(thingName);
    const e: JobExecutionRecord = {
      jobId: job.jobId,
      thingName,
      thingArn: this.arn(`thing/${thingName}`),
      executionNumber,
      status: 'QUEUED',
      statusDetails: {},
      queuedAt: now,
      lastUpdatedAt: now,
      versionNumber: 1,
      retryAttempt,
    };
    job.executions.push(e);
    job.latest.set(thingName, e);
    job.lastUpdatedAt = now;
    this.dirtyThings.add(thingName);
    this.dirtyJobs.add(job);
  }

  /** An execution reaches a terminal state: event, retry, abort check. */
  private finish(
    job: JobRecord,
    e: JobExecutionRecord,
    status: ExecutionStatus,
    o: { forceCanceled?: boolean; noRetry?: boolean } = {},
  ): void {
    const now = this.now();
    e.status = status;
    this.dirtyThings.add(e.thingName);
    this.dirtyJobs.add(job);
    e.lastUpdatedAt = now;
    e.versionNumber += 1;
    e.stepDeadline = undefined;
    if (o.forceCanceled) e.forceCanceled = true;
    job.lastUpdatedAt = now;
    this.executionEvent(job, e);
    if (!o.noRetry && (status === 'FAILED' || status === 'TIMED_OUT') && job.status === 'IN_PROGRESS')
      this.maybeRetry(job, e);
    if (status === 'FAILED' || status === 'TIMED_OUT' || status === 'REJECTED') this.checkAbort(job);
  }

  private maybeRetry(job: JobRecord, e: JobExecutionRecord): void {
    const list = job.jobExecutionsRetryConfig?.criteriaList ?? [];
    const c = list.find((x) => x.failureType === e.status) ?? list.find((x) => x.failureType === 'ALL');
    if (!c) return;
    const used = job.retries.get(e.thingName) ?? 0;
    if (used >= Math.min(c.numberOfRetries, 10)) return;
    job.retries.set(e.thingName, used + 1);
    this.queueExecution(job, e.thingName, used + 1, e.executionNumber + 1);
  }

  private checkAbort(job: JobRecord): void {
    if (job.status !== 'IN_PROGRESS') return;
    const executed = job.notified.size;
    for (const c of job.abortConfig?.criteriaList ?? []) {
      if (executed < c.minNumberOfExecutedThings) continue;
      const failed = job.executions.filter((e) =>
        c.failureType === 'ALL'
          ? e.status === 'FAILED' || e.status === 'REJECTED' || e.status === 'TIMED_OUT'
          : e.status === c.failureType,
      ).length;
      if ((failed * 100) / executed < c.thresholdPercentage) continue;
      this.o.log?.({
        level: 'info',
        msg: `job ${job.jobId} aborted: ${c.failureType} reached ${c.thresholdPercentage}%`,
        jobId: job.jobId,
      });
      this.cancel(
        job,
        false,
        'ABORT_CRITERIA_MET',
        `Aborted: ${failed} ${c.failureType} of ${executed} notified things reached ${c.thresholdPercentage}% (abortConfig)`,
      );
      return;
    }
  }

  private cancel(job: JobRecord, force: boolean, reasonCode?: string, comment?: string): void {
    const wasCanceled = job.status === 'CANCELED';
    job.status = 'CANCELED';
    job.reasonCode = reasonCode ?? job.reasonCode;
    job.comment = comment ?? job.comment;
    job.forceCanceled = force || job.forceCanceled;
    job.waiting = [];
    job.lastUpdatedAt = this.now();
    if (!wasCanceled) this.jobEvent(job, 'cancellation_in_progress');
    for (const e of this.latestExecutions(job)) {
      if (e.status === 'QUEUED' || (force && e.status === 'IN_PROGRESS'))
        this.finish(job, e, 'CANCELED', { forceCanceled: force, noRetry: true });
    }
    job.completedAt = this.now();
    if (!wasCanceled) this.jobEvent(job, 'canceled');
  }

  /** Completion of SNAPSHOT jobs and the notify topics of every thing whose queue changed. */
  private settle(): void {
    const jobs = [...this.dirtyJobs];
    this.dirtyJobs.clear();
    for (const job of jobs) {
      if (!this.jobs.has(job.jobId)) continue;
      if (job.status !== 'IN_PROGRESS' || job.targetSelection !== 'SNAPSHOT' || job.waiting.length > 0)
        continue;
      if (job.executions.some((e) => !TERMINAL.has(e.status))) continue;
      job.status = 'COMPLETED';
      job.completedAt = this.now();
      job.lastUpdatedAt = job.completedAt;
      this.jobEvent(job, 'completed');
    }
    this.announce();
  }

  private announce(): void {
    const things = [...this.dirtyThings];
    this.dirtyThings.clear();
    const ts = Math.floor(this.now() / 1000);
    for (const thing of things) {
      const pending = this.pending(thing);
      const pendingKey = pending.map((e) => `${e.jobId}#${e.executionNumber}:${e.status}`).join(',');
      const next = pending[0];
      const nextKey = next ? `${next.jobId}#${next.executionNumber}` : '';
      const last = this.announced.get(thing) ?? { pending: '', next: '' };
      if (pendingKey === last.pending && nextKey === last.next) continue;
      this.announced.set(thing, { pending: pendingKey, next: nextKey });
      if (pendingKey !== last.pending) {
        const jobs: Record<string, unknown[]> = {};
        for (const e of pending) (jobs[e.status] ??= []).push(summaryOf(e));
        this.o.publish(`$aws/things/${thing}/jobs/notify`, { timestamp: ts, jobs });
      }
      if (nextKey !== last.next) {
        const execution = next ? this.executionData(next, true) : undefined;
        this.o.publish(
          `$aws/things/${thing}/jobs/notify-next`,
          execution ? { timestamp: ts, execution } : { timestamp: ts },
        );
      }
    }
  }

  /** JobExecutionData as the device MQTT API returns it. */
  executionData(
    e: JobExecutionRecord,
    includeJobDocument: boolean,
    document?: unknown,
  ): Record<string, unknown> {
    const job = this.jobs.get(e.jobId);
    const now = this.now();
    const due = Math.min(e.stepDeadline ?? Infinity, e.inProgressDeadline ?? Infinity);
    return {
      jobId: e.jobId,
      thingName: e.thingName,
      ...(includeJobDocument && job?.document ? { jobDocument: document ?? this.renderDocument(e) } : {}),
      status: e.status,
      statusDetails: e.statusDetails,
      queuedAt: Math.floor(e.queuedAt / 1000),
      ...(e.startedAt !== undefined ? { startedAt: Math.floor(e.startedAt / 1000) } : {}),
      lastUpdatedAt: Math.floor(e.lastUpdatedAt / 1000),
      versionNumber: e.versionNumber,
      executionNumber: e.executionNumber,
      ...(due !== Infinity
        ? { approximateSecondsBeforeTimedOut: Math.max(0, Math.round((due - now) / 1000)) }
        : {}),
    };
  }

  // ------------------------------------------------------------------ events

  private eventsEnabled(type: EventType): boolean {
    return this.eventConfigurations.get(type) === true;
  }

  /** DescribeEventConfigurations' creation date. */
  get eventConfigurationsCreatedAt(): number {
    return this.eventConfigurationsCreated;
  }

  /** `$aws/events/job/<jobId>/<operation>` (AWS IoT Developer Guide, "Jobs events"). */
  private jobEvent(job: JobRecord, operation: string): void {
    if (!this.eventsEnabled('JOB')) return;
    const status =
      operation === 'cancellation_in_progress'
        ? 'CANCELLATION_IN_PROGRESS'
        : operation === 'deletion_in_progress' || operation === 'deleted'
          ? 'DELETION_IN_PROGRESS'
          : job.status;
    this.o.publish(`$aws/events/job/${job.jobId}/${operation}`, {
      eventType: 'JOB',
      eventId: randomUUID(),
      timestamp: Math.floor(this.now() / 1000),
      operation,
      jobId: job.jobId,
      status,
      targetSelection: job.targetSelection,
      targets: job.targets,
      description: job.description,
      createdAt: Math.floor(job.createdAt / 1000),
      lastUpdatedAt: Math.floor(job.lastUpdatedAt / 1000),
      ...(job.completedAt !== undefined ? { completedAt: Math.floor(job.completedAt / 1000) } : {}),
      ...(operation === 'canceled' || operation === 'cancellation_in_progress'
        ? { comment: job.comment, reasonCode: job.reasonCode }
        : {}),
      ...(operation === 'completed' ? { jobProcessDetails: this.processDetails(job) } : {}),
    });
  }

  /** `$aws/events/jobExecution/<jobId>/<status>` for terminal execution states. */
  private executionEvent(job: JobRecord, e: JobExecutionRecord): void {
    if (!this.eventsEnabled('JOB_EXECUTION') || !TERMINAL.has(e.status)) return;
    this.o.publish(`$aws/events/jobExecution/${job.jobId}/${e.status.toLowerCase()}`, {
      eventType: 'JOB_EXECUTION',
      eventId: randomUUID(),
      timestamp: Math.floor(this.now() / 1000),
      operation: e.status.toLowerCase(),
      jobId: job.jobId,
      thingArn: e.thingArn,
      status: e.status,
      statusDetails: e.statusDetails,
    });
  }
}

function latestOf(job: JobRecord, thingName: string): JobExecutionRecord | undefined {
  return job.latest.get(thingName);
}

export function summaryOf(e: JobExecutionRecord): Record<string, unknown> {
  return {
    jobId: e.jobId,
    queuedAt: Math.floor(e.queuedAt / 1000),
    ...(e.startedAt !== undefined ? { startedAt: Math.floor(e.startedAt / 1000) } : {}),
    lastUpdatedAt: Math.floor(e.lastUpdatedAt / 1000),
    versionNumber: e.versionNumber,
    executionNumber: e.executionNumber,
  };
}

/** `YYYY-MM-DDTHH:MM` (UTC) or any ISO date as epoch ms; no time = -Infinity (now). */
export function scheduleTime(s: string | undefined): number {
  if (!s) return -Infinity;
  const t = Date.parse(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(s) ? `${s}:00Z` : s);
  return Number.isNaN(t) ? -Infinity : t;
}

function pickConfigs(c: JobConfigs): JobConfigs {
  return stripUndefined({
    description: c.description,
    document: c.document,
    documentSource: c.documentSource,
    presignedUrlConfig: c.presignedUrlConfig,
    jobExecutionsRolloutConfig: c.jobExecutionsRolloutConfig,
    abortConfig: c.abortConfig,
    timeoutConfig: c.timeoutConfig,
    jobExecutionsRetryConfig: c.jobExecutionsRetryConfig,
    destinationPackageVersions: c.destinationPackageVersions,
  });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
