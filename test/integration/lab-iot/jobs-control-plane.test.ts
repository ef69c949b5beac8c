/**
 * AWS IoT Jobs in the lab through the real @aws-sdk/client-iot: every served operation, and the
 * rollout, abort, timeout, retry, cancel and event semantics. Time is a fake clock moved by the
 * test (`jobs.tick()` applies what is due), so minute-scale behaviour needs no waiting.
 */
import {
  AddThingToThingGroupCommand,
  AssociateTargetsWithJobCommand,
  CancelJobCommand,
  CancelJobExecutionCommand,
  CreateJobCommand,
  CreateJobTemplateCommand,
  CreatePackageCommand,
  CreatePackageVersionCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteJobCommand,
  DeleteJobTemplateCommand,
  DescribeEventConfigurationsCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeJobTemplateCommand,
  GetJobDocumentCommand,
  ListJobExecutionsForJobCommand,
  ListJobExecutionsForThingCommand,
  ListJobsCommand,
  ListJobTemplatesCommand,
  RemoveThingFromThingGroupCommand,
  UpdateEventConfigurationsCommand,
  UpdateJobCommand,
  UpdatePackageVersionCommand,
  type IoTClient,
  type Job,
} from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore, IotJobsApi } from '../../../lab/iot';
import {
  arn,
  collect,
  connect,
  devicePolicy,
  endAll,
  fakeClock,
  flush,
  identity,
  jobsDevice,
  jobsRequest,
  nextMessage,
  openPolicy,
  startCore,
  stopCore,
  subscribe,
} from './helpers';

const MINUTE = 60_000;
const clock = fakeClock();
let core: IotCore & { jobs: IotJobsApi };
let iot: IoTClient;
const open: MqttClient[] = [];
let n = 0;

const DOC = JSON.stringify({ operation: 'firmware-update', version: '2.0.0' });

beforeAll(async () => {
  const started = await startCore({ clock: clock.now, jobsTickMs: 0 });
  core = started.core as IotCore & { jobs: IotJobsApi };
  iot = started.iot;
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putPolicy('monitor', openPolicy());
});
afterEach(() => endAll(open));
afterAll(() => stopCore(core, iot));

/** `count` new things (no connection), named after the test. */
async function things(count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `t${++n}`;
    await iot.send(new CreateThingCommand({ thingName: name }));
    names.push(name);
  }
  return names;
}

/** A connected device for a new thing. */
async function device(): Promise<{ name: string; c: MqttClient }> {
  const name = `d${++n}`;
  const c = await jobsDevice(core, iot, name);
  open.push(c);
  return { name, c };
}

async function job(jobId: string): Promise<Job> {
  return (await iot.send(new DescribeJobCommand({ jobId }))).job as Job;
}

async function statuses(jobId: string): Promise<Record<string, string>> {
  const r = await iot.send(new ListJobExecutionsForJobCommand({ jobId }));
  const out: Record<string, string> = {};
  for (const s of r.executionSummaries ?? [])
    out[(s.thingArn as string).split('/').pop() as string] = s.jobExecutionSummary?.status as string;
  return out;
}

async function update(d: { name: string; c: MqttClient }, jobId: string, body: Record<string, unknown>) {
  return jobsRequest(d.c, d.name, `${jobId}/update`, body);
}

/** A package version with `attributes`, PUBLISHED unless `publish` is false; returns its ARN. */
async function packageVersion(
  packageName: string,
  versionName: string,
  attributes: Record<string, string>,
  publish = true,
): Promise<string> {
  await iot.send(new CreatePackageCommand({ packageName })).catch(() => undefined);
  const v = await iot.send(new CreatePackageVersionCommand({ packageName, versionName, attributes }));
  if (publish)
    await iot.send(new UpdatePackageVersionCommand({ packageName, versionName, action: 'PUBLISH' }));
  return v.packageVersionArn as string;
}

