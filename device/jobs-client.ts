/**
 * A device's client for the AWS IoT Jobs MQTT API (AWS IoT Developer Guide, "Jobs device MQTT
 * API"), on an open {@link MqttSession}. Only the documented topics are used:
 *
 * - `$aws/things/<thing>/jobs/notify-next`: the next pending execution changed (or there is none);
 * - `$aws/things/<thing>/jobs/start-next`: StartNextPendingJobExecution (QUEUED → IN_PROGRESS,
 *   optional `stepTimeoutInMinutes` and `statusDetails`);
 * - `$aws/things/<thing>/jobs/<jobId>/update`: UpdateJobExecution with `expectedVersion`;
 * - `$aws/things/<thing>/jobs/<jobId>/get` (and `$next/get`): DescribeJobExecution.
 *
 * Answers come on `<request>/accepted` or `<request>/rejected` and are matched to the request by
 * its `clientToken`, which AWS IoT echoes. A rejection carries `{ code, message, executionState? }`
 * (not the `errorCode` of the provisioning API); it becomes a {@link JobsRejectedError}.
 *
 * `statusDetails` is checked against the service's limits before anything is sent
 * ({@link checkStatusDetails}), so a device never learns about them from a rejection.
 */
import { randomUUID } from 'node:crypto';
import { TransportError, type MqttSession } from './mqtt-session';

/** Execution states of AWS IoT Jobs. */
export type JobExecutionStatus =
  'QUEUED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'REJECTED' | 'REMOVED' | 'CANCELED';

/** The states a device may report in UpdateJobExecution. */
export type DeviceReportedStatus = 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'REJECTED';

/** States after which an execution never changes again. */
export const TERMINAL_JOB_STATUSES: readonly JobExecutionStatus[] = [
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
];

/** `statusDetails`: string keys to string values, within {@link STATUS_DETAILS_LIMITS}. */
export type StatusDetails = Record<string, string>;

/** The service's limits on `statusDetails` (AWS IoT Jobs limits and the UpdateJobExecution API). */
export const STATUS_DETAILS_LIMITS = {
  maxPairs: 10,
  maxKeyLength: 128,
  maxValueLength: 1024,
  keyPattern: /^[a-zA-Z0-9:_-]+$/,
} as const;

/** A `statusDetails` map the service would refuse; the message names the pair and the limit. */
export class StatusDetailsError extends Error {
  constructor(message: string) {
    super(`statusDetails: ${message}`);
    this.name = 'StatusDetailsError';
  }
}

/**
 * Throws a {@link StatusDetailsError} unless `details` has at most 10 pairs, every key is 1–128
 * characters of `[a-zA-Z0-9:_-]` and every value is a non-empty string of at most 1,024 characters.
 */
export function checkStatusDetails(details: StatusDetails): void {
  const entries = Object.entries(details);
  const L = STATUS_DETAILS_LIMITS;
  if (entries.length > L.maxPairs)
    throw new StatusDetailsError(
      `${entries.length} pairs, at most ${L.maxPairs} are allowed (drop or merge keys)`,
    );
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > L.maxKeyLength)
      throw new StatusDetailsError(`key "${key.slice(0, 40)}" must be 1 to ${L.maxKeyLength} characters`);
    if (!L.keyPattern.test(key))
      throw new StatusDetailsError(`key "${key}" may only hold letters, digits, ':', '_' and '-'`);
    if (typeof value !== 'string')
      throw new StatusDetailsError(`value of "${key}" must be a string, got ${typeof value}`);
    if (value.length === 0 || value.length > L.maxValueLength)
      throw new StatusDetailsError(
        `value of "${key}" must be 1 to ${L.maxValueLength} characters, got ${value.length}`,
      );
  }
}

