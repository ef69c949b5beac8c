/**
 * The simulator's OTA agent against a scripted Jobs service and a loopback image server: a good
 * update end to end, the verification failures, REJECTED, force-cancel, VersionMismatch recovery
 * and each OTA profile.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  FIRMWARE_SIGNATURE_ALGORITHM,
  FIRMWARE_UPDATE_OPERATION,
  type FirmwareJobDocument,
} from '../../../core/ota';
import { sha256Hex, signFirmwareImage } from '../../../device/firmware-image';
import { JobsClient } from '../../../device/jobs-client';
import { MqttSession } from '../../../device/mqtt-session';
import { OtaAgent, type FirmwareHost, type OtaAgentOptions } from '../../../device/ota-agent';
import { ImageServer, ScriptedJobs } from './support/jobs-responder';

const releaseKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const PUBLIC_PEM = releaseKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();

let jobs: ScriptedJobs;
let images: ImageServer;
const sessions: MqttSession[] = [];

beforeAll(async () => {
  [jobs, images] = await Promise.all([ScriptedJobs.start(), ImageServer.start()]);
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.end()));
  await Promise.all([jobs.stop(), images.stop()]);
});

let thingCount = 0;

/** A host that records the reboots the agent asks for. */
function recordingHost(firmware: string): FirmwareHost & { calls: string[] } {
  const host = {
    firmware,
    calls: [] as string[],
    setFirmware(v: string) {
      host.calls.push(`boot ${v}`);
      host.firmware = v;
      return Promise.resolve();
    },
    goSilent() {
      host.calls.push('silent');
      return Promise.resolve();
    },
  };
  return host;
}

/** A release of `version`, served on loopback; `tamper` breaks one field. */
function release(
  version: string,
  tamper?: 'signature' | 'sha256' | 'size' | 'served-bytes',
  hwRevs = ['revA'],
): FirmwareJobDocument {
  const bytes = randomBytes(4096 + Math.floor(Math.random() * 512));
  const served = tamper === 'served-bytes' ? Buffer.concat([bytes.subarray(0, -1), Buffer.from([0])]) : bytes;
  const url = images.put(`/fw/${version}-${tamper ?? 'ok'}-${thingCount}.bin`, served);
  return {
    operation: FIRMWARE_UPDATE_OPERATION,
    version,
    hwRevs,
    image: {
      url,
      sizeBytes: tamper === 'size' ? bytes.length + 1 : bytes.length,
      sha256: tamper === 'sha256' ? sha256Hex(Buffer.from('other')) : sha256Hex(bytes),
      signature: signFirmwareImage(
        bytes,
        tamper === 'signature' ? otherKey.privateKey : releaseKey.privateKey,
      ),
      signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    },
  };
}

async function device(options: Partial<OtaAgentOptions> = {}): Promise<{
  thing: string;
  agent: OtaAgent;
  host: FirmwareHost & { calls: string[] };
  session: MqttSession;
}> {
  const thing = `ota-thing-${++thingCount}`;
  const pair = await jobs.device(thing);
  const session = await MqttSession.open({
    endpoint: jobs.endpoint,
    credentials: { certPem: pair.certPem, keyPem: pair.keyPem },
    clientId: thing,
    connectTimeoutMs: 5000,
  });
  sessions.push(session);
  const host = recordingHost('1.0.0');
  const agent = new OtaAgent({
    jobs: new JobsClient(session, thing),
    serial: `SN-${thingCount}`,
    hwRev: 'revA',
    publicKey: PUBLIC_PEM,
    host,
    ...options,
  });
  await agent.start();
  return { thing, agent, host, session };
}

const steps = (thing: string, jobId: string): string[] =>
  jobs.updates
    .filter((u) => u.thing === thing && u.jobId === jobId && u.answer === 'accepted')
    .map((u) => `${String(u.body.status)}:${(u.body.statusDetails as Record<string, string>).step}`);

