/**
 * A firmware update end to end in the lab, without the rollout controller: simulated units
 * enroll and stream on the lab runtime's IoT Core, `fleet firmware publish` puts signed releases
 * in the lab's S3 and package catalog, CreateJob (the real `@aws-sdk/client-iot`) targets the
 * units' things with `firmwareJobDocument(release)`, and every unit's OTA agent, on its streaming
 * session, downloads through the lab's presigned URL, verifies, reboots into the version and
 * reports. Good → SUCCEEDED and health on the new firmware; install-failure → FAILED and the old
 * firmware; silent-after-success → SUCCEEDED, then nothing. Device time is a ManualScheduler, the
 * Jobs clock a fake one; loopback only.
 */
import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachPolicyCommand,
  CreateJobCommand,
  CreateKeysAndCertificateCommand,
  CreatePackageCommand,
  DescribeJobExecutionCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { FirmwarePublishResult } from '../../../cli/commands/firmware';
import { createContext } from '../../../cli/context';
import { EXIT_CODES } from '../../../cli/errors';
import { memorySink } from '../../../cli/output';
import { main, type ContextFactory } from '../../../cli/program';
import { firmwareJobDocument, type ReleaseRecord } from '../../../core/ota';
import { ManualScheduler, runFleet, streamFleet, type DeviceAgent, type FleetStream } from '../../../device';
import type { OtaOutcome } from '../../../device/ota-agent';
import { startIotCore, type IotCore, type IotMessage } from '../../../lab/iot';
import { startLabRuntime, type LabRuntime } from '../../../lab/runtime';
import { RULES, streamingDevicePolicy, TEMPLATE, TOPIC_PREFIX } from '../device/support/lab-fleet';
import { arn, claimPolicy, FLEET_THING_RESOURCES, THING_NAME } from '../lab-iot/helpers';
import { writeAssembly } from './fixture';

jest.setTimeout(120_000);

const region = 'us-east-1';
const credentials = { accessKeyId: 'lab', secretAccessKey: 'lab' };
const BUCKET = 'lab-firmware';
const PACKAGE = 'fleet-firmware';
const releaseKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const UNITS = {
  good: ['OTA-GOOD-1', 'OTA-GOOD-2', 'OTA-GOOD-3'],
  failing: ['OTA-FAIL-1'],
  silent: ['OTA-SILENT-1'],
};

/** The streaming device policy plus the thing's own Jobs topics. */
function otaDevicePolicy(): unknown {
  const base = streamingDevicePolicy() as { Version: string; Statement: unknown[] };
  const jobs = `$aws/things/${THING_NAME}/jobs`;
  return {
    ...base,
    Statement: [
      ...base.Statement,
      { Effect: 'Allow', Action: 'iot:Publish', Resource: arn(`topic/${jobs}/*`) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn(`topicfilter/${jobs}/*`) },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn(`topic/${jobs}/*`) },
    ],
  };
}

let dir: string;
let lab: LabRuntime;
let core: IotCore;
let iot: IoTClient;
let now = Date.UTC(2026, 11, 6, 5, 0, 0);
const messages: IotMessage[] = [];
const clock = new ManualScheduler();
let fleet: FleetStream;
let agents: DeviceAgent[] = [];
const releases: Record<string, ReleaseRecord> = {};

/** `fleet firmware publish` in-process against the lab's control plane and S3. */
async function publish(version: string): Promise<ReleaseRecord> {
  const file = `${dir}/fw-${version}.bin`;
  writeFileSync(file, Buffer.alloc(4096, version));
  const out = memorySink();
  const stderr: string[] = [];
  const factory: ContextFactory = async () => {
    const dynamo = new DynamoDBClient({ region, credentials, endpoint: lab.endpoints.dynamodb });
    return createContext({
      resources: {},
      clients: {
        dynamo,
        doc: DynamoDBDocumentClient.from(dynamo),
        iot: new IoTClient({ region, credentials, endpoint: lab.endpoints.iot, maxAttempts: 1 }),
        s3: new S3Client({
          region,
          credentials,
          endpoint: lab.endpoints.s3,
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }),
      },
      out,
      now: () => new Date(now),
    });
  };
  const args = ['firmware', 'publish', '--bucket', BUCKET, '--package', PACKAGE, '--version', version];
  const code = await main(
    [...args, '--file', file, '--hw-rev', 'A', '--signing-key', `${dir}/release-key.pem`, '--json'],
    factory,
    { stdout: () => undefined, stderr: (t) => void stderr.push(t), env: {} },
  );
  expect(stderr.join('')).toBe('');
  expect(code).toBe(EXIT_CODES.ok);
  return (out.values[0] as FirmwarePublishResult).release;
}