/** A job execution as the Jobs MQTT API describes it. */
export interface JobExecution {
  jobId: string;
  thingName?: string;
  jobDocument?: unknown;
  status: JobExecutionStatus;
  statusDetails?: StatusDetails;
  versionNumber: number;
  executionNumber?: number;
  queuedAt?: number;
  startedAt?: number;
  lastUpdatedAt?: number;
}

/** The state an UpdateJobExecution answer carries when `includeJobExecutionState` was set. */
export interface JobExecutionState {
  status: JobExecutionStatus;
  statusDetails?: StatusDetails;
  versionNumber: number;
}

/** A `/rejected` answer of the Jobs API: `{ code, message, executionState? }`. */
export class JobsRejectedError extends Error {
  constructor(
    readonly api: string,
    /** `VersionMismatch`, `InvalidStateTransition`, `TerminalStateReached`, `ResourceNotFound`… */
    readonly code: string,
    readonly detail: string,
    /** The execution's current state, when the service sent it (VersionMismatch does). */
    readonly executionState?: JobExecutionState,
  ) {
    super(`${api} rejected: ${code} ${detail}`);
    this.name = 'JobsRejectedError';
  }
}

/** Options of {@link JobsClient}. */
export interface JobsClientOptions {
  /** Time to wait for an accepted/rejected answer. @default 10000 */
  responseTimeoutMs?: number;
  /** Client tokens (tests may make them deterministic). @default randomUUID */
  clientToken?: () => string;
}

/** What {@link JobsClient.update} sends. */
export interface JobUpdate {
  status: DeviceReportedStatus;
  statusDetails?: StatusDetails;
  /** The execution's version the device last saw; a stale one is rejected with VersionMismatch. */
  expectedVersion?: number;
  executionNumber?: number;
  /** Replaces the step timer; -1 discards it. */
  stepTimeoutInMinutes?: number;
  /** @default true */
  includeJobExecutionState?: boolean;
}

