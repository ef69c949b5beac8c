/**
 * Issue 8, items 1 and 5: shared subscriptions (`$share/<group>/<filter>`) on MQTT 3.1.1 and on
 * MQTT 5, as AWS IoT Core documents them: each message to exactly one member of a group, every
 * group gets every message, iot:Subscribe on `topicfilter/$share/<group>/<filter>`, iot:Receive
 * per member, no retained message replay, invalid share names refused.
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import type { IotCore } from '../../../lab/iot';
import '../../../lab/iot/ca';
import {
  arn,
  collect,
  connect,
  endAll,
  identity,
  logged,
  nextMessage,
  openPolicy,
  publish,
  rawConnect,
  rawSubscribe,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
  type RawMqtt,
} from './helpers';

type Creds = { cert: string; key: string };

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
let creds: Creds;
const open: MqttClient[] = [];
const raws: RawMqtt[] = [];

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.registry.putPolicy(
    'open-retain',
    openPolicy([{ Effect: 'Allow', Action: 'iot:RetainPublish', Resource: arn('topic/*') }]),
  );
  creds = await identity(iot, 'open-retain');
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await endAll(open);
});
afterAll(() => stopCore(core, iot));

const versions = [
  ['MQTT 5', 5],
  ['MQTT 3.1.1', 4],
] as const;

async function client(clientId: string, version: 4 | 5, as: Creds = creds): Promise<MqttClient> {
  const c = await connect(core, as, clientId, { protocolVersion: version });
  open.push(c);
  return c;
}

interface Member {
  id: string;
  c: MqttClient;
  got: Array<{ topic: string; payload: string; retain: boolean }>;
}

/**
 * A member of `$share/<group>/<filter>` (a plain subscriber to `filter` when `group` is
 * undefined), also subscribed to its own marker topic `shm/<id>`.
 */
async function member(
  id: string,
  version: 4 | 5,
  group: string | undefined,
  filter: string,
  as: Creds = creds,
): Promise<Member> {
  const c = await client(id, version, as);
  const got = collect(c);
  const subscription = group === undefined ? filter : `$share/${group}/${filter}`;
  expect(await subscribe(c, [subscription, `shm/${id}`])).toEqual([1, 1]);
  return { id, c, got };
}

/**
 * Publishes `n` messages (payloads 0..n-1) on `topic` from one connection, then a marker to
 * each member from the same connection: once a member has its marker, every message routed to
 * it before has arrived.
 */
async function publishAndSettle(pub: MqttClient, topic: string, n: number, members: Member[]): Promise<void> {
  for (let i = 0; i < n; i++) await publish(pub, topic, String(i));
  const markers = members.map((m) => nextMessage(m.c, (t) => t === `shm/${m.id}`));
  for (const m of members) await publish(pub, `shm/${m.id}`, 'marker');
  await Promise.all(markers);
}

function received(m: Member, topic: string): string[] {
  return m.got.filter((x) => x.topic === topic).map((x) => x.payload);
}

const all = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i)).sort();