test('a good update: download, verify, install, trial boot, self-test, SUCCEEDED, version changed', async () => {
  const { thing, agent, host } = await device();
  jobs.queue(thing, 'job-good', release('2.0.0'));
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-good');
  expect(outcome).toMatchObject({
    status: 'SUCCEEDED',
    version: '2.0.0',
    from: '1.0.0',
    behaviour: 'install',
  });
  expect(steps(thing, 'job-good')).toEqual([
    'IN_PROGRESS:download',
    'IN_PROGRESS:verify',
    'IN_PROGRESS:install',
    'IN_PROGRESS:reboot',
    'IN_PROGRESS:selftest',
    'SUCCEEDED:commit',
  ]);
  const progress = jobs.updates
    .filter((u) => u.jobId === 'job-good' && u.body.status === 'IN_PROGRESS')
    .map((u) => (u.body.statusDetails as Record<string, string>).progress);
  expect(progress).toEqual(['0', '40', '50', '80', '90']);
  const e = jobs.execution(thing, 'job-good');
  expect(e.status).toBe('SUCCEEDED');
  expect(agent.firmware).toBe('2.0.0');
  expect(agent.slots).toMatchObject({ active: 'B', slots: { A: '1.0.0', B: '2.0.0' } });
  expect(host.calls).toEqual(['boot 2.0.0']);
  // start-next and every IN_PROGRESS report set the step timer; every update named the version.
  expect(jobs.startNextCalls.find((c) => c.thing === thing)?.body.stepTimeoutInMinutes).toBe(10);
  const sent = jobs.updates.filter((u) => u.thing === thing);
  expect(sent.every((u) => typeof u.body.expectedVersion === 'number')).toBe(true);
  expect(
    sent.filter((u) => u.body.status === 'IN_PROGRESS').every((u) => u.body.stepTimeoutInMinutes === 10),
  ).toBe(true);
});

test.each([
  ['signature', 'signature: signature does not verify'],
  ['sha256', 'sha256: sha256'],
  ['size', 'size: size'],
  ['served-bytes', 'sha256: sha256'],
] as const)('a bad %s: FAILED at verify, nothing installed', async (tamper, reason) => {
  const { thing, agent, host } = await device();
  jobs.queue(thing, `job-bad-${tamper}`, release('2.0.0', tamper));
  const outcome = await agent.waitForOutcome((o) => o.jobId === `job-bad-${tamper}`);
  expect(outcome).toMatchObject({ status: 'FAILED', step: 'verify' });
  expect(outcome.reason).toContain(reason);
  const e = jobs.execution(thing, `job-bad-${tamper}`);
  expect(e.status).toBe('FAILED');
  expect(e.statusDetails).toMatchObject({ step: 'verify', running: '1.0.0' });
  expect(agent.slots).toEqual({ active: 'A', slots: { A: '1.0.0' } });
  expect(host.calls).toEqual([]);
});

test('an incompatible hardware revision: REJECTED, nothing downloaded', async () => {
  const { thing, agent } = await device();
  const before = images.requests.length;
  jobs.queue(thing, 'job-hw', release('2.0.0', undefined, ['revB', 'revC']));
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-hw');
  expect(outcome).toMatchObject({ status: 'REJECTED' });
  expect(outcome.reason).toContain('revA is not among revB, revC');
  expect(jobs.execution(thing, 'job-hw').status).toBe('REJECTED');
  expect(images.requests.length).toBe(before);
});

test('a document that is not a firmware update: REJECTED naming the field', async () => {
  const { thing, agent } = await device();
  jobs.queue(thing, 'job-doc', { operation: 'reboot' });
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-doc');
  expect(outcome.status).toBe('REJECTED');
  expect(jobs.execution(thing, 'job-doc').statusDetails?.reason).toContain('operation');
});