interface Pending {
  api: string;
  session: MqttSession;
  resolve: (body: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function executionOf(v: unknown): JobExecution | undefined {
  if (!isRecord(v) || typeof v.jobId !== 'string' || typeof v.status !== 'string') return undefined;
  return { ...v, versionNumber: typeof v.versionNumber === 'number' ? v.versionNumber : 0 } as JobExecution;
}

function executionStateOf(v: unknown): JobExecutionState | undefined {
  if (!isRecord(v) || typeof v.status !== 'string' || typeof v.versionNumber !== 'number') return undefined;
  return v as unknown as JobExecutionState;
}

/**
 * The Jobs MQTT API of one thing. Call {@link start} once (it subscribes), then use the
 * requests; {@link onNextChanged} listeners hear every `notify-next`.
 *
 * A device has one connection, which a reboot ends: {@link attach} moves the client to the
 * device's new session (it subscribes again, then asks `$next/get` and tells the listeners, since
 * a `notify-next` sent while the device was offline is lost). Requests made while no session is
 * connected wait for one, within the response timeout.
 */
export class JobsClient {
  private readonly base: string;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners: Array<(next: JobExecution | undefined) => void> = [];
  private readonly responseTimeoutMs: number;
  private readonly token: () => string;
  private readonly onMessage = (topic: string, payload: Buffer): void => this.dispatch(topic, payload);
  private started = false;
  private session?: MqttSession;
  private sessionWaiters: Array<() => void> = [];

  constructor(
    session: MqttSession | undefined,
    /** The thing whose executions these are. */
    readonly thingName: string,
    options: JobsClientOptions = {},
  ) {
    this.base = `$aws/things/${thingName}/jobs`;
    this.responseTimeoutMs = options.responseTimeoutMs ?? 10_000;
    this.token = options.clientToken ?? randomUUID;
    this.session = session;
  }

  /** The topic filters {@link start} subscribes to (the device policy must allow them). */
  get subscriptions(): string[] {
    return [
      `${this.base}/notify-next`,
      `${this.base}/start-next/accepted`,
      `${this.base}/start-next/rejected`,
      `${this.base}/+/get/accepted`,
      `${this.base}/+/get/rejected`,
      `${this.base}/+/update/accepted`,
      `${this.base}/+/update/rejected`,
    ];
  }

  /** Subscribes to `notify-next` and the answer topics. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.session) await this.listen(this.session);
  }

  /**
   * Moves the client to `session` (the device's new connection, after a reboot or a reconnect):
   * subscribes there, releases the requests waiting for a session, then reads `$next` and tells
   * the {@link onNextChanged} listeners what is next now.
   */
  async attach(session: MqttSession): Promise<void> {
    if (this.session === session) return;
    this.session?.client.off('message', this.onMessage);
    this.session = session;
    if (!this.started) return;
    await this.listen(session);
    const next = await this.describe('$next', { includeJobDocument: false });
    if (this.session === session) for (const l of [...this.listeners]) l(next);
  }

  private async listen(session: MqttSession): Promise<void> {
    session.client.on('message', this.onMessage);
    void session.whenClosed.then(() => this.failAll(session));
    await session.subscribe(this.subscriptions);
    for (const w of this.sessionWaiters.splice(0)) w();
  }

  /** The connected session, or the next one attached within the response timeout. */
  private async connectedSession(api: string): Promise<MqttSession> {
    const deadline = Date.now() + this.responseTimeoutMs;
    for (;;) {
      if (this.session?.connected) return this.session;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new TransportError('CONNECTION_LOST', 'not connected', `not connected when sending ${api}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.sessionWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Stops listening; requests in flight fail. The session stays open (the caller owns it). */
  close(): void {
    this.session?.client.off('message', this.onMessage);
    this.failAll();
  }

  /** Calls `listener` with the announced next execution, or undefined when none is pending. */
  onNextChanged(listener: (next: JobExecution | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** StartNextPendingJobExecution: the execution now IN_PROGRESS, or undefined when none is pending. */
  async startNext(
    options: { stepTimeoutInMinutes?: number; statusDetails?: StatusDetails } = {},
  ): Promise<JobExecution | undefined> {
    if (options.statusDetails) checkStatusDetails(options.statusDetails);
    const body = await this.request('StartNextPendingJobExecution', `${this.base}/start-next`, {
      ...(options.statusDetails ? { statusDetails: options.statusDetails } : {}),
      ...(options.stepTimeoutInMinutes !== undefined
        ? { stepTimeoutInMinutes: options.stepTimeoutInMinutes }
        : {}),
    });
    return executionOf(body.execution);
  }

  /** DescribeJobExecution of `jobId` (or `$next`): undefined when there is none. */
  async describe(
    jobId: string,
    options: { includeJobDocument?: boolean; executionNumber?: number } = {},
  ): Promise<JobExecution | undefined> {
    const body = await this.request('DescribeJobExecution', `${this.base}/${jobId}/get`, {
      includeJobDocument: options.includeJobDocument ?? true,
      ...(options.executionNumber !== undefined ? { executionNumber: options.executionNumber } : {}),
    });
    return executionOf(body.execution);
  }

  /**
   * UpdateJobExecution. Resolves with the execution state after the update (when the service
   * sent it), rejects with {@link JobsRejectedError} (e.g. `VersionMismatch`) or a
   * {@link StatusDetailsError} before sending.
   */
  async update(jobId: string, update: JobUpdate): Promise<JobExecutionState | undefined> {
    if (update.statusDetails) checkStatusDetails(update.statusDetails);
    const body = await this.request('UpdateJobExecution', `${this.base}/${jobId}/update`, {
      status: update.status,
      ...(update.statusDetails ? { statusDetails: update.statusDetails } : {}),
      ...(update.expectedVersion !== undefined ? { expectedVersion: update.expectedVersion } : {}),
      ...(update.executionNumber !== undefined ? { executionNumber: update.executionNumber } : {}),
      ...(update.stepTimeoutInMinutes !== undefined
        ? { stepTimeoutInMinutes: update.stepTimeoutInMinutes }
        : {}),
      includeJobExecutionState: update.includeJobExecutionState ?? true,
    });
    return executionStateOf(body.executionState);
  }

  /**
   * {@link update} with `expectedVersion`; on `VersionMismatch` the execution is read again with
   * `<jobId>/get` and the update sent once more with the version read. Resolves with the state after
   * the update; a second mismatch, or an execution that has become terminal, rejects.
   */
  async updateWithVersion(
    jobId: string,
    expectedVersion: number,
    update: Omit<JobUpdate, 'expectedVersion'>,
  ): Promise<{ state?: JobExecutionState; versionNumber: number; retried: boolean }> {
    try {
      const state = await this.update(jobId, { ...update, expectedVersion });
      return { state, versionNumber: state?.versionNumber ?? expectedVersion + 1, retried: false };
    } catch (err) {
      if (!(err instanceof JobsRejectedError) || err.code !== 'VersionMismatch') throw err;
      const current = await this.describe(jobId, { includeJobDocument: false });
      if (!current) throw err;
      if (TERMINAL_JOB_STATUSES.includes(current.status))
        throw new JobsRejectedError(
          'UpdateJobExecution',
          'TerminalStateReached',
          `execution of ${jobId} is ${current.status}`,
          { status: current.status, versionNumber: current.versionNumber },
        );
      const state = await this.update(jobId, { ...update, expectedVersion: current.versionNumber });
      return { state, versionNumber: state?.versionNumber ?? current.versionNumber + 1, retried: true };
    }
  }

  private async request(
    api: string,
    topic: string,
    payload: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    if (!this.started) throw new Error(`JobsClient for ${this.thingName}: call start() before ${api}`);
    const session = await this.connectedSession(api);
    const clientToken = this.token();
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(clientToken);
        reject(
          new TransportError(
            'RESPONSE_TIMEOUT',
            `no ${api} response within ${this.responseTimeoutMs} ms`,
            `timeout waiting for ${topic}/accepted`,
          ),
        );
      }, this.responseTimeoutMs);
      this.pending.set(clientToken, { api, session, resolve, reject, timer });
    });
    answer.catch(() => undefined);
    try {
      await session.publish(topic, JSON.stringify({ ...payload, clientToken }));
    } catch (err) {
      const p = this.pending.get(clientToken);
      if (p) clearTimeout(p.timer);
      this.pending.delete(clientToken);
      throw err;
    }
    return answer;
  }

  private dispatch(topic: string, payload: Buffer): void {
    if (!topic.startsWith(`${this.base}/`)) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    if (!isRecord(body)) return;
    if (topic === `${this.base}/notify-next`) {
      const next = executionOf(body.execution);
      for (const l of [...this.listeners]) l(next);
      return;
    }
    const accepted = topic.endsWith('/accepted');
    if (!accepted && !topic.endsWith('/rejected')) return;
    const token = typeof body.clientToken === 'string' ? body.clientToken : undefined;
    const p = token ? this.pending.get(token) : undefined;
    if (!p || !token) return;
    this.pending.delete(token);
    clearTimeout(p.timer);
    if (accepted) p.resolve(body);
    else
      p.reject(
        new JobsRejectedError(
          p.api,
          typeof body.code === 'string' ? body.code : 'Unknown',
          typeof body.message === 'string' ? body.message : '',
          executionStateOf(body.executionState),
        ),
      );
  }

  /** Fails the requests in flight (on `session` only, when given). */
  private failAll(session?: MqttSession): void {
    for (const [token, p] of this.pending) {
      if (session && p.session !== session) continue;
      this.pending.delete(token);
      clearTimeout(p.timer);
      p.reject(new TransportError('CONNECTION_LOST', 'connection closed', `connection lost during ${p.api}`));
    }
  }
}
