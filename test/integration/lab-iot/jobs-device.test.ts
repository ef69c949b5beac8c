/**
 * The AWS IoT Jobs device MQTT API in the lab: the unmodified aws-iot-device-sdk-v2
 * IotJobsClient runs start-next → IN_PROGRESS → SUCCEEDED; raw mqtt.js requests get the
 * documented rejections; answers reach the requesting connection only; a device reaches only its
 * own thing's Jobs topics; presigned URL placeholders are replaced by the injected presigner.
 */
import { CreateJobCommand, DescribeJobCommand, type IoTClient } from '@aws-sdk/client-iot';
import { iot as iotSdk, iotjobs, mqtt as sdkMqtt } from 'aws-iot-device-sdk-v2';
import type { MqttClient } from 'mqtt';
import type { IotCore } from '../../../lab/iot';
import {
  arn,
  closed,
  collect,
  connect,
  devicePolicy,
  endAll,
  flush,
  identity,
  jobsDevice,
  jobsRequest,
  logged,
  nextMessage,
  openPolicy,
  publish,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
} from './helpers';

const PLACEHOLDER = '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/fw-bucket/releases/2.0.0.bin}';
const DOC = JSON.stringify({ operation: 'firmware-update', version: '2.0.0', image: { url: PLACEHOLDER } });

let core: IotCore;
let iot: IoTClient;
const open: MqttClient[] = [];
let n = 0;

beforeAll(async () => {
  ({ core, iot } = await startCore({
    jobsTickMs: 0,
    presignUrl: (bucket, key, expiresInSec) =>
      `https://lab-s3.test/${bucket}/${key}?X-Amz-Expires=${expiresInSec}`,
  }));
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putPolicy('monitor', openPolicy());
});
afterEach(() => endAll(open));
afterAll(() => stopCore(core, iot));

async function device(): Promise<{ name: string; c: MqttClient }> {
  const name = `dev${++n}`;
  const c = await jobsDevice(core, iot, name);
  open.push(c);
  return { name, c };
}