test('CreateJob, DescribeJob, ListJobs, executions listing with status filter and pages, DescribeJobExecution, GetJobDocument, DeleteJob', async () => {
  const [a, b, c] = await things(3);
  await packageVersion('fw', '2.0.0', {});
  await iot.send(new CreateThingGroupCommand({ thingGroupName: 'crud-group' }));
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'crud-group', thingName: b }));
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'crud-group', thingName: c }));
  const created = await iot.send(
    new CreateJobCommand({
      jobId: 'crud-1',
      targets: [arn(`thing/${a}`), arn('thinggroup/crud-group')],
      document: DOC,
      description: 'crud',
      destinationPackageVersions: [arn('package/fw/version/2.0.0')],
    }),
  );
  expect(created).toEqual(expect.objectContaining({ jobId: 'crud-1', jobArn: arn('job/crud-1') }));
  const j = await job('crud-1');
  expect(j).toEqual(
    expect.objectContaining({
      status: 'IN_PROGRESS',
      targetSelection: 'SNAPSHOT',
      destinationPackageVersions: [arn('package/fw/version/2.0.0')],
    }),
  );
  expect(j.jobProcessDetails).toEqual(
    expect.objectContaining({ numberOfQueuedThings: 3, numberOfSucceededThings: 0 }),
  );
  expect((await iot.send(new GetJobDocumentCommand({ jobId: 'crud-1' }))).document).toBe(DOC);
  expect(
    (await iot.send(new ListJobsCommand({ status: 'IN_PROGRESS' }))).jobs?.map((x) => x.jobId),
  ).toContain('crud-1');
  expect(
    (await iot.send(new ListJobsCommand({ thingGroupName: 'crud-group' }))).jobs?.map((x) => x.jobId),
  ).toEqual(['crud-1']);

  const page1 = await iot.send(new ListJobExecutionsForJobCommand({ jobId: 'crud-1', maxResults: 2 }));
  expect(page1.executionSummaries).toHaveLength(2);
  const page2 = await iot.send(
    new ListJobExecutionsForJobCommand({ jobId: 'crud-1', maxResults: 2, nextToken: page1.nextToken }),
  );
  expect(page2.executionSummaries).toHaveLength(1);
  expect(page2.nextToken).toBeUndefined();
  expect(
    (await iot.send(new ListJobExecutionsForJobCommand({ jobId: 'crud-1', status: 'SUCCEEDED' })))
      .executionSummaries,
  ).toEqual([]);

  const e = (await iot.send(new DescribeJobExecutionCommand({ jobId: 'crud-1', thingName: a }))).execution;
  expect(e).toEqual(
    expect.objectContaining({
      jobId: 'crud-1',
      status: 'QUEUED',
      executionNumber: 1,
      thingArn: arn(`thing/${a}`),
    }),
  );
  expect(
    (await iot.send(new ListJobExecutionsForThingCommand({ thingName: a }))).executionSummaries?.map(
      (s) => s.jobId,
    ),
  ).toEqual(['crud-1']);

  await expect(iot.send(new DeleteJobCommand({ jobId: 'crud-1' }))).rejects.toThrow(/force/);
  await iot.send(new DeleteJobCommand({ jobId: 'crud-1', force: true }));
  await expect(iot.send(new DescribeJobCommand({ jobId: 'crud-1' }))).rejects.toMatchObject({
    name: 'ResourceNotFoundException',
  });
});