test.each([
  ['install', []],
  ['selftest', ['boot 2.0.0', 'boot 1.0.0']],
] as const)('force-cancel after the %s report: install aborted, previous slot kept', async (step, boots) => {
  const { thing, agent, host } = await device();
  const jobId = `job-cancel-${step}`;
  jobs.afterUpdate = (e, body) => {
    if (e.jobId === jobId && (body.statusDetails as Record<string, string>).step === step) {
      jobs.afterUpdate = undefined;
      jobs.forceCancel(thing, jobId);
    }
  };
  jobs.queue(thing, jobId, release('2.0.0'));
  const outcome = await agent.waitForOutcome((o) => o.jobId === jobId);
  expect(outcome).toMatchObject({ status: 'CANCELED', step });
  expect(jobs.execution(thing, jobId).status).toBe('CANCELED');
  // Nothing after the cancel was accepted; the device runs the old version on the old slot.
  expect(steps(thing, jobId).at(-1)).toBe(`IN_PROGRESS:${step}`);
  expect(agent.firmware).toBe('1.0.0');
  expect(agent.slots).toEqual({ active: 'A', slots: { A: '1.0.0' } });
  expect(host.calls).toEqual(boots);
});

test('a force-cancel that races the SUCCEEDED report: refused, so the trial slot is reverted', async () => {
  const { thing, agent, host } = await device();
  jobs.beforeUpdate = (e, body) => {
    if (e.jobId === 'job-race' && body.status === 'SUCCEEDED') {
      jobs.beforeUpdate = undefined;
      jobs.forceCancel(thing, 'job-race');
    }
  };
  jobs.queue(thing, 'job-race', release('2.0.0'));
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-race');
  expect(outcome).toMatchObject({ status: 'CANCELED' });
  expect(outcome.reason).toContain('TerminalStateReached');
  expect(agent.slots).toEqual({ active: 'A', slots: { A: '1.0.0' } });
  expect(host.calls).toEqual(['boot 2.0.0', 'boot 1.0.0']);
});

test('a force-cancel announced with the next job: the next job runs after the revert', async () => {
  const { thing, agent } = await device();
  jobs.afterUpdate = (e, body) => {
    if (e.jobId === 'job-first' && (body.statusDetails as Record<string, string>).step === 'verify') {
      jobs.afterUpdate = undefined;
      jobs.queue(thing, 'job-second', release('2.1.0'));
      jobs.forceCancel(thing, 'job-first');
    }
  };
  jobs.queue(thing, 'job-first', release('2.0.0'));
  expect(await agent.waitForOutcome((o) => o.jobId === 'job-first')).toMatchObject({ status: 'CANCELED' });
  expect(await agent.waitForOutcome((o) => o.jobId === 'job-second')).toMatchObject({ status: 'SUCCEEDED' });
  expect(agent.firmware).toBe('2.1.0');
});

test('a VersionMismatch is recovered by re-reading the execution', async () => {
  const { thing, agent } = await device();
  jobs.afterUpdate = (e, body) => {
    if (e.jobId === 'job-vm' && (body.statusDetails as Record<string, string>).step === 'download') {
      jobs.afterUpdate = undefined;
      jobs.bumpVersion(thing, 'job-vm');
    }
  };
  jobs.queue(thing, 'job-vm', release('2.0.0'));
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-vm');
  expect(outcome).toMatchObject({ status: 'SUCCEEDED', versionMismatches: 1 });
  expect(jobs.updates.filter((u) => u.thing === thing).map((u) => u.answer)).toContain('VersionMismatch');
});

test('a rollback document installs the named previous version the same way', async () => {
  const { thing, agent, host } = await device();
  jobs.queue(thing, 'job-up', release('2.0.0'));
  await agent.waitForOutcome((o) => o.jobId === 'job-up');
  jobs.queue(thing, 'job-rb', { ...release('1.0.0'), rollback: true });
  const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-rb');
  expect(outcome).toMatchObject({ status: 'SUCCEEDED', rollback: true, from: '2.0.0', version: '1.0.0' });
  expect(jobs.execution(thing, 'job-rb').statusDetails).toMatchObject({ rollback: 'true', step: 'commit' });
  expect(agent.slots).toMatchObject({ active: 'A', slots: { A: '1.0.0' } });
  expect(host.calls).toEqual(['boot 2.0.0', 'boot 1.0.0']);
});

