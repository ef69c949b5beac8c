/**
 * The AWS IoT Jobs device MQTT API (AWS IoT Developer Guide, "Jobs device MQTT API operations"):
 * requests a device publishes on `$aws/things/<thing>/jobs/…` and the answers the service sends
 * to the requesting connection on `…/accepted` or `…/rejected`.
 *
 * | Request topic                         | Operation                     |
 * | ------------------------------------- | ----------------------------- |
 * | `$aws/things/<thing>/jobs/get`        | GetPendingJobExecutions       |
 * | `$aws/things/<thing>/jobs/start-next` | StartNextPendingJobExecution  |
 * | `$aws/things/<thing>/jobs/<jobId>/get`| DescribeJobExecution (`$next`)|
 * | `$aws/things/<thing>/jobs/<jobId>/update` | UpdateJobExecution        |
 *
 * `notify` and `notify-next` are published by the service (`service.ts`). Rejections carry the
 * documented codes: InvalidTopic, InvalidJson, InvalidRequest, InvalidStateTransition,
 * ResourceNotFound, VersionMismatch, TerminalStateReached. Presigned URL placeholders in a job
 * document are replaced when the device receives the document.
 */
import { JobsRejection, type JobsService } from './service';
import { DEVICE_STATUSES, TERMINAL, type ExecutionStatus, type JobExecutionRecord } from './types';

type Log = (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;

/** Presigns a GET of `s3://bucket/key` for `expiresInSec` seconds. */
export type PresignUrl = (bucket: string, key: string, expiresInSec: number) => string;

export interface JobsAnswer {
  topic: string;
  payload: Record<string, unknown>;
}

const PREFIX = '$aws/things/';
const PLACEHOLDER = /\$\{aws:iot:s3-presigned-url:(https:\/\/[^}]+)\}/g;
const MAX_DETAILS = 10;
const MAX_KEY = 128;
const MAX_VALUE = 1024;

/** `[thing, rest…]` of a Jobs topic (`$aws/things/<thing>/jobs/<rest…>`), or undefined. */
export function jobsTopicParts(topic: string): { thing: string; rest: string[] } | undefined {
  if (!topic.startsWith(PREFIX)) return undefined;
  const parts = topic.slice(PREFIX.length).split('/');
  if (parts.length < 3 || parts[1] !== 'jobs' || !parts[0]) return undefined;
  return { thing: parts[0], rest: parts.slice(2) };
}

/** Topics the Jobs service publishes (answers and notifications); clients only subscribe. */
export function isJobsServiceTopic(topic: string): boolean {
  const p = jobsTopicParts(topic);
  if (!p) return false;
  const last = p.rest[p.rest.length - 1];
  return (
    (p.rest.length === 1 && (last === 'notify' || last === 'notify-next')) ||
    (p.rest.length >= 2 && (last === 'accepted' || last === 'rejected'))
  );
}

/** Requests the Jobs service consumes: every Jobs topic that is not one of its own answers. */
export function isJobsRequestTopic(topic: string): boolean {
  return jobsTopicParts(topic) !== undefined && !isJobsServiceTopic(topic);
}

export class JobsDeviceApi {
  private warnedNoPresigner = false;

  constructor(private readonly o: { service: JobsService; presignUrl?: PresignUrl; log?: Log }) {
    o.service.renderDocument = (e) => this.document(e);
  }