test('CreateJob refuses bad input with the field named', async () => {
  const [a] = await things(1);
  const targets = [arn(`thing/${a}`)];
  await expect(iot.send(new CreateJobCommand({ jobId: 'bad id', targets, document: DOC }))).rejects.toThrow(
    /jobId/,
  );
  await expect(iot.send(new CreateJobCommand({ jobId: 'bad-1', targets, document: '{' }))).rejects.toThrow(
    /JSON/,
  );
  await expect(
    iot.send(
      new CreateJobCommand({
        jobId: 'bad-2',
        targets,
        document: DOC,
        jobExecutionsRolloutConfig: { maximumPerMinute: 5000 },
      }),
    ),
  ).rejects.toThrow(/maximumPerMinute/);
  await expect(
    iot.send(new CreateJobCommand({ jobId: 'bad-3', targets: [arn('thing/nope')], document: DOC })),
  ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  await iot.send(new CreateJobCommand({ jobId: 'dup-1', targets, document: DOC }));
  await expect(
    iot.send(new CreateJobCommand({ jobId: 'dup-1', targets, document: DOC })),
  ).rejects.toMatchObject({
    name: 'ResourceAlreadyExistsException',
  });
});

test('package substitution parameters are filled from the destination package version at creation', async () => {
  const [a] = await things(1);
  const attr = (k: string): string => `\${aws:iot:package::version::attributes:${k}}`;
  const document = JSON.stringify({
    operation: 'firmware-update',
    version: attr('version'),
    image: {
      url: `\${aws:iot:s3-presigned-url:https://s3.amazonaws.com/${attr('s3Bucket')}/${attr('s3Key')}}`,
      note: attr('note'),
    },
  });
  const published = await packageVersion('fw-sub', '3.0.0', {
    version: '3.0.0',
    s3Bucket: 'fw-bucket',
    s3Key: 'fw/3.0.0.bin',
    note: 'say "hi"',
  });
  await iot.send(
    new CreateJobCommand({
      jobId: 'subst-1',
      targets: [arn(`thing/${a}`)],
      document,
      destinationPackageVersions: [published],
    }),
  );
  const got = JSON.parse(
    (await iot.send(new GetJobDocumentCommand({ jobId: 'subst-1' }))).document as string,
  ) as {
    version: string;
    image: { url: string; note: string };
  };
  expect(got).toEqual({
    operation: 'firmware-update',
    version: '3.0.0',
    image: {
      url: '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/fw-bucket/fw/3.0.0.bin}',
      note: 'say "hi"',
    },
  });
  expect(
    (await iot.send(new GetJobDocumentCommand({ jobId: 'subst-1', beforeSubstitution: true }))).document,
  ).toBe(document);

  const draft = await packageVersion('fw-sub', '3.1.0', { version: '3.1.0' }, false);
  await expect(
    iot.send(
      new CreateJobCommand({
        jobId: 'subst-2',
        targets: [arn(`thing/${a}`)],
        document,
        destinationPackageVersions: [draft],
      }),
    ),
  ).rejects.toThrow(/DRAFT: publish it/);
  await expect(
    iot.send(new CreateJobCommand({ jobId: 'subst-3', targets: [arn(`thing/${a}`)], document })),
  ).rejects.toThrow(/exactly one destinationPackageVersions/);
  const sparse = await packageVersion('fw-sub', '3.2.0', { version: '3.2.0' });
  await expect(
    iot.send(
      new CreateJobCommand({
        jobId: 'subst-4',
        targets: [arn(`thing/${a}`)],
        document,
        destinationPackageVersions: [sparse],
      }),
    ),
  ).rejects.toThrow(/no attribute s3Bucket/);
});

test('job templates: create, describe, list, delete; CreateJob from a template merges its configs; the cdk.out loader path', async () => {
  await iot.send(
    new CreateJobTemplateCommand({
      jobTemplateId: 'canary-tpl',
      description: 'canary stage',
      document: DOC,
      jobExecutionsRolloutConfig: { maximumPerMinute: 10 },
      abortConfig: {
        criteriaList: [
          { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 20, minNumberOfExecutedThings: 5 },
        ],
      },
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
      presignedUrlConfig: { expiresInSec: 600 },
    }),
  );
  const t = await iot.send(new DescribeJobTemplateCommand({ jobTemplateId: 'canary-tpl' }));
  expect(t).toEqual(
    expect.objectContaining({
      jobTemplateArn: arn('jobtemplate/canary-tpl'),
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      document: DOC,
    }),
  );
  const fromCfn = core.jobs.putJobTemplateFromCloudFormation({
    JobTemplateId: 'broad-tpl',
    Description: 'broad stage',
    Document: DOC,
    JobExecutionsRolloutConfig: {
      ExponentialRolloutRate: {
        BaseRatePerMinute: 5,
        IncrementFactor: 2,
        RateIncreaseCriteria: { NumberOfSucceededThings: 10 },
      },
      MaximumPerMinute: 100,
    },
    JobExecutionsRetryConfig: { RetryCriteriaList: [{ FailureType: 'FAILED', NumberOfRetries: 2 }] },
  });
  expect(fromCfn.jobTemplateArn).toBe(arn('jobtemplate/broad-tpl'));
  const broad = await iot.send(new DescribeJobTemplateCommand({ jobTemplateId: 'broad-tpl' }));
  expect(broad.jobExecutionsRolloutConfig?.exponentialRate?.rateIncreaseCriteria).toEqual({
    numberOfSucceededThings: 10,
  });
  expect(broad.jobExecutionsRetryConfig).toEqual({
    criteriaList: [{ failureType: 'FAILED', numberOfRetries: 2 }],
  });
  const listed = await iot.send(new ListJobTemplatesCommand({}));
  expect(listed.jobTemplates?.map((x) => x.jobTemplateId)).toEqual(
    expect.arrayContaining(['canary-tpl', 'broad-tpl']),
  );

  const [a] = await things(1);
  await iot.send(
    new CreateJobCommand({
      jobId: 'from-tpl',
      targets: [arn(`thing/${a}`)],
      jobTemplateArn: t.jobTemplateArn,
      timeoutConfig: { inProgressTimeoutInMinutes: 15 },
    }),
  );
  const j = await job('from-tpl');
  expect(j).toEqual(
    expect.objectContaining({
      jobTemplateArn: arn('jobtemplate/canary-tpl'),
      description: 'canary stage',
      jobExecutionsRolloutConfig: { maximumPerMinute: 10 },
      timeoutConfig: { inProgressTimeoutInMinutes: 15 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
    }),
  );
  expect((await iot.send(new GetJobDocumentCommand({ jobId: 'from-tpl' }))).document).toBe(DOC);
  await iot.send(new DeleteJobTemplateCommand({ jobTemplateId: 'broad-tpl' }));
  await expect(
    iot.send(new DescribeJobTemplateCommand({ jobTemplateId: 'broad-tpl' })),
  ).rejects.toMatchObject({
    name: 'ResourceNotFoundException',
  });
});

test('rollout maximumPerMinute: executions are queued only as the rate allows', async () => {
  const names = await things(5);
  await iot.send(
    new CreateJobCommand({
      jobId: 'rate-max',
      targets: names.map((x) => arn(`thing/${x}`)),
      document: DOC,
      jobExecutionsRolloutConfig: { maximumPerMinute: 2 },
    }),
  );
  expect(Object.keys(await statuses('rate-max'))).toEqual(names.slice(0, 2));
  clock.advance(MINUTE - 1);
  core.jobs.tick();
  expect(Object.keys(await statuses('rate-max'))).toHaveLength(2);
  clock.advance(1);
  core.jobs.tick();
  expect(Object.keys(await statuses('rate-max'))).toHaveLength(4);
  clock.advance(MINUTE);
  core.jobs.tick();
  expect(Object.keys(await statuses('rate-max'))).toEqual(names);
});

test('rollout exponentialRate: the rate grows by the factor each time the criterion is met', async () => {
  const names = await things(10);
  await iot.send(
    new CreateJobCommand({
      jobId: 'rate-exp',
      targets: names.map((x) => arn(`thing/${x}`)),
      document: DOC,
      jobExecutionsRolloutConfig: {
        maximumPerMinute: 1000,
        exponentialRate: {
          baseRatePerMinute: 1,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfNotifiedThings: 1 },
        },
      },
    }),
  );
  const counts: number[] = [Object.keys(await statuses('rate-exp')).length];
  for (let i = 0; i < 2; i++) {
    clock.advance(MINUTE);
    core.jobs.tick();
    counts.push(Object.keys(await statuses('rate-exp')).length);
  }
  // minute 0: rate 1; minute 1: 1 notified → rate 2; minute 2: 3 notified → rate 8 (capped by the 10 things)
  expect(counts).toEqual([1, 3, 10]);
});

test('abortConfig: the threshold cancels the job with a reason, QUEUED executions are canceled, IN_PROGRESS ones continue', async () => {
  const devs = [await device(), await device(), await device(), await device()];
  await iot.send(
    new CreateJobCommand({
      jobId: 'abort-1',
      targets: devs.map((d) => arn(`thing/${d.name}`)),
      document: DOC,
      abortConfig: {
        criteriaList: [
          { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 50, minNumberOfExecutedThings: 2 },
        ],
      },
    }),
  );
  expect((await jobsRequest(devs[0].c, devs[0].name, 'start-next')).outcome).toBe('accepted');
  expect((await update(devs[1], 'abort-1', { status: 'FAILED' })).outcome).toBe('accepted');
  expect((await job('abort-1')).status).toBe('IN_PROGRESS'); // 1 of 4 = 25 %
  expect((await update(devs[2], 'abort-1', { status: 'FAILED' })).outcome).toBe('accepted');
  const j = await job('abort-1');
  expect(j).toEqual(
    expect.objectContaining({ status: 'CANCELED', reasonCode: 'ABORT_CRITERIA_MET', forceCanceled: false }),
  );
  expect(await statuses('abort-1')).toEqual({
    [devs[0].name]: 'IN_PROGRESS',
    [devs[1].name]: 'FAILED',
    [devs[2].name]: 'FAILED',
    [devs[3].name]: 'CANCELED',
  });
  // the in-progress device may still finish
  expect((await update(devs[0], 'abort-1', { status: 'SUCCEEDED' })).outcome).toBe('accepted');
  expect((await job('abort-1')).jobProcessDetails).toEqual(
    expect.objectContaining({
      numberOfSucceededThings: 1,
      numberOfFailedThings: 2,
      numberOfCanceledThings: 1,
    }),
  );
});

test('timeouts: the in-progress timer and a step timer end in TIMED_OUT; a TIMED_OUT retry gets executionNumber 2', async () => {
  const [d1, d2] = [await device(), await device()];
  await iot.send(
    new CreateJobCommand({
      jobId: 'timeout-1',
      targets: [arn(`thing/${d1.name}`), arn(`thing/${d2.name}`)],
      document: DOC,
      timeoutConfig: { inProgressTimeoutInMinutes: 10 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
    }),
  );
  const started = await jobsRequest(d1.c, d1.name, 'start-next');
  expect((started.payload.execution as Record<string, unknown>).approximateSecondsBeforeTimedOut).toBe(600);
  // d2 sets a 2-minute step timer
  expect((await jobsRequest(d2.c, d2.name, 'start-next', { stepTimeoutInMinutes: 2 })).outcome).toBe(
    'accepted',
  );
  clock.advance(2 * MINUTE);
  core.jobs.tick();
  expect(await statuses('timeout-1')).toEqual({ [d1.name]: 'IN_PROGRESS', [d2.name]: 'QUEUED' });
  const first = await iot.send(
    new DescribeJobExecutionCommand({ jobId: 'timeout-1', thingName: d2.name, executionNumber: 1 }),
  );
  expect(first.execution?.status).toBe('TIMED_OUT');
  const retry = await iot.send(new DescribeJobExecutionCommand({ jobId: 'timeout-1', thingName: d2.name }));
  expect(retry.execution).toEqual(expect.objectContaining({ status: 'QUEUED', executionNumber: 2 }));
  const summary = await iot.send(
    new ListJobExecutionsForJobCommand({ jobId: 'timeout-1', status: 'QUEUED' }),
  );
  expect(summary.executionSummaries?.[0].jobExecutionSummary?.retryAttempt).toBe(1);

  clock.advance(8 * MINUTE);
  core.jobs.tick();
  // d1's 10-minute in-progress timer expired: TIMED_OUT, then its one retry
  expect(await statuses('timeout-1')).toEqual({ [d1.name]: 'QUEUED', [d2.name]: 'QUEUED' });
  // the retries time out too, and no retry is left
  for (const d of [d1, d2]) expect((await jobsRequest(d.c, d.name, 'start-next')).outcome).toBe('accepted');
  clock.advance(10 * MINUTE);
  core.jobs.tick();
  expect(await statuses('timeout-1')).toEqual({ [d1.name]: 'TIMED_OUT', [d2.name]: 'TIMED_OUT' });
  const j = await job('timeout-1');
  expect(j.status).toBe('COMPLETED');
  expect(j.jobProcessDetails).toEqual(expect.objectContaining({ numberOfTimedOutThings: 4 }));
});

test('retry on FAILED: a new execution with executionNumber + 1, up to numberOfRetries', async () => {
  const d = await device();
  await iot.send(
    new CreateJobCommand({
      jobId: 'retry-1',
      targets: [arn(`thing/${d.name}`)],
      document: DOC,
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: 1 }] },
    }),
  );
  expect((await update(d, 'retry-1', { status: 'FAILED' })).outcome).toBe('accepted');
  const got = await jobsRequest(d.c, d.name, 'start-next');
  expect(got.payload.execution).toEqual(
    expect.objectContaining({ jobId: 'retry-1', executionNumber: 2, status: 'IN_PROGRESS' }),
  );
  expect((await update(d, 'retry-1', { status: 'FAILED', executionNumber: 2 })).outcome).toBe('accepted');
  const j = await job('retry-1');
  expect(j.status).toBe('COMPLETED');
  expect(j.jobProcessDetails).toEqual(expect.objectContaining({ numberOfFailedThings: 2 }));
});