describe('profiles', () => {
  test('install-failure: FAILED at install with a reason, previous slot kept', async () => {
    const { thing, agent, host } = await device({ profiles: { '3.0.0': { name: 'install-failure' } } });
    jobs.queue(thing, 'job-v3', release('3.0.0'));
    const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-v3');
    expect(outcome).toMatchObject({ status: 'FAILED', step: 'install', behaviour: 'fail-install' });
    expect(jobs.execution(thing, 'job-v3').statusDetails?.reason).toContain('flash verify error');
    expect(agent.firmware).toBe('1.0.0');
    expect(host.calls).toEqual([]);
  });

  test('install-failure at 0 %: installs', async () => {
    const { thing, agent } = await device({
      profiles: { '3.0.0': { name: 'install-failure', failurePercent: 0 } },
    });
    jobs.queue(thing, 'job-v3-ok', release('3.0.0'));
    expect(await agent.waitForOutcome((o) => o.jobId === 'job-v3-ok')).toMatchObject({ status: 'SUCCEEDED' });
  });

  test('never-answers: started with a step timer, then silent; the service times it out; the next job runs', async () => {
    const { thing, agent } = await device({ profiles: { '3.5.0': { name: 'never-answers' } } });
    jobs.queue(thing, 'job-hang', release('3.5.0'));
    const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-hang');
    expect(outcome).toMatchObject({ status: 'ABANDONED', behaviour: 'hang' });
    const e = jobs.execution(thing, 'job-hang');
    expect(e).toMatchObject({ status: 'IN_PROGRESS', stepTimeoutInMinutes: 10 });
    expect(jobs.updates.filter((u) => u.thing === thing)).toEqual([]);
    jobs.timeOut(thing, 'job-hang');
    // A retry is a new execution: the device starts it and hangs again.
    jobs.retry(thing, 'job-hang');
    const retried = await agent.waitForOutcome((o) => o.jobId === 'job-hang' && o !== outcome);
    expect(retried).toMatchObject({ status: 'ABANDONED' });
    expect(jobs.execution(thing, 'job-hang')).toMatchObject({ status: 'IN_PROGRESS', executionNumber: 2 });
    jobs.timeOut(thing, 'job-hang');
    jobs.queue(thing, 'job-after', release('2.0.0'));
    expect(await agent.waitForOutcome((o) => o.jobId === 'job-after')).toMatchObject({ status: 'SUCCEEDED' });
  });

  test('crash-after-success: SUCCEEDED and booted into the version (whose streaming profile crash-loops)', async () => {
    const { thing, agent, host } = await device({ profiles: { '4.0.0': { name: 'crash-after-success' } } });
    jobs.queue(thing, 'job-v4', release('4.0.0'));
    expect(await agent.waitForOutcome((o) => o.jobId === 'job-v4')).toMatchObject({
      status: 'SUCCEEDED',
      behaviour: 'crash-after-success',
    });
    expect(jobs.execution(thing, 'job-v4').status).toBe('SUCCEEDED');
    expect(host.calls).toEqual(['boot 4.0.0']);
  });

  test('silent-after-success: SUCCEEDED, then the device goes silent and answers no further job', async () => {
    const { thing, agent, host, session } = await device({
      profiles: { '5.0.0': { name: 'silent-after-success' } },
    });
    jobs.queue(thing, 'job-v5', release('5.0.0'));
    expect(await agent.waitForOutcome((o) => o.jobId === 'job-v5')).toMatchObject({ status: 'SUCCEEDED' });
    expect(host.calls).toEqual(['boot 5.0.0', 'silent']);
    expect(agent.silent).toBe(true);
    const startsBefore = jobs.startNextCalls.filter((c) => c.thing === thing).length;
    jobs.queue(thing, 'job-rb5', { ...release('1.0.0'), rollback: true });
    // A round trip on the same connection: its notify-next has reached the agent before the answer.
    const probe = new JobsClient(session, thing);
    await probe.start();
    expect((await probe.describe('$next'))?.jobId).toBe('job-rb5');
    probe.close();
    await agent.whenIdle();
    expect(jobs.startNextCalls.filter((c) => c.thing === thing).length).toBe(startsBefore);
    expect(jobs.execution(thing, 'job-rb5').status).toBe('QUEUED');
  });
});

