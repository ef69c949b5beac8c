/**
 * The AWS IoT control-plane calls the rollout controller makes (REST-JSON, SigV4 service `iot`):
 * CreateJob, DescribeJob, ListJobExecutionsForJob, CancelJob, GetPackageVersion, and
 * CreateThingGroup / AddThingToThingGroup for a stage of more than 100 things. Signed with the AWS
 * SDK's own signer and HTTP handler, as lambda/shared/iot-certificates.ts and
 * lambda/ota/iot-event-configurations.ts do, because `@aws-sdk/client-iot` would put the bundle
 * over its budget. The endpoint follows the SDK's rules, `AWS_ENDPOINT_URL_IOT` included.
 */
import { HttpRequest } from '@smithy/core/protocols';
import { NodeHttpHandler, streamCollector } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import type { JobStatus } from '../../core/rollout';
import type { ExecutionStatus } from '../../core/rollout-ledger';
import {
  iotEndpoint,
  IotRequestError,
  isRetryable,
  type SdkClientSettings,
} from '../shared/iot-certificates';
import { backoffMs, Sha256, sleep } from '../shared/sigv4';

export interface IotJobsOptions {
  handler: NodeHttpHandler;
  settings: SdkClientSettings;
  /** Total attempts including the first (throttling, server and network errors only). */
  maxAttempts: number;
  env?: Record<string, string | undefined>;
}

/** One execution as ListJobExecutionsForJob summarises it (times in epoch ms). */
export interface ExecutionSummary {
  thing: string;
  status: ExecutionStatus;
  executionNumber: number;
  retryAttempt?: number;
  startedAt?: number;
  lastUpdatedAt?: number;
}

/** The CreateJob request body (targets are ARNs). */
export interface CreateJobRequest {
  targets: string[];
  document?: string;
  description?: string;
  jobTemplateArn?: string;
  targetSelection?: 'SNAPSHOT' | 'CONTINUOUS';
  destinationPackageVersions?: string[];
  jobExecutionsRolloutConfig?: unknown;
  abortConfig?: unknown;
  timeoutConfig?: unknown;
  jobExecutionsRetryConfig?: unknown;
  schedulingConfig?: unknown;
}

export interface IotJobsApi {
  /** Job status, or undefined when AWS IoT does not know the job. */
  describeJob(jobId: string): Promise<JobStatus | undefined>;
  listExecutions(jobId: string): Promise<ExecutionSummary[]>;
  /** Creates the job; false when a job with that id exists already (a repeated pass). */
  createJob(jobId: string, request: CreateJobRequest): Promise<boolean>;
  cancelJob(jobId: string, force: boolean, reasonCode: string, comment: string): Promise<void>;
  /** The package version's attributes, or undefined when it does not exist. */
  getPackageVersion(
    packageName: string,
    versionName: string,
  ): Promise<{ attributes: Record<string, string>; status: string; arn: string } | undefined>;
  /** Creates a static thing group (an existing one is reused) and adds the things to it. */
  ensureThingGroup(name: string, things: readonly string[]): Promise<string>;
}

const toMs = (seconds: unknown) => (typeof seconds === 'number' ? Math.round(seconds * 1000) : undefined);