/** Units' things by serial. */
const thingOf = (serial: string): string => `fleet-${serial}`;

/** Moves device time in small steps until `done` resolves (devices reboot on that clock). */
async function runUntil<T>(done: Promise<T>): Promise<T> {
  let settled = false;
  const result = done.finally(() => {
    settled = true;
  });
  for (let i = 0; i < 2_000 && !settled; i++) {
    clock.advance(250);
    now += 250;
    core.jobs!.tick();
    await fleet.whenSettled();
    await new Promise((r) => setTimeout(r, 5));
  }
  return result;
}

function outcomeOf(serial: string, jobId: string): Promise<OtaOutcome> {
  return fleet.otaAgents.get(thingOf(serial))!.waitForOutcome((o) => o.jobId === jobId);
}

async function createJob(jobId: string, version: string, serials: string[]): Promise<void> {
  await iot.send(
    new CreateJobCommand({
      jobId,
      targets: serials.map((s) => arn(`thing/${thingOf(s)}`)),
      document: JSON.stringify(firmwareJobDocument(releases[version])),
      presignedUrlConfig: { expiresInSec: 600 },
      destinationPackageVersions: [arn(`package/${PACKAGE}/version/${version}`)],
    }),
  );
  core.jobs!.tick();
}

const healthOf = (serial: string): Array<Record<string, unknown>> =>
  messages
    .filter((m) => m.topic.endsWith(`/${thingOf(serial)}/health`) && m.clientId === thingOf(serial))
    .map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);

beforeAll(async () => {
  dir = writeAssembly(
    { Resources: { Firmware: { Type: 'AWS::S3::Bucket', Properties: { BucketName: BUCKET } } } },
    {},
  );
  writeFileSync(
    `${dir}/release-key.pem`,
    releaseKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  );
  lab = await startLabRuntime({
    projectDir: dir,
    cdkOut: '.',
    synth: false,
    iotCore: async (opts) => {
      core = await startIotCore({ ...opts, invokeLambda: async () => ({ allowProvisioning: true }) });
      return core;
    },
    logDir: false,
    labDir: `${dir}/.lab`,
    schedules: 'manual',
    clock: () => now,
    jobsTickMs: 0,
  });
  core.onMessage((m) => void messages.push(m));
  iot = new IoTClient({ region, credentials, endpoint: lab.endpoints.iot, maxAttempts: 1 });

  core.registry.putPolicy('fleet-device', otaDevicePolicy());
  core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
  core.registry.putProvisioningTemplate({
    name: TEMPLATE,
    body: JSON.stringify({
      Parameters: {
        SerialNumber: { Type: 'String' },
        HardwareRevision: { Type: 'String' },
        FirmwareVersion: { Type: 'String' },
        'AWS::IoT::Certificate::Id': { Type: 'String' },
      },
      Resources: FLEET_THING_RESOURCES,
    }),
    enabled: true,
    hookArn: arn('function:hook').replace(':iot:', ':lambda:'),
  });
  const claim = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  await iot.send(new AttachPolicyCommand({ policyName: 'fleet-claim', target: claim.certificateArn }));
  const enrolled = await runFleet({
    devices: [...UNITS.good, ...UNITS.failing, ...UNITS.silent].map((serial) => ({
      identity: { serial, lot: 'LOT-A', hwRev: 'A', firmware: '1.0.0' },
    })),
    endpoint: lab.endpoints.mqtt,
    claims: { 'LOT-A': { certPem: claim.certificatePem!, keyPem: claim.keyPair!.PrivateKey! } },
    templateName: TEMPLATE,
    topicPrefix: TOPIC_PREFIX,
    keepConnected: true,
    sleep: async () => undefined,
  });
  agents = [...enrolled.agents.values()];
  expect(enrolled.results.every((r) => r.outcome === 'enrolled')).toBe(true);

  await iot.send(new CreatePackageCommand({ packageName: PACKAGE }));
  for (const v of ['2.0.0', '3.0.0', '5.0.0']) releases[v] = await publish(v);

  fleet = streamFleet({
    agents,
    scheduler: clock,
    rules: RULES,
    seed: 'ota-lab',
    stagger: false,
    readingIntervalMs: 1_000,
    readingsPerMessage: 5,
    healthIntervalMs: 5_000,
    ota: {
      publicKey: releaseKey.publicKey,
      hwRevOf: () => 'A',
      profiles: {
        '3.0.0': { name: 'install-failure', failurePercent: 100 },
        '5.0.0': { name: 'silent-after-success' },
      },
    },
  });
  await fleet.whenSettled();
});