async function createJob(
  jobId: string,
  things: string[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  await iot.send(
    new CreateJobCommand({ jobId, targets: things.map((t) => arn(`thing/${t}`)), document: DOC, ...extra }),
  );
}

function once<T>(subscribe: (cb: (error?: unknown, response?: T) => void) => Promise<unknown>): {
  ready: Promise<unknown>;
  value: Promise<T>;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const value = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const ready = subscribe((error, response) => (error ? reject(error) : resolve(response as T)));
  return { ready, value };
}

test('aws-iot-device-sdk-v2 IotJobsClient: notify-next, start-next, update IN_PROGRESS, then SUCCEEDED', async () => {
  const thingName = `sdk${++n}`;
  const creds = await identity(iot, 'fleet-device', thingName);
  const config = iotSdk.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(creds.cert, creds.key)
    .with_certificate_authority(core.mqtt.caPem)
    .with_endpoint(core.mqtt.host)
    .with_port(core.mqtt.port)
    .with_client_id(thingName)
    .with_clean_session(true)
    .build();
  const connection = new sdkMqtt.MqttClient().new_connection(config);
  await connection.connect();
  try {
    const jobs = new iotjobs.IotJobsClient(connection);
    const QOS = sdkMqtt.QoS.AtLeastOnce;
    const nextChanged = once<iotjobs.model.NextJobExecutionChangedEvent>((cb) =>
      jobs.subscribeToNextJobExecutionChangedEvents({ thingName }, QOS, cb),
    );
    await nextChanged.ready;
    await createJob('sdk-job', [thingName], { presignedUrlConfig: { expiresInSec: 900 } });
    expect((await nextChanged.value).execution).toEqual(
      expect.objectContaining({ jobId: 'sdk-job', status: 'QUEUED' }),
    );

    const started = once<iotjobs.model.StartNextJobExecutionResponse>((cb) =>
      jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName }, QOS, cb),
    );
    const startRejected = once<iotjobs.model.RejectedErrorResponse>((cb) =>
      jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName }, QOS, cb),
    );
    await Promise.all([started.ready, startRejected.ready]);
    await jobs.publishStartNextPendingJobExecution(
      { thingName, stepTimeoutInMinutes: 5, clientToken: 'tok-1' },
      QOS,
    );
    const start = await Promise.race([
      started.value,
      startRejected.value.then((r) => Promise.reject(new Error(JSON.stringify(r)))),
    ]);
    expect(start.clientToken).toBe('tok-1');
    const exec = start.execution as iotjobs.model.JobExecutionData;
    expect(exec).toEqual(
      expect.objectContaining({ jobId: 'sdk-job', thingName, status: 'IN_PROGRESS', executionNumber: 1 }),
    );
    expect((exec.jobDocument as { image: { url: string } }).image.url).toBe(
      'https://lab-s3.test/fw-bucket/releases/2.0.0.bin?X-Amz-Expires=900',
    );

    const updates: iotjobs.model.UpdateJobExecutionResponse[] = [];
    const waiters: Array<() => void> = [];
    const updateRejected = once<iotjobs.model.RejectedErrorResponse>((cb) =>
      jobs.subscribeToUpdateJobExecutionRejected({ thingName, jobId: 'sdk-job' }, QOS, cb),
    );
    await jobs.subscribeToUpdateJobExecutionAccepted(
      { thingName, jobId: 'sdk-job' },
      QOS,
      (error, response) => {
        if (!error && response) updates.push(response);
        waiters.shift()?.();
      },
    );
    await updateRejected.ready;
    const accepted = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));

    let next = accepted();
    await jobs.publishUpdateJobExecution(
      {
        thingName,
        jobId: 'sdk-job',
        status: iotjobs.model.JobStatus.IN_PROGRESS,
        statusDetails: { step: 'downloaded' },
        expectedVersion: exec.versionNumber,
        includeJobExecutionState: true,
      },
      QOS,
    );
    await Promise.race([
      next,
      updateRejected.value.then((r) => Promise.reject(new Error(JSON.stringify(r)))),
    ]);
    expect(updates[0].executionState).toEqual(
      expect.objectContaining({ status: 'IN_PROGRESS', statusDetails: { step: 'downloaded' } }),
    );

    next = accepted();
    await jobs.publishUpdateJobExecution(
      {
        thingName,
        jobId: 'sdk-job',
        status: iotjobs.model.JobStatus.SUCCEEDED,
        statusDetails: { step: 'confirmed' },
        expectedVersion: updates[0].executionState?.versionNumber,
      },
      QOS,
    );
    await next;
    const job = (await iot.send(new DescribeJobCommand({ jobId: 'sdk-job' }))).job;
    expect(job?.status).toBe('COMPLETED');
    expect(job?.jobProcessDetails?.numberOfSucceededThings).toBe(1);
  } finally {
    await connection.disconnect();
  }
});

test('notify and notify-next announce the queue; get lists pending executions; $next describes the next one', async () => {
  const d = await device();
  await subscribe(d.c, [`$aws/things/${d.name}/jobs/notify`, `$aws/things/${d.name}/jobs/notify-next`]);
  const notify = nextMessage(d.c, (t) => t.endsWith('/jobs/notify'));
  const notifyNext = nextMessage(d.c, (t) => t.endsWith('/notify-next'));
  await createJob('q-1', [d.name]);
  const list = JSON.parse((await notify).payload.toString()) as {
    jobs: { QUEUED: Array<{ jobId: string }> };
  };
  expect(list.jobs.QUEUED.map((j) => j.jobId)).toEqual(['q-1']);
  const nx = JSON.parse((await notifyNext).payload.toString()) as { execution: Record<string, unknown> };
  expect(nx.execution).toEqual(expect.objectContaining({ jobId: 'q-1', status: 'QUEUED' }));
  await createJob('q-2', [d.name]);

  const pending = await jobsRequest(d.c, d.name, 'get', { clientToken: 'c1' });
  expect(pending.outcome).toBe('accepted');
  expect(pending.payload.clientToken).toBe('c1');
  expect((pending.payload.queuedJobs as Array<{ jobId: string }>).map((j) => j.jobId)).toEqual([
    'q-1',
    'q-2',
  ]);
  expect(pending.payload.inProgressJobs).toEqual([]);

  const next = await jobsRequest(d.c, d.name, '$next/get', { includeJobDocument: false });
  expect(next.payload.execution).toEqual(expect.objectContaining({ jobId: 'q-1' }));
  expect(next.payload.execution).not.toHaveProperty('jobDocument');
  const described = await jobsRequest(d.c, d.name, 'q-2/get');
  expect((described.payload.execution as { jobDocument: unknown }).jobDocument).toEqual(
    expect.objectContaining({ version: '2.0.0' }),
  );

  for (const id of ['q-1', 'q-2'])
    expect((await jobsRequest(d.c, d.name, `${id}/update`, { status: 'SUCCEEDED' })).outcome).toBe(
      'accepted',
    );
  const none = await jobsRequest(d.c, d.name, '$next/get');
  expect(none.outcome).toBe('accepted');
  expect(none.payload).not.toHaveProperty('execution');
  const nothing = await jobsRequest(d.c, d.name, 'start-next');
  expect(nothing.payload).not.toHaveProperty('execution');
});

