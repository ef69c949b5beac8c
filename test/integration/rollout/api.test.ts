/**
 * The rollout API against dynalite (the package catalog is a plain object): payload errors that
 * name the field and the fix, idempotent start, conflict on another plan, queued commands.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { releaseAttributes } from '../../../cli/firmware-release';
import { TABLES } from '../../../core/model';
import type { ReleaseRecord } from '../../../core/ota';
import { DEFAULT_ROLLOUT_PLAN } from '../../../core/rollout-plan';
import { handleRolloutApi, type RolloutApiDeps } from '../../../lambda/rollout/api';
import { RolloutStore } from '../../../lambda/rollout/rollout-store';
import { LocalDynamo, startDynalite } from '../../helpers/dynalite';

const NOW = new Date(Date.UTC(2026, 11, 6));
const release = (version: string): ReleaseRecord => ({
  version,
  hwRevs: ['A'],
  sizeBytes: 1024,
  sha256: 'a'.repeat(64),
  signature: 'MEUCIQ==',
  signatureAlgorithm: 'ECDSA-P256-SHA256',
  s3: { bucket: 'fw', key: `firmware/${version}/image.bin` },
  publishedAt: '2026-12-05T00:00:00.000Z',
});
const catalog: Record<string, { attributes: Record<string, string>; status: string; arn: string }> = {
  '2.0.0': { attributes: releaseAttributes(release('2.0.0')), status: 'PUBLISHED', arn: 'arn:pv/2.0.0' },
  '3.0.0': { attributes: releaseAttributes(release('3.0.0')), status: 'DRAFT', arn: 'arn:pv/3.0.0' },
};

let dynamo: LocalDynamo;
let deps: RolloutApiDeps;
const api = (input: unknown) => handleRolloutApi(input, deps, NOW);

beforeAll(async () => {
  dynamo = await startDynalite();
  const T = TABLES.rollouts;
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: 'RolloutsApi',
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
  deps = {
    store: new RolloutStore(dynamo.doc, 'RolloutsApi'),
    jobs: { getPackageVersion: async (_p, v) => catalog[v] },
    packageName: 'fleet-firmware',
  };
});
afterAll(() => dynamo.stop());

test.each([
  [{}, /action: set "action" to one of start/],
  [{ action: 'status' }, /rolloutId/],
  [{ action: 'start' }, /release/],
  [
    { action: 'start', release: '2.0.0', preset: 'nope' },
    /preset: unknown preset "nope"; use one of default/,
  ],
  [{ action: 'pause', rolloutId: 'x', colour: 'red' }, /colour/],
  [
    { action: 'start', release: '3.0.0' },
    /3\.0\.0 is not a published version .*\(it is DRAFT\).*fleet firmware publish/,
  ],
  [{ action: 'start', release: '4.0.0' }, /fleet firmware publish --version 4\.0\.0/],
])('%j is refused with a message naming the field and fix', async (input, message) => {
  const r = await api(input);
  expect(r.ok).toBe(false);
  expect(!r.ok && r.error.message).toMatch(message);
});

test('start twice is one rollout; another plan for the running release is a conflict', async () => {
  const first = await api({ action: 'start', release: '2.0.0' });
  const again = await api({ action: 'start', release: '2.0.0', preset: 'default' });
  expect(first).toMatchObject({ ok: true, created: true, rollout: { status: 'PENDING', release: '2.0.0' } });
  expect(again).toMatchObject({ ok: true, created: false });
  const id = first.ok && first.action === 'start' ? first.rollout.rolloutId : '';
  expect(again.ok && again.action === 'start' && again.rollout.rolloutId).toBe(id);

  const otherPlan = { ...DEFAULT_ROLLOUT_PLAN, stages: DEFAULT_ROLLOUT_PLAN.stages.slice(0, 1) };
  const conflict = await api({ action: 'start', release: '2.0.0', plan: otherPlan });
  expect(conflict).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });

  const paused = await api({ action: 'pause', rolloutId: id, by: 'ci' });
  expect(paused).toMatchObject({ ok: true, queued: { kind: 'pause', by: 'ci' } });
  const retried = await api({ action: 'pause', rolloutId: id, by: 'ci' });
  expect(retried.ok && 'rollout' in retried && retried.rollout.pendingCommands).toHaveLength(1);

  const listed = await api({ action: 'list' });
  expect(listed.ok && listed.action === 'list' && listed.rollouts.map((r) => r.rolloutId)).toEqual([id]);
  expect(await api({ action: 'status', rolloutId: 'nope' })).toMatchObject({
    ok: false,
    error: { code: 'NOT_FOUND' },
  });
});
