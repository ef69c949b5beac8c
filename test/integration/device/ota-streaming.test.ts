/**
 * The OTA agent composed with a streaming device (through its public `setFirmware` and `stop`):
 * the device streams on the lab's AWS IoT Core, its Jobs session talks to the scripted Jobs
 * service. A crash-after-success version reports SUCCEEDED, then crash-loops in its telemetry and
 * health; a silent-after-success version reports SUCCEEDED, then sends nothing more. Time is a
 * ManualScheduler; nothing is timed.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { FIRMWARE_SIGNATURE_ALGORITHM, FIRMWARE_UPDATE_OPERATION } from '../../../core/ota';
import {
  ManualScheduler,
  streamFleet,
  type DeviceAgent,
  type FleetStream,
  type StreamEvent,
} from '../../../device';
import { sha256Hex, signFirmwareImage } from '../../../device/firmware-image';
import { JobsClient } from '../../../device/jobs-client';
import { MqttSession } from '../../../device/mqtt-session';
import { OtaAgent, streamingFirmwareHost } from '../../../device/ota-agent';
import { streamingProfilesFor, type OtaFirmwareProfiles } from '../../../device/ota-profiles';
import { ImageServer, ScriptedJobs } from './support/jobs-responder';
import { LabFleet, RULES } from './support/lab-fleet';

const releaseKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const PROFILES: OtaFirmwareProfiles = {
  '4.0.0': { name: 'crash-after-success' },
  '5.0.0': { name: 'silent-after-success' },
};

let lab: LabFleet;
let jobs: ScriptedJobs;
let images: ImageServer;
const open: FleetStream[] = [];
const agents: DeviceAgent[] = [];
const sessions: MqttSession[] = [];

beforeAll(async () => {
  [lab, jobs, images] = await Promise.all([LabFleet.start(), ScriptedJobs.start(), ImageServer.start()]);
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.stop().catch(() => undefined)));
  await Promise.all(agents.map((a) => a.close()));
  await Promise.all(sessions.map((s) => s.end()));
  await Promise.all([lab.stop(), jobs.stop(), images.stop()]);
});

function document(version: string): Record<string, unknown> {
  const bytes = randomBytes(2048);
  return {
    operation: FIRMWARE_UPDATE_OPERATION,
    version,
    hwRevs: ['A'],
    image: {
      url: images.put(`/fw/${version}.bin`, bytes),
      sizeBytes: bytes.length,
      sha256: sha256Hex(bytes),
      signature: signFirmwareImage(bytes, releaseKey.privateKey),
      signatureAlgorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    },
  };
}

async function streamingUnit(serial: string): Promise<{
  fleet: FleetStream;
  clock: ManualScheduler;
  events: StreamEvent[];
  agent: OtaAgent;
  thing: string;
}> {
  const { list } = await lab.enroll({ [serial]: '1.0.0' });
  agents.push(...list);
  const clock = new ManualScheduler();
  const events: StreamEvent[] = [];
  const fleet = streamFleet({
    agents: list,
    scheduler: clock,
    rules: RULES,
    seed: 'ota-streaming',
    stagger: false,
    readingIntervalMs: 1_000,
    readingsPerMessage: 5,
    healthIntervalMs: 10_000,
    profiles: streamingProfilesFor(PROFILES),
    onEvent: (e) => events.push(e),
  });
  open.push(fleet);
  await fleet.whenSettled();
  const [device] = [...fleet.devices.values()];
  const pair = await jobs.device(device.thing);
  const session = await MqttSession.open({
    endpoint: jobs.endpoint,
    credentials: pair,
    clientId: device.thing,
    connectTimeoutMs: 5000,
  });
  sessions.push(session);
  const agent = new OtaAgent({
    jobs: new JobsClient(session, device.thing),
    serial,
    hwRev: 'A',
    publicKey: releaseKey.publicKey,
    host: streamingFirmwareHost(device),
    profiles: PROFILES,
  });
  await agent.start();
  return { fleet, clock, events, agent, thing: device.thing };
}

async function advance(fleet: FleetStream, clock: ManualScheduler, ms: number, step = 500): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await fleet.whenSettled();
  }
}

test('crash-after-success: SUCCEEDED, then the device boots the version and crash-loops', async () => {
  const { fleet, clock, events, agent, thing } = await streamingUnit('OTA-CRASH-1');
  jobs.queue(thing, 'job-v4', document('4.0.0'));
  // The trial boot waits for the requested reboot; the clock brings the device back up.
  const outcome = agent.waitForOutcome((o) => o.jobId === 'job-v4');
  await advance(fleet, clock, 3_000);
  expect(await outcome).toMatchObject({ status: 'SUCCEEDED', behaviour: 'crash-after-success' });
  expect(jobs.execution(thing, 'job-v4').status).toBe('SUCCEEDED');
  await advance(fleet, clock, 50_000);
  const boots = events.filter((e): e is Extract<StreamEvent, { type: 'boot' }> => e.type === 'boot');
  expect(boots[1]).toMatchObject({ resetReason: 'REQUESTED', firmware: '4.0.0', profile: 'crash-looping' });
  expect(boots.slice(2).map((b) => b.resetReason)).toContain('WATCHDOG');
  expect(fleet.ledger().byDevice[thing].firmware).toBe('4.0.0');
});

test('silent-after-success: SUCCEEDED, then neither health nor telemetry', async () => {
  const { fleet, clock, events, agent, thing } = await streamingUnit('OTA-SILENT-1');
  jobs.queue(thing, 'job-v5', document('5.0.0'));
  const outcome = agent.waitForOutcome((o) => o.jobId === 'job-v5');
  await advance(fleet, clock, 3_000);
  expect(await outcome).toMatchObject({ status: 'SUCCEEDED', behaviour: 'silent-after-success' });
  await agent.whenIdle();
  await fleet.whenSettled();
  expect(events.some((e) => e.type === 'stopped' && e.thing === thing)).toBe(true);
  const sentBefore = lab.messages.filter((m) => m.topic.includes(thing)).length;
  await advance(fleet, clock, 60_000);
  expect(lab.messages.filter((m) => m.topic.includes(thing)).length).toBe(sentBefore);
});
