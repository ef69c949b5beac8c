/**
 * The controller pass against the lab's IoT Jobs control plane and package catalog and against
 * dynalite: a rollout started for a few registered things gets its canary job once, even when two
 * passes run at the same time, with the stage class's template and the release's package version.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateJobTemplateCommand,
  CreatePackageCommand,
  CreatePackageVersionCommand,
  CreateThingCommand,
  DescribeJobCommand,
  ListJobExecutionsForJobCommand,
  ListJobsCommand,
  UpdatePackageVersionCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { IotCore, IotJobsApi as LabJobs } from '../../../lab/iot';
import { releaseAttributes } from '../../../cli/firmware-release';
import { TABLES } from '../../../core/model';
import type { ReleaseRecord } from '../../../core/ota';
import { newRollout } from '../../../core/rollout';
import { DEFAULT_ROLLOUT_PLAN } from '../../../core/rollout-plan';
import { runControllerPass, type ControllerDeps } from '../../../lambda/rollout/controller';
import { createIotJobsApi } from '../../../lambda/rollout/iot-jobs';
import { readCandidates, trailAppender } from '../../../lambda/rollout/registry-adapters';
import { RolloutStore } from '../../../lambda/rollout/rollout-store';
import { createRegistryTables, LocalDynamo, startDynalite } from '../../helpers/dynalite';
import { arn, fakeClock, startCore, stopCore } from '../lab-iot/helpers';

const PACKAGE = 'fleet-firmware';
const clock = fakeClock();
const now = () => new Date(clock.now());

const RELEASE: ReleaseRecord = {
  version: '2.0.0',
  hwRevs: ['A'],
  sizeBytes: 1024,
  sha256: 'a'.repeat(64),
  signature: 'MEUCIQ==',
  signatureAlgorithm: 'ECDSA-P256-SHA256',
  s3: { bucket: 'fw', key: 'firmware/2.0.0/image.bin' },
  publishedAt: '2026-12-05T00:00:00.000Z',
};

let core: IotCore & { jobs: LabJobs };
let iot: IoTClient;
let dynamo: LocalDynamo;
let deps: ControllerDeps;
let store: RolloutStore;
const handler = new NodeHttpHandler();

async function rolloutsTable(name: string): Promise<void> {
  const T = TABLES.rollouts;
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: T.partitionKey, AttributeType: 'S' },
        { AttributeName: T.activeKey, AttributeType: 'S' },
      ],
      KeySchema: [{ AttributeName: T.partitionKey, KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: T.activeIndex,
          KeySchema: [
            { AttributeName: T.activeKey, KeyType: 'HASH' },
            { AttributeName: T.activeSortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    }),
  );
}

beforeAll(async () => {
  const started = await startCore({ clock: clock.now, jobsTickMs: 0 });
  core = started.core as IotCore & { jobs: LabJobs };
  iot = started.iot;
  dynamo = await startDynalite();
  const registry = await createRegistryTables(dynamo.client, 'Ctl');
  await rolloutsTable('RolloutsCtl');
  store = new RolloutStore(dynamo.doc, 'RolloutsCtl');

  await dynamo.doc.send(
    new PutCommand({
      TableName: registry.lots,
      Item: { lot: 'L1', status: 'OK', claimCertificateIds: [], requireAttestation: false, unitCount: 6 },
    }),
  );
  const rings = ['canary', 'canary', 'early', 'early', 'broad', 'broad'];
  for (const [i, ring] of rings.entries()) {
    const thingName = `fleet-SN00${i}`;
    await iot.send(new CreateThingCommand({ thingName }));
    await dynamo.doc.send(
      new PutCommand({
        TableName: registry.devices,
        Item: {
          serial: `SN00${i}`,
          lot: 'L1',
          hwRev: 'A',
          factoryFirmware: '1.0.0',
          currentFirmware: '1.0.0',
          status: 'ACTIVE',
          thingName,
          ring,
          revision: 1,
          createdAt: now().toISOString(),
          updatedAt: now().toISOString(),
        },
      }),
    );
  }
  await iot.send(new CreatePackageCommand({ packageName: PACKAGE }));
  await iot.send(
    new CreatePackageVersionCommand({
      packageName: PACKAGE,
      versionName: RELEASE.version,
      attributes: releaseAttributes(RELEASE),
    }),
  );
  await iot.send(
    new UpdatePackageVersionCommand({
      packageName: PACKAGE,
      versionName: RELEASE.version,
      action: 'PUBLISH',
    }),
  );
  const jobTemplateArns: Record<string, string> = {};
  for (const cls of ['canary', 'early', 'broad']) {
    const out = await iot.send(
      new CreateJobTemplateCommand({
        jobTemplateId: `fleet-${cls}`,
        description: `${cls} stage class`,
        document: JSON.stringify({ operation: 'firmware-update' }),
        timeoutConfig: { inProgressTimeoutInMinutes: 60 },
      }),
    );
    jobTemplateArns[cls] = out.jobTemplateArn as string;
  }

  deps = {
    store,
    jobs: createIotJobsApi({
      handler,
      maxAttempts: 1,
      settings: {
        credentials: async () => ({ accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-test-secret' }),
        region: async () => 'us-east-1',
        useFipsEndpoint: async () => false,
        useDualstackEndpoint: async () => false,
      },
      env: { AWS_ENDPOINT_URL_IOT: core.controlPlaneUrl },
    }),
    candidates: () => readCandidates(dynamo.doc, registry),
    appendTrail: trailAppender(dynamo.doc, registry.events, now),
    packageName: PACKAGE,
    jobTemplateArns,
    iotArnPrefix: arn(''),
  };
});

afterAll(async () => {
  handler.destroy();
  await stopCore(core, iot);
  await dynamo.stop();
});

test('two concurrent passes and a third create the canary job once, for the canary things', async () => {
  const rollout = newRollout(RELEASE, DEFAULT_ROLLOUT_PLAN, now());
  expect(await store.create(rollout)).toBe(true);

  const [a, b] = await Promise.all([runControllerPass(deps, now), runControllerPass(deps, now)]);
  const created = [...a, ...b].flatMap((o) => o.jobsCreated);
  expect([...a, ...b].filter((o) => o.error)).toEqual([]);
  expect(created).toHaveLength(1);
  expect([...a, ...b].filter((o) => o.recorded)).toHaveLength(1);

  clock.advance(60_000);
  core.jobs.tick();
  const third = await runControllerPass(deps, now);
  expect(third[0].error).toBeUndefined();
  expect(third[0].jobsCreated).toEqual([]);

  const jobs = (await iot.send(new ListJobsCommand({}))).jobs ?? [];
  expect(jobs.map((j) => j.jobId)).toEqual([created[0]]);
  const job = (await iot.send(new DescribeJobCommand({ jobId: created[0] }))).job;
  expect(job?.jobTemplateArn).toBe(deps.jobTemplateArns.canary);
  expect(job?.destinationPackageVersions).toEqual([arn(`package/${PACKAGE}/version/2.0.0`)]);
  const execs = await iot.send(new ListJobExecutionsForJobCommand({ jobId: created[0] }));
  const things = (execs.executionSummaries ?? []).map((s) => (s.thingArn as string).split('/').pop()).sort();
  expect(things).toEqual(['fleet-SN000', 'fleet-SN001']);

  const stored = await store.require(rollout.rolloutId);
  expect(stored.state.status).toBe('RUNNING');
  expect(stored.state.stages[0].jobId).toBe(created[0]);
});

test('last health report times come from the registry: the later of healthTs and lastSeen', async () => {
  const { UpdateCommand } = await import('@aws-sdk/lib-dynamodb');
  const { readLastHealthReports } = await import('../../../lambda/rollout/registry-adapters');
  const table = 'DevicesCtl';
  await dynamo.doc.send(
    new UpdateCommand({
      TableName: table,
      Key: { serial: 'SN000' },
      UpdateExpression: 'SET healthTs = :t, lastSeen = :l',
      ExpressionAttributeValues: { ':t': 5_000, ':l': new Date(2_000).toISOString() },
    }),
  );
  await dynamo.doc.send(
    new UpdateCommand({
      TableName: table,
      Key: { serial: 'SN001' },
      UpdateExpression: 'SET lastSeen = :l',
      ExpressionAttributeValues: { ':l': new Date(9_000).toISOString() },
    }),
  );
  const got = await readLastHealthReports(dynamo.doc, table, [
    { thing: 'fleet-SN000', serial: 'SN000' },
    { thing: 'fleet-SN001', serial: 'SN001' },
    { thing: 'fleet-SN002', serial: 'SN002' },
  ]);
  expect(got).toEqual({ 'fleet-SN000': 5_000, 'fleet-SN001': 9_000 });
});