test('CancelJob: without force IN_PROGRESS continues; with force it is CANCELED and the device learns through notify-next', async () => {
  const [d1, d2] = [await device(), await device()];
  await iot.send(
    new CreateJobCommand({
      jobId: 'cancel-1',
      targets: [arn(`thing/${d1.name}`), arn(`thing/${d2.name}`)],
      document: DOC,
    }),
  );
  for (const d of [d1, d2]) expect((await jobsRequest(d.c, d.name, 'start-next')).outcome).toBe('accepted');
  await iot.send(new CancelJobCommand({ jobId: 'cancel-1', reasonCode: 'OPERATOR', comment: 'stop' }));
  expect(await job('cancel-1')).toEqual(
    expect.objectContaining({ status: 'CANCELED', reasonCode: 'OPERATOR', comment: 'stop' }),
  );
  expect(await statuses('cancel-1')).toEqual({ [d1.name]: 'IN_PROGRESS', [d2.name]: 'IN_PROGRESS' });
  expect((await update(d1, 'cancel-1', { status: 'SUCCEEDED' })).outcome).toBe('accepted');

  await subscribe(d2.c, `$aws/things/${d2.name}/jobs/notify-next`);
  const notified = nextMessage(d2.c, (t) => t.endsWith('/notify-next'));
  await iot.send(new CancelJobCommand({ jobId: 'cancel-1', force: true }));
  expect(JSON.parse((await notified).payload.toString())).not.toHaveProperty('execution');
  expect(await statuses('cancel-1')).toEqual({ [d1.name]: 'SUCCEEDED', [d2.name]: 'CANCELED' });
  expect((await job('cancel-1')).forceCanceled).toBe(true);
  const late = await update(d2, 'cancel-1', { status: 'SUCCEEDED' });
  expect(late.outcome).toBe('rejected');
  expect(late.payload).toEqual(expect.objectContaining({ code: 'InvalidStateTransition' }));
});