const elevenPairs = Object.fromEntries([...Array(11).keys()].map((i) => [`k${i}`, 'v']));
test.each([
  ['InvalidJson', 'a payload that is not JSON', 'get', 'not json'],
  ['InvalidTopic', 'a topic no operation maps to', 'JOB/bogus', {}],
  ['InvalidRequest', 'a status devices may not set', 'JOB/update', { status: 'QUEUED' }],
  ['InvalidRequest', 'a step timeout of 0', 'JOB/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 0 }],
  [
    'InvalidRequest',
    '11 statusDetails pairs',
    'JOB/update',
    { status: 'IN_PROGRESS', statusDetails: elevenPairs },
  ],
  [
    'InvalidRequest',
    'a 129-character key',
    'JOB/update',
    { status: 'IN_PROGRESS', statusDetails: { ['k'.repeat(129)]: 'v' } },
  ],
  [
    'InvalidRequest',
    'a 1025-character value',
    'JOB/update',
    { status: 'IN_PROGRESS', statusDetails: { k: 'v'.repeat(1025) } },
  ],
  ['ResourceNotFound', 'an update of an unknown job', 'no-such-job/update', { status: 'IN_PROGRESS' }],
  ['ResourceNotFound', 'a get of an unknown job', 'no-such-job/get', {}],
])('rejected with %s: %s', async (code, _why, op, body) => {
  const d = await device();
  const jobId = `err-${d.name}`;
  if (op.startsWith('JOB/')) await createJob(jobId, [d.name]);
  const topic = `$aws/things/${d.name}/jobs/${op.replace('JOB', jobId)}`;
  await subscribe(d.c, [`${topic}/accepted`, `${topic}/rejected`]);
  const answer = nextMessage(d.c, (t) => t.startsWith(topic));
  await publish(
    d.c,
    topic,
    typeof body === 'string' ? body : JSON.stringify({ ...body, clientToken: 'tok' }),
  );
  const m = await answer;
  expect(m.topic).toBe(`${topic}/rejected`);
  const payload = JSON.parse(m.payload.toString()) as Record<string, unknown>;
  expect(payload).toEqual(
    expect.objectContaining({ code, message: expect.any(String), timestamp: expect.any(Number) }),
  );
  if (typeof body !== 'string') expect(payload.clientToken).toBe('tok');
});

test('statusDetails at the limits, expectedVersion, terminal executions', async () => {
  const d = await device();
  await createJob('lim-1', [d.name]);
  const atLimits = Object.fromEntries(
    [...Array(10).keys()].map((i) => [`${i}${'k'.repeat(127)}`, 'v'.repeat(1024)]),
  );
  const ok = await jobsRequest(d.c, d.name, 'lim-1/update', {
    status: 'IN_PROGRESS',
    statusDetails: atLimits,
    expectedVersion: 1,
    includeJobExecutionState: true,
    includeJobDocument: true,
  });
  expect(ok.outcome).toBe('accepted');
  expect(ok.payload.executionState).toEqual(
    expect.objectContaining({ status: 'IN_PROGRESS', versionNumber: 2 }),
  );
  expect((ok.payload.jobDocument as { version: string }).version).toBe('2.0.0');

  const stale = await jobsRequest(d.c, d.name, 'lim-1/update', { status: 'SUCCEEDED', expectedVersion: 1 });
  expect(stale.payload).toEqual(
    expect.objectContaining({
      code: 'VersionMismatch',
      executionState: expect.objectContaining({ status: 'IN_PROGRESS', versionNumber: 2 }),
    }),
  );
  expect(
    (await jobsRequest(d.c, d.name, 'lim-1/update', { status: 'SUCCEEDED', expectedVersion: 2 })).outcome,
  ).toBe('accepted');
  const again = await jobsRequest(d.c, d.name, 'lim-1/update', { status: 'FAILED' });
  expect(again.payload).toEqual(
    expect.objectContaining({
      code: 'InvalidStateTransition',
      executionState: expect.objectContaining({ status: 'SUCCEEDED' }),
    }),
  );
  expect((await jobsRequest(d.c, d.name, 'lim-1/get')).payload.code).toBe('TerminalStateReached');
  // a device may reject a queued job outright
  await createJob('lim-2', [d.name]);
  expect((await jobsRequest(d.c, d.name, 'lim-2/update', { status: 'REJECTED' })).outcome).toBe('accepted');
});

test("answers go to the requester only; requests are consumed; a device reaches only its own thing's Jobs topics", async () => {
  const a = await device();
  const b = await device();
  await createJob('iso-1', [a.name, b.name]);
  const monitor = await connect(core, await identity(iot, 'monitor'), 'jobs-watch');
  open.push(monitor);
  await subscribe(monitor, [`$aws/things/${a.name}/jobs/#`, 'marker/iso']);
  const seen = collect(monitor);

  expect((await jobsRequest(a.c, a.name, 'start-next')).outcome).toBe('accepted');
  await flush(core, monitor, 'marker/iso');
  // the monitor sees the service's notify-next change, but neither the request nor its answer
  expect(seen.map((m) => m.topic)).not.toContain(`$aws/things/${a.name}/jobs/start-next`);
  expect(seen.map((m) => m.topic)).not.toContain(`$aws/things/${a.name}/jobs/start-next/accepted`);

  // a's policy names only a's Jobs topics
  expect(await subscribe(a.c, `$aws/things/${b.name}/jobs/notify-next`)).toEqual([128]);
  const gone = closed(a.c);
  a.c.publish(`$aws/things/${b.name}/jobs/start-next`, '{}', { qos: 1 });
  await gone;
  const bPending = await jobsRequest(b.c, b.name, 'get');
  expect((bPending.payload.queuedJobs as Array<{ jobId: string }>).map((j) => j.jobId)).toEqual(['iso-1']);

  // the service's own topics cannot be published by clients
  const bGone = closed(b.c);
  b.c.publish(`$aws/things/${b.name}/jobs/notify`, '{}', { qos: 1 });
  await bGone;
});

test('without a presigner the placeholder is left unchanged and the lab says so', async () => {
  const logs: LogEntry[] = [];
  const other = await startCore({ jobsTickMs: 0, log: (e) => logs.push(e) });
  try {
    other.core.registry.putPolicy('fleet-device', devicePolicy());
    const c = await jobsDevice(other.core, other.iot, 'plain-1');
    open.push(c);
    await other.iot.send(
      new CreateJobCommand({ jobId: 'plain', targets: [arn('thing/plain-1')], document: DOC }),
    );
    const got = await jobsRequest(c, 'plain-1', 'start-next');
    expect((got.payload.execution as { jobDocument: { image: { url: string } } }).jobDocument.image.url).toBe(
      PLACEHOLDER,
    );
    expect(logged(logs, /no presigner is configured/)).toHaveLength(1);
  } finally {
    await endAll(open);
    await stopCore(other.core, other.iot);
  }
});
