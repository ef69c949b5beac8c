/**
 * IoT Jobs control-plane operations, served by the lab's Jobs emulation (`../jobs`):
 * CreateJob, DescribeJob, ListJobs, UpdateJob, AssociateTargetsWithJob, CancelJob, DeleteJob, GetJobDocument,
 * ListJobExecutionsForJob, ListJobExecutionsForThing, DescribeJobExecution, CancelJobExecution,
 * CreateJobTemplate, DescribeJobTemplate, ListJobTemplates, DeleteJobTemplate, and the account's
 * event configuration (DescribeEventConfigurations, UpdateEventConfigurations), which switches the
 * job and job-execution events on and off.
 */
import { IotError } from '../errors';
import { jobsServiceOf, type CreateJobInput, type JobsService } from '../jobs';
import type { JobExecutionRecord, JobRecord, JobTemplateRecord } from '../jobs/types';
import { page } from './fields';
import type { ControlPlaneDeps, Router } from './router';

const EVENT_TYPES = [
  'THING',
  'THING_GROUP',
  'THING_TYPE',
  'THING_GROUP_MEMBERSHIP',
  'THING_GROUP_HIERARCHY',
  'THING_TYPE_ASSOCIATION',
  'JOB',
  'JOB_EXECUTION',
  'POLICY',
  'CERTIFICATE',
  'CA_CERTIFICATE',
];

const sec = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / 1000);

function jobOut(svc: JobsService, j: JobRecord): Record<string, unknown> {
  return {
    jobArn: j.jobArn,
    jobId: j.jobId,
    targetSelection: j.targetSelection,
    status: j.status,
    forceCanceled: j.forceCanceled ?? false,
    reasonCode: j.reasonCode,
    comment: j.comment,
    targets: j.targets,
    description: j.description,
    presignedUrlConfig: j.presignedUrlConfig,
    jobExecutionsRolloutConfig: j.jobExecutionsRolloutConfig,
    abortConfig: j.abortConfig,
    createdAt: sec(j.createdAt),
    lastUpdatedAt: sec(j.lastUpdatedAt),
    completedAt: sec(j.completedAt),
    jobProcessDetails: svc.processDetails(j),
    timeoutConfig: j.timeoutConfig,
    jobExecutionsRetryConfig: j.jobExecutionsRetryConfig,
    jobTemplateArn: j.jobTemplateArn,
    schedulingConfig: j.schedulingConfig,
    destinationPackageVersions: j.destinationPackageVersions,
    isConcurrent: false,
  };
}

function jobSummary(j: JobRecord): Record<string, unknown> {
  return {
    jobArn: j.jobArn,
    jobId: j.jobId,
    targetSelection: j.targetSelection,
    status: j.status,
    isConcurrent: false,
    createdAt: sec(j.createdAt),
    lastUpdatedAt: sec(j.lastUpdatedAt),
    completedAt: sec(j.completedAt),
  };
}

function executionSummary(e: JobExecutionRecord): Record<string, unknown> {
  return {
    status: e.status,
    queuedAt: sec(e.queuedAt),
    startedAt: sec(e.startedAt),
    lastUpdatedAt: sec(e.lastUpdatedAt),
    executionNumber: e.executionNumber,
    retryAttempt: e.retryAttempt,
  };
}

function executionOut(svc: JobsService, e: JobExecutionRecord): Record<string, unknown> {
  const due = Math.min(e.stepDeadline ?? Infinity, e.inProgressDeadline ?? Infinity);
  return {
    jobId: e.jobId,
    status: e.status,
    forceCanceled: e.forceCanceled ?? false,
    statusDetails: { detailsMap: e.statusDetails },
    thingArn: e.thingArn,
    queuedAt: sec(e.queuedAt),
    startedAt: sec(e.startedAt),
    lastUpdatedAt: sec(e.lastUpdatedAt),
    executionNumber: e.executionNumber,
    versionNumber: e.versionNumber,
    approximateSecondsBeforeTimedOut:
      due === Infinity ? undefined : Math.max(0, Math.round((due - svc.now()) / 1000)),
  };
}