afterAll(async () => {
  await fleet?.stop().catch(() => undefined);
  await Promise.all(agents.map((a) => a.close()));
  iot?.destroy();
  await lab?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('every streaming unit runs an OTA agent on its own session', () => {
  expect([...fleet.otaAgents.keys()].sort()).toEqual([...fleet.devices.keys()].sort());
});

test('a good release: each unit downloads through the presigned URL, verifies, reports SUCCEEDED and reports health on it', async () => {
  const served = lab.stats().presignedUrls.served;
  await createJob('ota-good', '2.0.0', UNITS.good);
  const outcomes = await runUntil(Promise.all(UNITS.good.map((s) => outcomeOf(s, 'ota-good'))));
  expect(outcomes.map((o) => o.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
  expect(lab.stats().presignedUrls).toEqual({ served: served + 3, refused: 0 });
  for (const serial of UNITS.good) {
    const exec = await iot.send(
      new DescribeJobExecutionCommand({ jobId: 'ota-good', thingName: thingOf(serial) }),
    );
    expect(exec.execution?.status).toBe('SUCCEEDED');
    // A health report after the update names the new firmware.
    await runUntil(
      new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (healthOf(serial).some((h) => h.fw === '2.0.0')) {
            clearInterval(check);
            resolve();
          }
        }, 5);
      }),
    );
    expect(fleet.devices.get(thingOf(serial))!.firmware).toBe('2.0.0');
  }
});

test('an install-failure release ends FAILED and the unit keeps its firmware', async () => {
  const [serial] = UNITS.failing;
  await createJob('ota-fail', '3.0.0', UNITS.failing);
  const outcome = await runUntil(outcomeOf(serial, 'ota-fail'));
  expect(outcome).toMatchObject({ status: 'FAILED', behaviour: 'fail-install' });
  const exec = await iot.send(
    new DescribeJobExecutionCommand({ jobId: 'ota-fail', thingName: thingOf(serial) }),
  );
  expect(exec.execution?.status).toBe('FAILED');
  expect(fleet.devices.get(thingOf(serial))!.firmware).toBe('1.0.0');
});

test('a silent-after-success release: SUCCEEDED, then the unit sends nothing more', async () => {
  const [serial] = UNITS.silent;
  await createJob('ota-silent', '5.0.0', UNITS.silent);
  const outcome = await runUntil(outcomeOf(serial, 'ota-silent'));
  expect(outcome).toMatchObject({ status: 'SUCCEEDED', behaviour: 'silent-after-success' });
  const exec = await iot.send(
    new DescribeJobExecutionCommand({ jobId: 'ota-silent', thingName: thingOf(serial) }),
  );
  expect(exec.execution?.status).toBe('SUCCEEDED');
  await fleet.otaAgents.get(thingOf(serial))!.whenIdle();
  await fleet.whenSettled();
  const before = messages.filter((m) => m.clientId === thingOf(serial)).length;
  clock.advance(30_000);
  await fleet.whenSettled();
  expect(messages.filter((m) => m.clientId === thingOf(serial)).length).toBe(before);
});

test('no unit ever opened a second connection under its client id', () => {
  const reasons = messages
    .filter((m) => m.topic.startsWith('$aws/events/presence/disconnected/'))
    .map((m) => (JSON.parse(m.payload.toString()) as { disconnectReason?: string }).disconnectReason);
  // The reboots into new firmware ended sessions; none was taken over by a second connection.
  expect(reasons).toContain('CLIENT_INITIATED_DISCONNECT');
  expect(reasons).not.toContain('DUPLICATE_CLIENTID');
});