  /** Answers one request publish; the caller sends them to the requesting connection. */
  handle(topic: string, payload: Buffer): JobsAnswer[] {
    const p = jobsTopicParts(topic);
    if (!p) return [];
    const svc = this.o.service;
    svc.tick();
    const ts = Math.floor(svc.now() / 1000);
    let body: Record<string, unknown> = {};
    const reject = (code: string, message: string, e?: JobExecutionRecord): JobsAnswer[] => [
      {
        topic: `${topic}/rejected`,
        payload: {
          ...(typeof body.clientToken === 'string' ? { clientToken: body.clientToken } : {}),
          code,
          message,
          timestamp: ts,
          ...(e ? { executionState: stateOf(e) } : {}),
        },
      },
    ];
    const text = payload.toString('utf8');
    if (text.trim()) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
          return reject('InvalidJson', 'The request payload must be a JSON object');
        body = parsed as Record<string, unknown>;
      } catch {
        return reject('InvalidJson', 'The request payload is not valid JSON');
      }
    }
    if (
      body.clientToken !== undefined &&
      (typeof body.clientToken !== 'string' || body.clientToken.length > 64)
    )
      return reject('InvalidRequest', 'clientToken must be a string of at most 64 characters');
    try {
      const out = this.route(p.thing, p.rest, body, ts);
      if (!out) return reject('InvalidTopic', `${topic} is not a Jobs API topic`);
      const clientToken = typeof body.clientToken === 'string' ? { clientToken: body.clientToken } : {};
      return [{ topic: `${topic}/accepted`, payload: { ...clientToken, ...out, timestamp: ts } }];
    } catch (e) {
      if (e instanceof JobsRejection) return reject(e.code, e.message, e.executionState);
      throw e;
    }
  }

  private route(
    thing: string,
    rest: string[],
    body: Record<string, unknown>,
    ts: number,
  ): Record<string, unknown> | undefined {
    if (rest.length === 1 && rest[0] === 'get') return this.getPending(thing);
    if (rest.length === 1 && rest[0] === 'start-next') return this.startNext(thing, body);
    if (rest.length === 2 && rest[1] === 'get') return this.describe(thing, rest[0], body);
    if (rest.length === 2 && rest[1] === 'update') return this.update(thing, rest[0], body);
    void ts;
    return undefined;
  }

  private getPending(thing: string): Record<string, unknown> {
    const pending = this.o.service.pending(thing);
    const summary = (e: JobExecutionRecord): Record<string, unknown> => ({
      jobId: e.jobId,
      queuedAt: Math.floor(e.queuedAt / 1000),
      ...(e.startedAt !== undefined ? { startedAt: Math.floor(e.startedAt / 1000) } : {}),
      lastUpdatedAt: Math.floor(e.lastUpdatedAt / 1000),
      versionNumber: e.versionNumber,
      executionNumber: e.executionNumber,
    });
    return {
      inProgressJobs: pending.filter((e) => e.status === 'IN_PROGRESS').map(summary),
      queuedJobs: pending.filter((e) => e.status === 'QUEUED').map(summary),
    };
  }

  private startNext(thing: string, body: Record<string, unknown>): Record<string, unknown> {
    const svc = this.o.service;
    const details = statusDetailsOf(body.statusDetails);
    const step = svc.validateStepTimeout(body.stepTimeoutInMinutes);
    const next = svc.pending(thing)[0];
    if (!next) return {};
    if (next.status === 'QUEUED') svc.deviceUpdate(next, 'IN_PROGRESS', details, step);
    return { execution: this.data(next, true) };
  }

  private describe(thing: string, jobId: string, body: Record<string, unknown>): Record<string, unknown> {
    const svc = this.o.service;
    const include = body.includeJobDocument !== false;
    if (jobId === '$next') {
      const next = svc.pending(thing)[0];
      return next ? { execution: this.data(next, include) } : {};
    }
    const e = this.find(thing, jobId, body.executionNumber);
    if (TERMINAL.has(e.status) && body.executionNumber === undefined)
      throw new JobsRejection('TerminalStateReached', `The execution of job ${jobId} is ${e.status}`, e);
    return { execution: this.data(e, include) };
  }

  private update(thing: string, jobId: string, body: Record<string, unknown>): Record<string, unknown> {
    const svc = this.o.service;
    const status = body.status;
    if (typeof status !== 'string' || !DEVICE_STATUSES.has(status))
      throw new JobsRejection('InvalidRequest', 'status must be IN_PROGRESS, SUCCEEDED, FAILED or REJECTED');
    const details = statusDetailsOf(body.statusDetails);
    const step = svc.validateStepTimeout(body.stepTimeoutInMinutes);
    if (body.expectedVersion !== undefined && typeof body.expectedVersion !== 'number')
      throw new JobsRejection('InvalidRequest', 'expectedVersion must be a number');
    const e = this.find(thing, jobId, body.executionNumber);
    if (body.expectedVersion !== undefined && body.expectedVersion !== e.versionNumber)
      throw new JobsRejection(
        'VersionMismatch',
        `expectedVersion ${String(body.expectedVersion)} does not match the execution's version ${e.versionNumber}`,
        e,
      );
    if (TERMINAL.has(e.status))
      throw new JobsRejection(
        'InvalidStateTransition',
        `The execution is ${e.status}${e.forceCanceled ? ' (the job was canceled with force)' : ''}: it cannot become ${status}`,
        e,
      );
    svc.deviceUpdate(e, status as ExecutionStatus, details, step);
    return {
      ...(body.includeJobExecutionState === true ? { executionState: stateOf(e) } : {}),
      ...(body.includeJobDocument === true ? { jobDocument: this.document(e) } : {}),
    };
  }

  private find(thing: string, jobId: string, executionNumber: unknown): JobExecutionRecord {
    if (
      executionNumber !== undefined &&
      (typeof executionNumber !== 'number' || !Number.isInteger(executionNumber))
    )
      throw new JobsRejection('InvalidRequest', 'executionNumber must be an integer');
    const job = this.o.service.job(jobId);
    const e =
      executionNumber === undefined
        ? job?.latest.get(thing)
        : job?.executions.find((x) => x.thingName === thing && x.executionNumber === executionNumber);
    if (!e) throw new JobsRejection('ResourceNotFound', `No execution of job ${jobId} on thing ${thing}`);
    return e;
  }

  private data(e: JobExecutionRecord, includeJobDocument: boolean): Record<string, unknown> {
    return this.o.service.executionData(
      e,
      includeJobDocument,
      includeJobDocument ? this.document(e) : undefined,
    );
  }

  /** The job document with its presigned URL placeholders replaced. */
  private document(e: JobExecutionRecord): unknown {
    const job = this.o.service.job(e.jobId);
    if (!job?.document) return undefined;
    const expires = job.presignedUrlConfig?.expiresInSec ?? 3600;
    return replaceStrings(JSON.parse(job.document) as unknown, (s) =>
      s.replace(PLACEHOLDER, (whole, url: string) => {
        const target = s3Location(url);
        if (!target) return whole;
        if (!this.o.presignUrl) {
          if (!this.warnedNoPresigner)
            this.o.log?.({
              level: 'warn',
              msg: 'job document has a presigned URL placeholder but no presigner is configured: left unchanged',
              jobId: e.jobId,
            });
          this.warnedNoPresigner = true;
          return whole;
        }
        return this.o.presignUrl(target.bucket, target.key, expires);
      }),
    );
  }
}

