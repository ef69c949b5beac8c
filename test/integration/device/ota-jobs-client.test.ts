/** The Jobs MQTT client on its own against the scripted Jobs service (loopback). */
import {
  JobsClient,
  JobsRejectedError,
  StatusDetailsError,
  type JobExecution,
} from '../../../device/jobs-client';
import { MqttSession } from '../../../device/mqtt-session';
import { ScriptedJobs } from './support/jobs-responder';

let jobs: ScriptedJobs;
const sessions: MqttSession[] = [];
beforeAll(async () => {
  jobs = await ScriptedJobs.start();
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.end()));
  await jobs.stop();
});

let n = 0;
async function client(): Promise<{
  thing: string;
  client: JobsClient;
  notes: Array<JobExecution | undefined>;
}> {
  const thing = `jobs-client-${++n}`;
  const pair = await jobs.device(thing);
  const session = await MqttSession.open({
    endpoint: jobs.endpoint,
    credentials: pair,
    clientId: thing,
    connectTimeoutMs: 5000,
  });
  sessions.push(session);
  const c = new JobsClient(session, thing);
  const notes: Array<JobExecution | undefined> = [];
  c.onNextChanged((e) => notes.push(e));
  await c.start();
  return { thing, client: c, notes };
}

test('nothing pending: start-next and $next/get give undefined', async () => {
  const { client: c } = await client();
  expect(await c.startNext()).toBeUndefined();
  expect(await c.describe('$next')).toBeUndefined();
});

test('start-next, update with expectedVersion, describe; notify-next on queue and on completion', async () => {
  const { thing, client: c, notes } = await client();
  jobs.queue(thing, 'job-a', { hello: 1 });
  const started = await c.startNext({ stepTimeoutInMinutes: 5, statusDetails: { step: 'download' } });
  expect(started).toMatchObject({ jobId: 'job-a', status: 'IN_PROGRESS', jobDocument: { hello: 1 } });
  expect(jobs.execution(thing, 'job-a')).toMatchObject({
    stepTimeoutInMinutes: 5,
    statusDetails: { step: 'download' },
  });
  const state = await c.update('job-a', {
    status: 'SUCCEEDED',
    statusDetails: { step: 'commit' },
    expectedVersion: started!.versionNumber,
  });
  expect(state).toMatchObject({ status: 'SUCCEEDED', versionNumber: started!.versionNumber + 1 });
  expect(await c.describe('job-a', { includeJobDocument: false })).toMatchObject({ status: 'SUCCEEDED' });
  // notify-next: job-a became next, then nothing is.
  expect(notes.map((e) => e?.jobId)).toEqual(['job-a', undefined]);
});

test('a stale expectedVersion is VersionMismatch; updateWithVersion re-reads and succeeds', async () => {
  const { thing, client: c } = await client();
  jobs.queue(thing, 'job-b', {});
  const started = (await c.startNext())!;
  jobs.bumpVersion(thing, 'job-b');
  const err = await c
    .update('job-b', { status: 'IN_PROGRESS', expectedVersion: started.versionNumber })
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(JobsRejectedError);
  expect(err).toMatchObject({ code: 'VersionMismatch', executionState: { status: 'IN_PROGRESS' } });
  const r = await c.updateWithVersion('job-b', started.versionNumber, { status: 'IN_PROGRESS' });
  expect(r).toMatchObject({ retried: true, state: { status: 'IN_PROGRESS' } });
});

test('updateWithVersion on a canceled execution: TerminalStateReached', async () => {
  const { thing, client: c } = await client();
  jobs.queue(thing, 'job-c', {});
  const started = (await c.startNext())!;
  jobs.forceCancel(thing, 'job-c');
  await expect(
    c.updateWithVersion('job-c', started.versionNumber, { status: 'IN_PROGRESS' }),
  ).rejects.toMatchObject({
    code: 'TerminalStateReached',
  });
});

test('statusDetails over the limits is refused before anything is sent', async () => {
  const { thing, client: c } = await client();
  jobs.queue(thing, 'job-d', {});
  await c.startNext();
  const before = jobs.updates.length;
  await expect(
    c.update('job-d', { status: 'IN_PROGRESS', statusDetails: { reason: 'r'.repeat(1025) } }),
  ).rejects.toThrow(StatusDetailsError);
  await expect(c.startNext({ statusDetails: { 'no spaces': 'x' } })).rejects.toThrow('may only hold');
  expect(jobs.updates.length).toBe(before);
});

test('an unknown job: ResourceNotFound', async () => {
  const { client: c } = await client();
  await expect(c.describe('nope')).rejects.toMatchObject({ code: 'ResourceNotFound' });
});
