/**
 * The rollout store against dynalite: create once per id, the revision guard that lets only one
 * of two concurrent writers win, the active index, operator command queueing, the size refusal.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { TABLES } from '../../../core/model';
import type { ReleaseRecord } from '../../../core/ota';
import { newRollout, type RolloutState } from '../../../core/rollout';
import { DEFAULT_ROLLOUT_PLAN } from '../../../core/rollout-plan';
import {
  RolloutNotFoundError,
  RolloutRevisionConflictError,
  RolloutStore,
  RolloutTooLargeError,
} from '../../../lambda/rollout/rollout-store';
import { LocalDynamo, startDynalite } from '../../helpers/dynalite';

const T = TABLES.rollouts;
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

let dynamo: LocalDynamo;
let tableSeq = 0;

async function newStore(): Promise<RolloutStore> {
  const name = `Rollouts${++tableSeq}`;
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
  return new RolloutStore(dynamo.doc, name);
}

const stepped = (s: RolloutState, over: Partial<RolloutState>): RolloutState => ({
  ...s,
  ...over,
  revision: s.revision + 1,
});

beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(async () => {
  await dynamo.stop();
});

test('a rollout is created once; the second create of the same id reports false', async () => {
  const store = await newStore();
  const r = newRollout(release('2.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  expect(await store.create(r)).toBe(true);
  expect(await store.create(r)).toBe(false);
  expect((await store.require(r.rolloutId)).state).toEqual(r);
  await expect(store.require('nope')).rejects.toBeInstanceOf(RolloutNotFoundError);
});

test('of two writers at the same revision only one wins', async () => {
  const store = await newStore();
  const r = newRollout(release('2.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  await store.create(r);
  const results = await Promise.allSettled([
    store.record(stepped(r, { status: 'RUNNING' }), r.revision),
    store.record(stepped(r, { status: 'PAUSED' }), r.revision),
  ]);
  expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
  const lost = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
  expect(lost.reason).toBeInstanceOf(RolloutRevisionConflictError);
  expect((await store.require(r.rolloutId)).state.revision).toBe(1);
});

test('the active index lists rollouts until they reach a final state', async () => {
  const store = await newStore();
  const a = newRollout(release('2.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  const b = newRollout(release('3.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  await store.create(a);
  await store.create(b);
  expect((await store.listActiveIds()).sort()).toEqual([a.rolloutId, b.rolloutId].sort());
  await store.record(stepped(a, { status: 'SUCCEEDED' }), 0);
  expect(await store.listActiveIds()).toEqual([b.rolloutId]);
  expect((await store.listAll()).map((x) => x.state.status).sort()).toEqual(['PENDING', 'SUCCEEDED']);
});

test('operator commands are queued once, survive a state write, and applied ones are trimmed', async () => {
  const store = await newStore();
  const r = newRollout(release('2.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  await store.create(r);
  const pause = { id: 'c1', kind: 'pause' as const, by: 'ci' };
  await Promise.all([store.appendCommand(r.rolloutId, pause), store.appendCommand(r.rolloutId, pause)]);
  expect((await store.require(r.rolloutId)).commands).toEqual([pause]);
  await store.record(stepped(r, { appliedCommands: ['c1'] }), 0);
  expect((await store.require(r.rolloutId)).commands).toEqual([pause]);
  const resume = { id: 'c2', kind: 'resume' as const, by: 'ci' };
  const abort = { id: 'c3', kind: 'abort' as const, by: 'ci' };
  await Promise.all([store.appendCommand(r.rolloutId, resume), store.appendCommand(r.rolloutId, abort)]);
  const ids = (await store.require(r.rolloutId)).commands.map((c) => c.id).sort();
  expect(ids).toEqual(['c2', 'c3']);
});

test('a state over the item budget is refused before any write, naming the fix', async () => {
  const store = await newStore();
  const r = newRollout(release('2.0.0'), DEFAULT_ROLLOUT_PLAN, NOW);
  await store.create(r);
  const ledger: RolloutState['ledger'] = {};
  for (let i = 0; i < 4000; i++) {
    ledger[`fleet-SN${String(i).padStart(6, '0')}`] = {
      thing: `fleet-SN${String(i).padStart(6, '0')}`,
      serial: `SN${String(i).padStart(6, '0')}`,
      lot: 'L1',
      hwRev: 'A',
      ring: 'broad',
      previousFirmware: '1.0.0',
      stage: 2,
      jobId: 'x'.repeat(60),
    };
  }
  const big = stepped(r, { ledger });
  const err = await store.record(big, 0).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RolloutTooLargeError);
  expect((err as Error).message).toMatch(/split the release into rollouts over fewer devices/);
  expect((await store.require(r.rolloutId)).state.revision).toBe(0);
});