describe('one message to one member', () => {
  test.each([
    ['MQTT 5', [5, 5, 5]],
    ['MQTT 3.1.1', [4, 4, 4]],
    ['mixed MQTT 5 and 3.1.1', [5, 4, 5]],
  ] as const)('%s: 3 members, 30 messages: each delivered to exactly one member', async (name, vs) => {
    const tag = name.replace(/\W+/g, '');
    const topic = `sh/${tag}/data`;
    const members = await Promise.all(vs.map((v, i) => member(`m-${tag}-${i}`, v, 'g', topic)));
    const pub = await client(`pub-${tag}`, vs[0]);
    await publishAndSettle(pub, topic, 30, members);
    const each = members.map((m) => received(m, topic));
    expect(each.reduce((sum, r) => sum + r.length, 0)).toBe(30);
    expect(each.flat().sort()).toEqual(all(30));
    // spread over the group, not all to one member
    expect(each.filter((r) => r.length > 0).length).toBeGreaterThan(1);
  });

  test.each(versions)('%s: a member not allowed iot:Receive on the topic never gets one', async (_n, v) => {
    const topic = `sh/noreceive${v}/data`;
    core.registry.putPolicy(`no-receive-${v}`, {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/*') },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic/shm/*') },
      ],
    });
    const deaf = await identity(iot, `no-receive-${v}`);
    const members = [
      await member(`nr-${v}-a`, v, 'g', topic),
      await member(`nr-${v}-b`, v, 'g', topic),
      await member(`nr-${v}-deaf`, v, 'g', topic, deaf),
    ];
    const pub = await client(`nr-pub-${v}`, v);
    await publishAndSettle(pub, topic, 30, members);
    expect(received(members[2], topic)).toEqual([]);
    const allowed = [...received(members[0], topic), ...received(members[1], topic)];
    expect(allowed.sort()).toEqual(all(30));
  });

  test.each(versions)('%s: two groups on the same filter each get every message', async (_n, v) => {
    const topic = `sh/groups${v}/data`;
    const g1 = [await member(`g1-${v}-a`, v, 'one', topic), await member(`g1-${v}-b`, v, 'one', topic)];
    const g2 = [await member(`g2-${v}-a`, v, 'two', topic), await member(`g2-${v}-b`, v, 'two', topic)];
    const plain = await member(`plain-${v}`, v, undefined, topic);
    const pub = await client(`groups-pub-${v}`, v);
    await publishAndSettle(pub, topic, 20, [...g1, ...g2, plain]);
    for (const group of [g1, g2]) expect(group.flatMap((m) => received(m, topic)).sort()).toEqual(all(20));
    // and a plain subscription to the same filter gets every message as well
    expect(received(plain, topic).sort()).toEqual(all(20));
  });
});

describe('authorization', () => {
  beforeAll(() => {
    core.registry.putPolicy('plain-only', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic/sh/auth/*') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/sh/auth/data') },
      ],
    });
    core.registry.putPolicy('shared-allowed', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic/sh/auth/*') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/$share/g/sh/auth/data') },
      ],
    });
  });

  test.each(versions)(
    '%s: iot:Subscribe is checked on topicfilter/$share/<group>/<filter>: allowing the plain filter is not enough',
    async (_n, v) => {
      const plainOnly = await identity(iot, 'plain-only');
      const c = await client(`auth-plain-${v}`, v, plainOnly);
      expect(await subscribe(c, 'sh/auth/data')).toEqual([1]);
      expect(await subscribe(c, '$share/g/sh/auth/data')).toEqual([v === 5 ? 0x87 : 0x80]);
      expect(
        logs.some(
          (l) =>
            l.clientId === `auth-plain-${v}` &&
            l.action === 'iot:Subscribe' &&
            String(l.resource).endsWith('topicfilter/$share/g/sh/auth/data'),
        ),
      ).toBe(true);

      const sharedAllowed = await identity(iot, 'shared-allowed');
      const s = await client(`auth-shared-${v}`, v, sharedAllowed);
      expect(await subscribe(s, '$share/g/sh/auth/data')).toEqual([1]);
      expect(await subscribe(s, '$share/other/sh/auth/data')).toEqual([v === 5 ? 0x87 : 0x80]);
      const got = nextMessage(s, (t) => t === 'sh/auth/data');
      await core.publish('sh/auth/data', 'to the group');
      expect((await got).payload.toString()).toBe('to the group');
    },
  );
});

describe('retained messages and share names', () => {
  test.each(versions)('%s: no retained message is replayed on a shared subscription', async (_n, v) => {
    const shared = `sh/retained${v}/data`;
    const kept = `sh/retained${v}/kept`;
    const pub = await client(`ret-pub-${v}`, v);
    await new Promise<void>((resolve, reject) =>
      pub.publish(shared, 'retained', { qos: 1, retain: true }, (e) => (e ? reject(e) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      pub.publish(kept, 'kept', { qos: 1, retain: true }, (e) => (e ? reject(e) : resolve())),
    );
    const { raw, connack } = await rawConnect(core, creds, { clientId: `ret-sub-${v}` }, v);
    raws.push(raw);
    expect(connack?.reasonCode ?? connack?.returnCode).toBe(0);
    // retained messages are sent in the order of the filters: the plain one after the shared one would be
    expect(await rawSubscribe(raw, 1, [`$share/g/${shared}`, kept])).toEqual([1, 1]);
    const keptMessage = (await raw.waitFor((p) => p.cmd === 'publish' && p.topic === kept)) as IPublishPacket;
    expect(keptMessage.retain).toBe(true);
    expect(raw.packets.some((p) => p.cmd === 'publish' && p.topic === shared)).toBe(false);
    // while a plain subscription to it does get the retained message
    expect(await rawSubscribe(raw, 2, [shared])).toEqual([1]);
    expect(await raw.waitFor((p) => p.cmd === 'publish' && p.topic === shared)).toEqual(
      expect.objectContaining({ retain: true }),
    );
  });

  test.each(versions)(
    '%s: invalid share names are refused (0x8F on MQTT 5, 0x80 on 3.1.1), logged',
    async (_n, v) => {
      const id = `share-name-${v}`;
      const { raw } = await rawConnect(core, creds, { clientId: id }, v);
      raws.push(raw);
      const invalid = [
        '$share/a+b/x',
        '$share/a#/x',
        '$share/g',
        '$share//x',
        '$share/g/',
        `$share/${'n'.repeat(129)}/x`,
      ];
      const codes = await rawSubscribe(raw, 1, invalid);
      expect(codes).toEqual(invalid.map(() => (v === 5 ? 0x8f : 0x80)));
      expect(await rawSubscribe(raw, 2, ['$share/good-name_1/x/+', `$share/${'n'.repeat(128)}/x`])).toEqual([
        1, 1,
      ]);
      expect(
        logged(logs, /subscribe refused: share name a\+b cannot contain/).some((l) => l.clientId === id),
      ).toBe(true);
    },
  );
});