describe('one connection for the device (the Jobs client follows it across reboots)', () => {
  /** A device whose reboot ends its only session; it comes back on a new one, attached to the client. */
  async function singleConnectionDevice(whileDown?: (thing: string) => void): Promise<{
    thing: string;
    agent: OtaAgent;
    boots: string[];
    /** Resolves once the last reboot's reconnection is attached. */
    reconnected: () => Promise<unknown>;
  }> {
    const thing = `ota-thing-${++thingCount}`;
    const pair = await jobs.device(thing);
    const open = async (): Promise<MqttSession> => {
      const s = await MqttSession.open({
        endpoint: jobs.endpoint,
        credentials: pair,
        clientId: thing,
        connectTimeoutMs: 5000,
      });
      sessions.push(s);
      return s;
    };
    let session = await open();
    const client = new JobsClient(session, thing);
    const boots: string[] = [];
    let reconnecting: Promise<unknown> = Promise.resolve();
    const host: FirmwareHost = {
      firmware: '1.0.0',
      async setFirmware(v) {
        boots.push(v);
        await session.end();
        whileDown?.(thing);
        // Down now; the boot that follows connects again (not awaited, as a real reboot).
        reconnecting = open().then((s) => {
          session = s;
          return client.attach(s);
        });
      },
    };
    const agent = new OtaAgent({
      jobs: client,
      serial: `SN-${thingCount}`,
      hwRev: 'revA',
      publicKey: PUBLIC_PEM,
      host,
    });
    await agent.start();
    return { thing, agent, boots, reconnected: () => reconnecting };
  }

  test('the trial boot ends the session; self-test and SUCCEEDED go out on the new one', async () => {
    const { thing, agent, boots, reconnected } = await singleConnectionDevice();
    jobs.queue(thing, 'job-one-conn', release('2.0.0'));
    expect(await agent.waitForOutcome((o) => o.jobId === 'job-one-conn')).toMatchObject({
      status: 'SUCCEEDED',
    });
    expect(steps(thing, 'job-one-conn').slice(-2)).toEqual(['IN_PROGRESS:selftest', 'SUCCEEDED:commit']);
    expect(boots).toEqual(['2.0.0']);
    await reconnected();
  });

  test('a force-cancel while the device reboots: notify-next is lost, $next/get on reconnect reveals it', async () => {
    let canceled = false;
    const { thing, agent, boots, reconnected } = await singleConnectionDevice((t) => {
      if (canceled) return;
      canceled = true;
      jobs.forceCancel(t, 'job-offline-cancel');
    });
    jobs.queue(thing, 'job-offline-cancel', release('2.0.0'));
    const outcome = await agent.waitForOutcome((o) => o.jobId === 'job-offline-cancel');
    // The cancel is learnt from `$next/get` once the device is back, before its self-test report.
    expect(outcome).toMatchObject({ status: 'CANCELED', step: 'selftest' });
    expect(steps(thing, 'job-offline-cancel').at(-1)).toBe('IN_PROGRESS:reboot');
    expect(agent.slots).toEqual({ active: 'A', slots: { A: '1.0.0' } });
    expect(boots).toEqual(['2.0.0', '1.0.0']);
    await reconnected();
  });
});