export function createIotJobsApi(opts: IotJobsOptions): IotJobsApi {
  const signer = new SignatureV4({
    service: 'iot',
    region: opts.settings.region,
    credentials: opts.settings.credentials,
    sha256: Sha256,
  });
  let endpoint: Promise<URL> | undefined;

  async function once(
    operation: string,
    method: string,
    path: string,
    query: Record<string, string> = {},
    body?: unknown,
  ): Promise<unknown> {
    endpoint ??= iotEndpoint(opts.settings, opts.env);
    const url = await endpoint.catch((err: unknown) => {
      endpoint = undefined;
      throw err;
    });
    const text = body === undefined ? undefined : JSON.stringify(body);
    const request = new HttpRequest({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: `${url.pathname.replace(/\/$/, '')}${path}`,
      query,
      headers: {
        host: url.host,
        accept: 'application/json',
        ...(text === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: text,
    });
    const signed = await signer.sign(request);
    const { response } = await opts.handler.handle(signed as HttpRequest);
    const raw = Buffer.from(await streamCollector(response.body)).toString('utf8');
    if (response.statusCode >= 200 && response.statusCode < 300) return raw ? JSON.parse(raw) : {};
    const errorType = String(response.headers['x-amzn-errortype'] ?? '').split(':')[0] || 'UnknownError';
    let message = raw.slice(0, 200);
    try {
      message = String((JSON.parse(raw) as { message?: unknown }).message ?? message);
    } catch {
      // not JSON: keep the raw text
    }
    throw new IotRequestError(
      response.statusCode,
      errorType,
      `AWS IoT ${operation} answered ${response.statusCode} ${errorType}: ${message}`,
    );
  }

  async function call(...args: Parameters<typeof once>): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(...args);
      } catch (err) {
        if (!isRetryable(err) || attempt >= opts.maxAttempts) throw err;
        await sleep(backoffMs(attempt));
      }
    }
  }

  const isType = (err: unknown, type: string) => err instanceof IotRequestError && err.errorType === type;
  const job = (id: string) => `/jobs/${encodeURIComponent(id)}`;

  return {
    async describeJob(jobId) {
      try {
        const out = (await call('DescribeJob', 'GET', job(jobId))) as { job?: { status?: JobStatus } };
        return out.job?.status;
      } catch (err) {
        if (isType(err, 'ResourceNotFoundException')) return undefined;
        throw err;
      }
    },

    async listExecutions(jobId) {
      const all: ExecutionSummary[] = [];
      let nextToken: string | undefined;
      do {
        const out = (await call('ListJobExecutionsForJob', 'GET', `${job(jobId)}/things`, {
          maxResults: '250',
          ...(nextToken ? { nextToken } : {}),
        })) as {
          executionSummaries?: {
            thingArn?: string;
            jobExecutionSummary?: Record<string, unknown>;
          }[];
          nextToken?: string;
        };
        for (const s of out.executionSummaries ?? []) {
          const e = s.jobExecutionSummary ?? {};
          all.push({
            thing: String(s.thingArn ?? '')
              .split('/')
              .pop() as string,
            status: e.status as ExecutionStatus,
            executionNumber: Number(e.executionNumber ?? 0),
            retryAttempt: typeof e.retryAttempt === 'number' ? e.retryAttempt : undefined,
            startedAt: toMs(e.startedAt),
            lastUpdatedAt: toMs(e.lastUpdatedAt),
          });
        }
        nextToken = out.nextToken;
      } while (nextToken);
      return all;
    },

    async createJob(jobId, request) {
      try {
        await call('CreateJob', 'PUT', job(jobId), {}, request);
        return true;
      } catch (err) {
        if (isType(err, 'ResourceAlreadyExistsException')) return false;
        throw err;
      }
    },

    async cancelJob(jobId, force, reasonCode, comment) {
      try {
        await call('CancelJob', 'PUT', `${job(jobId)}/cancel`, force ? { force: 'true' } : {}, {
          reasonCode,
          comment,
        });
      } catch (err) {
        // Cancelling a job that is already canceled or completed is done.
        if (isType(err, 'InvalidRequestException') || isType(err, 'ResourceNotFoundException')) return;
        throw err;
      }
    },

    async getPackageVersion(packageName, versionName) {
      try {
        const out = (await call(
          'GetPackageVersion',
          'GET',
          `/packages/${encodeURIComponent(packageName)}/versions/${encodeURIComponent(versionName)}`,
        )) as { attributes?: Record<string, string>; status?: string; packageVersionArn?: string };
        return {
          attributes: out.attributes ?? {},
          status: out.status ?? 'DRAFT',
          arn: out.packageVersionArn ?? '',
        };
      } catch (err) {
        if (isType(err, 'ResourceNotFoundException')) return undefined;
        throw err;
      }
    },

    async ensureThingGroup(name, things) {
      let arn: string;
      try {
        const out = (await call(
          'CreateThingGroup',
          'POST',
          `/thing-groups/${encodeURIComponent(name)}`,
          {},
          {},
        )) as {
          thingGroupArn?: string;
        };
        arn = out.thingGroupArn ?? '';
      } catch (err) {
        if (!isType(err, 'ResourceAlreadyExistsException')) throw err;
        const out = (await call(
          'DescribeThingGroup',
          'GET',
          `/thing-groups/${encodeURIComponent(name)}`,
        )) as {
          thingGroupArn?: string;
        };
        arn = out.thingGroupArn ?? '';
      }
      for (const thingName of things) {
        await call(
          'AddThingToThingGroup',
          'PUT',
          '/thing-groups/addThingToThingGroup',
          {},
          {
            thingGroupName: name,
            thingName,
          },
        );
      }
      return arn;
    },
  };
}