test('CancelJobExecution: IN_PROGRESS needs force; QUEUED does not', async () => {
  const [d1, d2] = [await device(), await device()];
  await iot.send(
    new CreateJobCommand({
      jobId: 'cancel-exec',
      targets: [arn(`thing/${d1.name}`), arn(`thing/${d2.name}`)],
      document: DOC,
    }),
  );
  await jobsRequest(d1.c, d1.name, 'start-next');
  await expect(
    iot.send(new CancelJobExecutionCommand({ jobId: 'cancel-exec', thingName: d1.name })),
  ).rejects.toMatchObject({ name: 'InvalidStateTransitionException' });
  await iot.send(new CancelJobExecutionCommand({ jobId: 'cancel-exec', thingName: d1.name, force: true }));
  await iot.send(new CancelJobExecutionCommand({ jobId: 'cancel-exec', thingName: d2.name }));
  expect(await statuses('cancel-exec')).toEqual({ [d1.name]: 'CANCELED', [d2.name]: 'CANCELED' });
  expect((await job('cancel-exec')).status).toBe('COMPLETED');
});

test('continuous job: a thing that joins the group later gets an execution, one that leaves is REMOVED', async () => {
  const [a, b] = await things(2);
  await iot.send(new CreateThingGroupCommand({ thingGroupName: 'cont-group' }));
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cont-group', thingName: a }));
  await iot.send(
    new CreateJobCommand({
      jobId: 'cont-1',
      targets: [arn('thinggroup/cont-group')],
      targetSelection: 'CONTINUOUS',
      document: DOC,
    }),
  );
  expect(await statuses('cont-1')).toEqual({ [a]: 'QUEUED' });
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cont-group', thingName: b }));
  expect(await statuses('cont-1')).toEqual({ [a]: 'QUEUED', [b]: 'QUEUED' });
  await iot.send(new RemoveThingFromThingGroupCommand({ thingGroupName: 'cont-group', thingName: a }));
  expect(await statuses('cont-1')).toEqual({ [a]: 'REMOVED', [b]: 'QUEUED' });
  await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cont-group', thingName: a }));
  const again = await iot.send(new DescribeJobExecutionCommand({ jobId: 'cont-1', thingName: a }));
  expect(again.execution).toEqual(expect.objectContaining({ status: 'QUEUED', executionNumber: 2 }));
  expect((await job('cont-1')).status).toBe('IN_PROGRESS');
});