function stateOf(e: JobExecutionRecord): Record<string, unknown> {
  return { status: e.status, statusDetails: e.statusDetails, versionNumber: e.versionNumber };
}

/** statusDetails within the documented limits: at most 10 pairs, keys ≤128, values ≤1024 characters. */
function statusDetailsOf(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v))
    throw new JobsRejection('InvalidRequest', 'statusDetails must be an object of string values');
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_DETAILS)
    throw new JobsRejection(
      'InvalidRequest',
      `statusDetails has ${entries.length} pairs; at most ${MAX_DETAILS} are allowed`,
    );
  for (const [k, val] of entries) {
    if (k.length < 1 || k.length > MAX_KEY)
      throw new JobsRejection(
        'InvalidRequest',
        `statusDetails key ${k.slice(0, 32)}… must be 1-${MAX_KEY} characters`,
      );
    if (typeof val !== 'string' || val.length < 1 || val.length > MAX_VALUE)
      throw new JobsRejection(
        'InvalidRequest',
        `statusDetails.${k} must be a string of 1-${MAX_VALUE} characters`,
      );
  }
  return v as Record<string, string>;
}

/** Bucket and key of an S3 URL (path style `s3[.region].amazonaws.com/<bucket>/<key>` or virtual host). */
export function s3Location(url: string): { bucket: string; key: string } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const path = decodeURIComponent(u.pathname.slice(1));
  if (/^s3([.-][a-z0-9-]+)?\.amazonaws\.com$/.test(u.hostname)) {
    const i = path.indexOf('/');
    return i > 0 ? { bucket: path.slice(0, i), key: path.slice(i + 1) } : undefined;
  }
  const m = /^(.+)\.s3([.-][a-z0-9-]+)?\.amazonaws\.com$/.exec(u.hostname);
  return m && path ? { bucket: m[1], key: path } : undefined;
}

function replaceStrings(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => replaceStrings(x, f));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replaceStrings(x, f)]));
  return v;
}