function templateOut(t: JobTemplateRecord): Record<string, unknown> {
  return {
    jobTemplateArn: t.jobTemplateArn,
    jobTemplateId: t.jobTemplateId,
    description: t.description,
    documentSource: t.documentSource,
    document: t.document,
    createdAt: sec(t.createdAt),
    presignedUrlConfig: t.presignedUrlConfig,
    jobExecutionsRolloutConfig: t.jobExecutionsRolloutConfig,
    abortConfig: t.abortConfig,
    timeoutConfig: t.timeoutConfig,
    jobExecutionsRetryConfig: t.jobExecutionsRetryConfig,
    maintenanceWindows: t.maintenanceWindows,
    destinationPackageVersions: t.destinationPackageVersions,
  };
}

const bool = (v: string | null): boolean => v === 'true';

export function registerJobOperations(router: Router, deps: ControlPlaneDeps): void {
  const svc = (): JobsService => {
    const s = jobsServiceOf(deps.registry);
    if (!s) throw new IotError('ServiceUnavailableException', 503, 'The lab Jobs service is not running');
    return s;
  };

  router.add('CreateJob', 'PUT', '/jobs/{jobId}', async ({ params, body }) => {
    const j = await svc().createJob(params.jobId, body as CreateJobInput);
    return { jobArn: j.jobArn, jobId: j.jobId, description: j.description };
  });
  router.add('DescribeJob', 'GET', '/jobs/{jobId}', ({ params }) => {
    const s = svc();
    const j = s.getJob(params.jobId);
    return { documentSource: j.documentSource, job: jobOut(s, j) };
  });
  router.add('UpdateJob', 'PATCH', '/jobs/{jobId}', ({ params, body }) => {
    svc().updateJob(params.jobId, body);
    return {};
  });
  router.add('AssociateTargetsWithJob', 'POST', '/jobs/{jobId}/targets', ({ params, body }) => {
    const targets = Array.isArray(body.targets) ? (body.targets as string[]) : [];
    const j = svc().associateTargets(
      params.jobId,
      targets,
      typeof body.comment === 'string' ? body.comment : undefined,
    );
    return { jobArn: j.jobArn, jobId: j.jobId, description: j.description };
  });
  router.add('GetJobDocument', 'GET', '/jobs/{jobId}/job-document', ({ params, query }) => {
    const j = svc().getJob(params.jobId);
    return { document: bool(query.get('beforeSubstitution')) ? j.documentBeforeSubstitution : j.document };
  });
  router.add('ListJobs', 'GET', '/jobs', ({ query }) => {
    const s = svc();
    s.tick();
    const group = query.get('thingGroupName');
    const jobs = [...s.jobs.values()].filter(
      (j) =>
        (!query.get('status') || j.status === query.get('status')) &&
        (!query.get('targetSelection') || j.targetSelection === query.get('targetSelection')) &&
        (!group || j.targets.includes(s.arn(`thinggroup/${group}`))),
    );
    const p = page(jobs, query.get('nextToken'), query.get('maxResults'));
    return { jobs: p.items.map(jobSummary), nextToken: p.next };
  });
  router.add('CancelJob', 'PUT', '/jobs/{jobId}/cancel', ({ params, query, body }) => {
    const j = svc().cancelJob(params.jobId, {
      force: bool(query.get('force')),
      reasonCode: typeof body.reasonCode === 'string' ? body.reasonCode : undefined,
      comment: typeof body.comment === 'string' ? body.comment : undefined,
    });
    return { jobArn: j.jobArn, jobId: j.jobId, description: j.description };
  });
  router.add('DeleteJob', 'DELETE', '/jobs/{jobId}', ({ params, query }) => {
    svc().deleteJob(params.jobId, bool(query.get('force')));
    return {};
  });
  router.add('ListJobExecutionsForJob', 'GET', '/jobs/{jobId}/things', ({ params, query }) => {
    const s = svc();
    const all = s.latestExecutions(s.getJob(params.jobId), query.get('status'));
    const p = page(all, query.get('nextToken'), query.get('maxResults'));
    return {
      executionSummaries: p.items.map((e) => ({
        thingArn: e.thingArn,
        jobExecutionSummary: executionSummary(e),
      })),
      nextToken: p.next,
    };
  });
  router.add('ListJobExecutionsForThing', 'GET', '/things/{thingName}/jobs', ({ params, query }) => {
    deps.registry.getThing(params.thingName);
    const status = query.get('status');
    const all = svc()
      .executionsForThing(params.thingName)
      .filter((e) => !status || e.status === status);
    const p = page(all, query.get('nextToken'), query.get('maxResults'));
    return {
      executionSummaries: p.items.map((e) => ({ jobId: e.jobId, jobExecutionSummary: executionSummary(e) })),
      nextToken: p.next,
    };
  });
  router.add('DescribeJobExecution', 'GET', '/things/{thingName}/jobs/{jobId}', ({ params, query }) => {
    const s = svc();
    const n = query.get('executionNumber');
    return {
      execution: executionOut(s, s.getExecution(params.jobId, params.thingName, n ? Number(n) : undefined)),
    };
  });
  router.add(
    'CancelJobExecution',
    'PUT',
    '/things/{thingName}/jobs/{jobId}/cancel',
    ({ params, query, body }) => {
      svc().cancelExecution(params.jobId, params.thingName, {
        force: bool(query.get('force')),
        expectedVersion: typeof body.expectedVersion === 'number' ? body.expectedVersion : undefined,
        statusDetails: body.statusDetails as Record<string, string> | undefined,
      });
      return {};
    },
  );

  router.add('CreateJobTemplate', 'PUT', '/job-templates/{jobTemplateId}', ({ params, body }) => {
    const t = svc().createJobTemplate(params.jobTemplateId, body);
    return { jobTemplateArn: t.jobTemplateArn, jobTemplateId: t.jobTemplateId };
  });
  router.add('DescribeJobTemplate', 'GET', '/job-templates/{jobTemplateId}', ({ params }) =>
    templateOut(svc().getJobTemplate(params.jobTemplateId)),
  );
  router.add('ListJobTemplates', 'GET', '/job-templates', ({ query }) => {
    const p = page([...svc().templates.values()], query.get('nextToken'), query.get('maxResults'));
    return {
      jobTemplates: p.items.map((t) => ({
        jobTemplateArn: t.jobTemplateArn,
        jobTemplateId: t.jobTemplateId,
        description: t.description,
        createdAt: sec(t.createdAt),
      })),
      nextToken: p.next,
    };
  });
  router.add('DeleteJobTemplate', 'DELETE', '/job-templates/{jobTemplateId}', ({ params }) => {
    svc().deleteJobTemplate(params.jobTemplateId);
    return {};
  });

  router.add('DescribeEventConfigurations', 'GET', '/event-configurations', () => {
    const s = svc();
    return {
      eventConfigurations: Object.fromEntries(
        EVENT_TYPES.map((t) => [t, { Enabled: s.eventConfigurations.get(t) === true }]),
      ),
      creationDate: sec(s.eventConfigurationsCreatedAt),
      lastModifiedDate: sec(s.eventConfigurationsModified ?? s.eventConfigurationsCreatedAt),
    };
  });
  router.add('UpdateEventConfigurations', 'PATCH', '/event-configurations', ({ body }) => {
    const s = svc();
    const cfg = (body.eventConfigurations ?? {}) as Record<string, { Enabled?: boolean }>;
    for (const [type, v] of Object.entries(cfg)) {
      if (!EVENT_TYPES.includes(type))
        throw new IotError('InvalidRequestException', 400, `Unknown event type ${type}`);
      if (typeof v?.Enabled === 'boolean') s.eventConfigurations.set(type, v.Enabled);
    }
    s.eventConfigurationsModified = s.now();
    return {};
  });
}