test('schedulingConfig: SCHEDULED until startTime; endTime with CANCEL cancels', async () => {
  const [a] = await things(1);
  const at = (ms: number): string => new Date(ms).toISOString().slice(0, 16);
  const start = Math.ceil((clock.now() + 31 * MINUTE) / MINUTE) * MINUTE;
  await iot.send(
    new CreateJobCommand({
      jobId: 'sched-1',
      targets: [arn(`thing/${a}`)],
      document: DOC,
      schedulingConfig: { startTime: at(start), endTime: at(start + 60 * MINUTE), endBehavior: 'CANCEL' },
    }),
  );
  expect((await job('sched-1')).status).toBe('SCHEDULED');
  expect(await statuses('sched-1')).toEqual({});
  clock.advance(start - clock.now());
  core.jobs.tick();
  expect((await job('sched-1')).status).toBe('IN_PROGRESS');
  expect(await statuses('sched-1')).toEqual({ [a]: 'QUEUED' });
  clock.advance(60 * MINUTE);
  core.jobs.tick();
  expect(await job('sched-1')).toEqual(expect.objectContaining({ status: 'CANCELED' }));
  expect(await statuses('sched-1')).toEqual({ [a]: 'CANCELED' });
});

test('job events: off by default; UpdateEventConfigurations turns them on; payloads of completed, canceled and execution events', async () => {
  const monitorCreds = await identity(iot, 'monitor');
  const monitor = await connect(core, monitorCreds, 'jobs-monitor');
  open.push(monitor);
  await subscribe(monitor, ['$aws/events/job/#', '$aws/events/jobExecution/#', 'marker/events']);
  const got = collect(monitor);
  const ruleTopics: string[] = [];
  core.onMessage((m) => void (m.topic.startsWith('$aws/events/job') && ruleTopics.push(m.topic)));
  const d = await device();

  const before = await iot.send(new DescribeEventConfigurationsCommand({}));
  expect(before.eventConfigurations?.JOB).toEqual({ Enabled: false });
  await iot.send(
    new CreateJobCommand({ jobId: 'quiet-1', targets: [arn(`thing/${d.name}`)], document: DOC }),
  );
  await update(d, 'quiet-1', { status: 'SUCCEEDED' });
  await flush(core, monitor, 'marker/events');
  expect(got.filter((m) => m.topic.startsWith('$aws/events/job'))).toEqual([]);

  await iot.send(
    new UpdateEventConfigurationsCommand({
      eventConfigurations: { JOB: { Enabled: true }, JOB_EXECUTION: { Enabled: true } },
    }),
  );
  expect(
    (await iot.send(new DescribeEventConfigurationsCommand({}))).eventConfigurations?.JOB_EXECUTION,
  ).toEqual({
    Enabled: true,
  });
  await iot.send(new CreateJobCommand({ jobId: 'loud-1', targets: [arn(`thing/${d.name}`)], document: DOC }));
  await update(d, 'loud-1', { status: 'SUCCEEDED', statusDetails: { step: 'done' } });
  await iot.send(new CreateJobCommand({ jobId: 'loud-2', targets: [arn(`thing/${d.name}`)], document: DOC }));
  await update(d, 'loud-2', { status: 'FAILED' });
  const [e1] = await things(1);
  await iot.send(new CreateJobCommand({ jobId: 'loud-3', targets: [arn(`thing/${e1}`)], document: DOC }));
  await iot.send(new CancelJobCommand({ jobId: 'loud-3', reasonCode: 'BAD_RELEASE' }));
  await flush(core, monitor, 'marker/events');

  const events = got.filter((m) => m.topic.startsWith('$aws/events/job'));
  expect(events.map((m) => m.topic)).toEqual([
    '$aws/events/jobExecution/loud-1/succeeded',
    '$aws/events/job/loud-1/completed',
    '$aws/events/jobExecution/loud-2/failed',
    '$aws/events/job/loud-2/completed',
    '$aws/events/job/loud-3/cancellation_in_progress',
    '$aws/events/jobExecution/loud-3/canceled',
    '$aws/events/job/loud-3/canceled',
  ]);
  // the rules engine (onMessage listeners) sees the same events
  expect(ruleTopics).toEqual(events.map((m) => m.topic));
  const payload = (topic: string): Record<string, unknown> =>
    JSON.parse(events.find((m) => m.topic === topic)?.payload ?? '{}') as Record<string, unknown>;
  expect(payload('$aws/events/jobExecution/loud-1/succeeded')).toEqual(
    expect.objectContaining({
      eventType: 'JOB_EXECUTION',
      operation: 'succeeded',
      jobId: 'loud-1',
      thingArn: arn(`thing/${d.name}`),
      status: 'SUCCEEDED',
      statusDetails: { step: 'done' },
    }),
  );
  expect(payload('$aws/events/job/loud-1/completed')).toEqual(
    expect.objectContaining({
      eventType: 'JOB',
      operation: 'completed',
      status: 'COMPLETED',
      targetSelection: 'SNAPSHOT',
      jobProcessDetails: expect.objectContaining({ numberOfSucceededThings: 1 }),
    }),
  );
  expect(payload('$aws/events/job/loud-3/canceled')).toEqual(
    expect.objectContaining({ operation: 'canceled', status: 'CANCELED', reasonCode: 'BAD_RELEASE' }),
  );
  await iot.send(
    new UpdateEventConfigurationsCommand({
      eventConfigurations: { JOB: { Enabled: false }, JOB_EXECUTION: { Enabled: false } },
    }),
  );
});

test('UpdateJob changes the rollout rate from the next window and can tighten the abort config', async () => {
  const names = await things(6);
  await iot.send(
    new CreateJobCommand({
      jobId: 'update-1',
      targets: names.map((x) => arn(`thing/${x}`)),
      document: DOC,
      jobExecutionsRolloutConfig: { maximumPerMinute: 1 },
    }),
  );
  expect(Object.keys(await statuses('update-1'))).toHaveLength(1);
  await iot.send(
    new UpdateJobCommand({ jobId: 'update-1', jobExecutionsRolloutConfig: { maximumPerMinute: 3 } }),
  );
  expect(Object.keys(await statuses('update-1'))).toHaveLength(1);
  clock.advance(MINUTE);
  core.jobs.tick();
  expect(Object.keys(await statuses('update-1'))).toHaveLength(4);
  await expect(
    iot.send(new UpdateJobCommand({ jobId: 'update-1', timeoutConfig: { inProgressTimeoutInMinutes: 0 } })),
  ).rejects.toThrow(/inProgressTimeoutInMinutes/);
  await iot.send(new CancelJobCommand({ jobId: 'update-1' }));
  await expect(iot.send(new UpdateJobCommand({ jobId: 'update-1', description: 'late' }))).rejects.toThrow(
    /CANCELED/,
  );
});

test('AssociateTargetsWithJob adds targets to a continuous job only', async () => {
  const [a, b] = await things(2);
  await iot.send(
    new CreateJobCommand({
      jobId: 'assoc-1',
      targets: [arn(`thing/${a}`)],
      targetSelection: 'CONTINUOUS',
      document: DOC,
    }),
  );
  await iot.send(new AssociateTargetsWithJobCommand({ jobId: 'assoc-1', targets: [arn(`thing/${b}`)] }));
  expect(await statuses('assoc-1')).toEqual({ [a]: 'QUEUED', [b]: 'QUEUED' });
  expect((await job('assoc-1')).targets).toEqual([arn(`thing/${a}`), arn(`thing/${b}`)]);
  await iot.send(new CreateJobCommand({ jobId: 'assoc-2', targets: [arn(`thing/${a}`)], document: DOC }));
  await expect(
    iot.send(new AssociateTargetsWithJobCommand({ jobId: 'assoc-2', targets: [arn(`thing/${b}`)] })),
  ).rejects.toThrow(/CONTINUOUS/);
});
