/**
 * Issue 8, item 5 and the second acceptance line: every AWS IoT Core broker limit
 * (lab/iot/mqtt/limits.ts) refused as AWS answers it, on MQTT 5 (a reason code) and on MQTT
 * 3.1.1 (a return code, a SUBACK failure or the connection closed), nothing of a refused publish
 * delivered, and the refusal logged with its reason. Packets are written raw (no client-side
 * checks) so that the broker alone decides.
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import { generate, type IConnackPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import type { IotCore, IotMessage } from '../../../lab/iot';
import '../../../lab/iot/ca';
import {
  collect,
  connect,
  end,
  publish,
  identity,
  logged,
  openPolicy,
  rawConnect,
  rawPuback,
  rawServerDisconnect,
  rawSubscribe,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
  type RawMqtt,
} from './helpers';

const MAX_PACKET = 128 * 1024;

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
let creds: { cert: string; key: string };
let watcher: MqttClient;
let flusher: MqttClient;
let seen: Array<{ topic: string; payload: string; retain: boolean }>;
const messages: IotMessage[] = [];
const raws: RawMqtt[] = [];

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('open', openPolicy());
  creds = await identity(iot, 'open');
  watcher = await connect(core, creds, 'watcher');
  seen = collect(watcher);
  expect(await subscribe(watcher, 'lim/#')).toEqual([1]);
  flusher = await connect(core, creds, 'flusher');
});
afterEach(() => {
  for (const r of raws.splice(0)) r.destroy();
});
afterAll(async () => {
  await Promise.all([end(watcher), end(flusher)]);
  await stopCore(core, iot);
});

const versions = [
  ['MQTT 5', 5],
  ['MQTT 3.1.1', 4],
] as const;

/** A raw connection that must be accepted. */
async function open(clientId: string, version: 4 | 5, extra: Record<string, unknown> = {}): Promise<RawMqtt> {
  const { raw, connack } = await rawConnect(core, creds, { clientId, ...extra }, version);
  raws.push(raw);
  expect(connackCode(connack)).toBe(0);
  return raw;
}

function connackCode(connack: IConnackPacket | undefined): number | undefined {
  return connack?.reasonCode ?? connack?.returnCode;
}

function publishPacket(
  messageId: number,
  topic: string,
  payload: string | Buffer,
  extra: Partial<IPublishPacket> = {},
): IPublishPacket {
  return { cmd: 'publish', messageId, topic, payload, qos: 1, dup: false, retain: false, ...extra };
}

/**
 * Proves every message published before now has reached the watcher (subscribed to lim/# at
 * QoS 1): a QoS 1 marker from another connection is queued behind them for the watcher.
 */
async function settle(): Promise<void> {
  const marker = `marker-${Math.random().toString(16).slice(2)}`;
  const arrived = new Promise<void>((resolve) => {
    const on = (t: string, p: Buffer): void => {
      if (t !== 'lim/flush' || p.toString() !== marker) return;
      watcher.off('message', on);
      resolve();
    };
    watcher.on('message', on);
  });
  await publish(flusher, 'lim/flush', marker, 1);
  await arrived;
}

function delivered(topic: string): string[] {
  return seen.filter((m) => m.topic === topic).map((m) => m.payload);
}

function routed(topic: string): IotMessage[] {
  return messages.filter((m) => m.topic === topic);
}

/** The refusal log entries of one client whose message matches. */
function refusals(clientId: string, pattern: RegExp): LogEntry[] {
  return logged(logs, pattern).filter((l) => l.clientId === clientId && l.level === 'warn');
}

/** A payload that makes a QoS 1 PUBLISH to `topic` exactly `total` bytes long on the wire. */
function payloadForPacketOf(total: number, topic: string, version: 4 | 5): Buffer {
  // fixed header 1 byte + 3-byte remaining length (for 16 KiB..2 MiB); topic; packet id; MQTT 5 properties length
  const overhead = 1 + 3 + 2 + Buffer.byteLength(topic) + 2 + (version === 5 ? 1 : 0);
  const payload = Buffer.alloc(total - overhead, 0x61);
  expect(generate(publishPacket(1, topic, payload), { protocolVersion: version }).length).toBe(total);
  return payload;
}

describe('QoS 2', () => {
  test.each(versions)(
    '%s: a QoS 2 PUBLISH ends the connection, nothing delivered, logged',
    async (_n, version) => {
      const id = `q2pub-${version}`;
      const topic = `lim/q2pub/${version}`;
      const raw = await open(id, version);
      raw.send(publishPacket(1, topic, 'two', { qos: 2 }));
      const disconnect = await rawServerDisconnect(raw);
      if (version === 5) expect(disconnect?.reasonCode).toBe(0x9b);
      else expect(disconnect).toBeUndefined();
      expect(raw.packets.map((p) => p.cmd)).toEqual(version === 5 ? ['connack', 'disconnect'] : ['connack']);
      await settle();
      expect(delivered(topic)).toEqual([]);
      expect(routed(topic)).toEqual([]);
      expect(refusals(id, /publish refused: QoS 2/)).toHaveLength(1);
    },
  );

  test.each(versions)(
    '%s: a QoS 2 SUBSCRIBE ends the connection without a SUBACK, logged',
    async (_n, version) => {
      const id = `q2sub-${version}`;
      const raw = await open(id, version);
      expect(await rawSubscribe(raw, 1, [`lim/q2sub/${version}`], 2)).toBeUndefined();
      const disconnect = await rawServerDisconnect(raw);
      if (version === 5) expect(disconnect?.reasonCode).toBe(0x9b);
      else expect(disconnect).toBeUndefined();
      expect(refusals(id, /subscribe refused: QoS 2 SUBSCRIBE/)).toHaveLength(1);
    },
  );

  test.each(versions)('%s: a Will message with QoS 2 is refused at CONNECT, logged', async (_n, version) => {
    const id = `q2will-${version}`;
    const { raw, connack } = await rawConnect(
      core,
      creds,
      { clientId: id, will: { topic: `lim/q2will/${version}`, payload: 'gone', qos: 2, retain: false } },
      version,
    );
    raws.push(raw);
    // MQTT 5: CONNACK 0x9B; MQTT 3.1.1: no CONNACK, the connection is closed
    if (version === 5) expect(connack?.reasonCode).toBe(0x9b);
    else expect(connack).toBeUndefined();
    await raw.waitFor(() => false);
    expect(logs.some((l) => l.clientId === id && /connect refused: Will QoS 2/.test(String(l.msg)))).toBe(
      true,
    );
  });

  test.each(versions)('%s: QoS 0 and QoS 1 are accepted', async (_n, version) => {
    const topic = `lim/q01/${version}`;
    const raw = await open(`q01-${version}`, version);
    expect(await rawSubscribe(raw, 1, ['lim/q01/zero'], 0)).toEqual([0]);
    expect(await rawSubscribe(raw, 2, ['lim/q01/one'], 1)).toEqual([1]);
    raw.send(publishPacket(0, topic, 'zero', { qos: 0, messageId: undefined }));
    raw.send(publishPacket(3, topic, 'one'));
    expect(await rawPuback(raw, 3)).toBe(0);
    await settle();
    expect(delivered(topic)).toEqual(['zero', 'one']);
  });
});

describe('packet size: 128 KiB', () => {
  test.each(versions)(
    '%s: a PUBLISH of 131073 bytes (one over) is refused, nothing delivered, logged',
    async (_n, version) => {
      const id = `big1-${version}`;
      const topic = `lim/big1/${version}`;
      const raw = await open(id, version);
      raw.send(publishPacket(1, topic, payloadForPacketOf(MAX_PACKET + 1, topic, version)));
      // the broker's answer: a PUBACK (accepted) or the end of the connection
      const answer = await raw.waitFor((p) => p.cmd === 'puback');
      expect(answer).toBeUndefined();
      const disconnect = await rawServerDisconnect(raw);
      if (version === 5) expect(disconnect?.reasonCode).toBe(0x95);
      else expect(disconnect).toBeUndefined();
      expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
      await settle();
      expect(delivered(topic)).toEqual([]);
      expect(routed(topic)).toEqual([]);
      expect(refusals(id, /packet refused: .*maximum packet size/)).toHaveLength(1);
    },
  );

  test.each(versions)('%s: a 129 KiB payload is refused, nothing delivered, logged', async (_n, version) => {
    const id = `big2-${version}`;
    const topic = `lim/big2/${version}`;
    const raw = await open(id, version);
    raw.send(publishPacket(1, topic, Buffer.alloc(129 * 1024, 0x62)));
    const disconnect = await rawServerDisconnect(raw);
    if (version === 5) expect(disconnect?.reasonCode).toBe(0x95);
    else expect(disconnect).toBeUndefined();
    expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
    await settle();
    expect(delivered(topic)).toEqual([]);
    expect(routed(topic)).toEqual([]);
    expect(refusals(id, /packet refused: .*maximum packet size/)).toHaveLength(1);
  });

  test.each(versions)(
    '%s: a PUBLISH of exactly 131072 bytes is accepted and delivered whole',
    async (_n, version) => {
      const topic = `lim/fits/${version}`;
      const raw = await open(`fits-${version}`, version);
      const payload = payloadForPacketOf(MAX_PACKET, topic, version);
      raw.send(publishPacket(1, topic, payload));
      expect(await rawPuback(raw, 1)).toBe(0);
      await settle();
      expect(delivered(topic)).toEqual([payload.toString()]);
      expect(routed(topic).map((m) => m.payload.length)).toEqual([payload.length]);
    },
  );
});

describe('topic: 7 slashes and 256 bytes', () => {
  const seven = (v: number): string => `lim/s${v}/2/3/4/5/6/7`;
  const eight = (v: number): string => `${seven(v)}/8`;

  test.each(versions)('%s: a topic with 8 slashes is refused, 7 pass, logged', async (_n, version) => {
    const id = `slash-${version}`;
    const [SEVEN, EIGHT] = [seven(version), eight(version)];
    const raw = await open(id, version);
    raw.send(publishPacket(1, SEVEN, `seven-${version}`));
    expect(await rawPuback(raw, 1)).toBe(0);
    raw.send(publishPacket(2, EIGHT, `eight-${version}`));
    if (version === 5) {
      expect(await rawPuback(raw, 2)).toBe(0x90);
      // the connection stays up
      raw.send(publishPacket(3, SEVEN, `seven-again-${version}`));
      expect(await rawPuback(raw, 3)).toBe(0);
    } else {
      await raw.closed;
      expect(raw.packets.some((p) => p.cmd === 'puback' && p.messageId === 2)).toBe(false);
    }
    await settle();
    expect(delivered(SEVEN)).toEqual(
      version === 5 ? [`seven-${version}`, `seven-again-${version}`] : [`seven-${version}`],
    );
    expect(delivered(EIGHT)).toEqual([]);
    expect(routed(EIGHT)).toEqual([]);
    expect(refusals(id, /publish refused: topic has 8 slashes/)).toHaveLength(1);
  });

  test.each(versions)(
    '%s: the Basic Ingest prefix $aws/rules/<rule>/ is not counted',
    async (_n, version) => {
      const raw = await open(`ingest-${version}`, version);
      const at7 = `$aws/rules/limits_rule/${seven(version)}`;
      const at8 = `$aws/rules/limits_rule/${eight(version)}`;
      raw.send(publishPacket(1, at7, `ingest-${version}`));
      expect(await rawPuback(raw, 1)).toBe(0);
      expect(routed(at7).map((m) => m.payload.toString())).toEqual([`ingest-${version}`]);
      raw.send(publishPacket(2, at8, `ingest8-${version}`));
      if (version === 5) expect(await rawPuback(raw, 2)).toBe(0x90);
      else {
        await raw.closed;
        expect(raw.packets.some((p) => p.cmd === 'puback' && p.messageId === 2)).toBe(false);
      }
      expect(routed(at8)).toEqual([]);
    },
  );

  test.each(versions)('%s: a topic filter with 8 slashes is refused, 7 granted', async (_n, version) => {
    const id = `slashsub-${version}`;
    const raw = await open(id, version);
    expect(await rawSubscribe(raw, 1, [seven(version), eight(version)])).toEqual([
      1,
      version === 5 ? 0x8f : 0x80,
    ]);
    expect(refusals(id, /subscribe refused: topic filter has 8 slashes/)).toHaveLength(1);
  });

  test.each(versions)('%s: a topic of 257 bytes is refused, 256 bytes pass, logged', async (_n, version) => {
    const id = `long-${version}`;
    const at256 = `lim/long/${version}/`.padEnd(256, 'x');
    const at257 = `${at256}x`;
    expect(Buffer.byteLength(at256)).toBe(256);
    const raw = await open(id, version);
    raw.send(publishPacket(1, at256, 'fits'));
    expect(await rawPuback(raw, 1)).toBe(0);
    raw.send(publishPacket(2, at257, 'too long'));
    if (version === 5) expect(await rawPuback(raw, 2)).toBe(0x90);
    else {
      await raw.closed;
      expect(raw.packets.some((p) => p.cmd === 'puback' && p.messageId === 2)).toBe(false);
    }
    await settle();
    expect(delivered(at256)).toEqual(['fits']);
    expect(routed(at257)).toEqual([]);
    expect(refusals(id, /publish refused: topic is 257 bytes/)).toHaveLength(1);
  });

  test('the topic size counts UTF-8 bytes, not characters (129 two-byte characters are refused)', async () => {
    const id = 'utf8topic';
    const topic = `lim/${'é'.repeat(127)}`; // 4 + 254 = 258 bytes, 131 characters
    const raw = await open(id, 5);
    raw.send(publishPacket(1, topic, 'x'));
    expect(await rawPuback(raw, 1)).toBe(0x90);
    expect(refusals(id, /publish refused: topic is 258 bytes/)).toHaveLength(1);
  });
});

describe('client id: 128 bytes', () => {
  test.each(versions)(
    '%s: a client id of 129 bytes is refused, 128 bytes connect, logged',
    async (_n, version) => {
      const at128 = `cid-${version}-`.padEnd(128, 'c');
      const at129 = `${at128}c`;
      const refused = await rawConnect(core, creds, { clientId: at129 }, version);
      raws.push(refused.raw);
      expect(connackCode(refused.connack)).toBe(version === 5 ? 0x85 : 2);
      await refused.raw.closed;
      expect(
        logs.filter((l) => l.clientId === at129 && /connect refused: client id is 129 bytes/.test(l.msg)),
      ).toHaveLength(1);
      await open(at128, version);
    },
  );

  test('client id bytes are counted in UTF-8 (65 two-byte characters are refused)', async () => {
    const { raw, connack } = await rawConnect(core, creds, { clientId: 'é'.repeat(65) }, 5);
    raws.push(raw);
    expect(connackCode(connack)).toBe(0x85);
  });
});

describe('keep-alive: 30 to 1200 s', () => {
  test.each([
    [10, 30],
    [29, 30],
    [65535, 1200],
    [1201, 1200],
    [0, 1200],
  ])(
    'MQTT 5: a requested keep-alive of %i s gets Server Keep Alive %i in the CONNACK',
    async (asked, given) => {
      const { raw, connack } = await rawConnect(
        core,
        creds,
        { clientId: `ka-${asked}`, keepalive: asked },
        5,
      );
      raws.push(raw);
      expect(connack?.reasonCode).toBe(0);
      expect(connack?.properties?.serverKeepAlive).toBe(given);
    },
  );

  test.each([30, 60, 1200])('MQTT 5: a keep-alive of %i s is taken as asked', async (asked) => {
    const { raw, connack } = await rawConnect(
      core,
      creds,
      { clientId: `ka-ok-${asked}`, keepalive: asked },
      5,
    );
    raws.push(raw);
    expect(connack?.reasonCode).toBe(0);
    expect(connack?.properties?.serverKeepAlive ?? asked).toBe(asked);
  });
});

describe('subscriptions: 8 per SUBSCRIBE, 50 per connection', () => {
  const filters = (prefix: string, n: number, from = 0): string[] =>
    Array.from({ length: n }, (_, i) => `lim/${prefix}/${from + i}`);

  test.each(versions)(
    '%s: 9 filters in one SUBSCRIBE are all refused, 8 are granted, logged',
    async (_n, version) => {
      const id = `nine-${version}`;
      const raw = await open(id, version);
      const nine = filters(`nine${version}`, 9);
      expect(await rawSubscribe(raw, 1, nine)).toEqual(Array(9).fill(version === 5 ? 0x97 : 0x80));
      expect(refusals(id, /subscribe refused: 9 filters in one SUBSCRIBE/).length).toBeGreaterThan(0);
      const eight = filters(`eight${version}`, 8);
      expect(await rawSubscribe(raw, 2, eight)).toEqual(Array(8).fill(1));
      // none of the nine is in force: a message to one of them is not delivered before the one
      // to a granted filter published after it
      raw.send(publishPacket(3, nine[0], 'to nine'));
      raw.send(publishPacket(4, eight[0], 'to eight'));
      expect(await raw.waitFor((p) => p.cmd === 'publish' && p.topic === eight[0])).toBeDefined();
      expect(raw.packets.some((p) => p.cmd === 'publish' && p.topic === nine[0])).toBe(false);
    },
  );

  test.each(versions)('%s: the 51st subscription of a connection is refused, logged', async (_n, version) => {
    const id = `fifty-${version}`;
    const raw = await open(id, version);
    for (let i = 0; i < 50; i += 8) {
      const batch = filters(`fifty${version}`, Math.min(8, 50 - i), i);
      expect(await rawSubscribe(raw, 1 + i, batch)).toEqual(Array(batch.length).fill(1));
    }
    // subscribing again to one it has is not a new subscription
    expect(await rawSubscribe(raw, 100, filters(`fifty${version}`, 1))).toEqual([1]);
    const sub51 = await rawSubscribe(raw, 101, [`lim/fifty${version}/50`]);
    if (version === 5) {
      expect(sub51).toEqual([0x97]);
      // the connection stays up and the 50 still work
      raw.send(publishPacket(102, `lim/fifty${version}/49`, 'still'));
      expect(await rawPuback(raw, 102)).toBe(0);
      const got = await raw.waitFor((p) => p.cmd === 'publish' && p.topic === `lim/fifty${version}/49`);
      expect(got).toBeDefined();
    } else {
      // MQTT 3.1.1: "the connection is closed"
      expect(sub51).toBeUndefined();
      expect(raw.isClosed()).toBe(true);
    }
    expect(
      refusals(id, /subscribe refused: over AWS IoT Core's 50 subscriptions per connection/),
    ).toHaveLength(1);
  });
});

describe('publishes per second per connection: 100', () => {
  const N = 300;

  test('MQTT 5: over 100 publishes in a burst, some get PUBACK 0x97 and exactly the ones acknowledged 0x00 are delivered', async () => {
    const id = 'rate-5';
    const topic = 'lim/rate/5';
    const raw = await open(id, 5);
    raw.sendAll(Array.from({ length: N }, (_, i) => publishPacket(i + 1, topic, String(i + 1)) as Packet));
    const codes = await Promise.all(Array.from({ length: N }, (_, i) => rawPuback(raw, i + 1)));
    expect(codes.every((c) => c === 0 || c === 0x97)).toBe(true);
    const accepted = codes.flatMap((c, i) => (c === 0 ? [String(i + 1)] : []));
    expect(codes.filter((c) => c === 0x97).length).toBeGreaterThan(0);
    expect(accepted.length).toBeGreaterThan(0);
    await settle();
    expect(delivered(topic).sort()).toEqual([...accepted].sort());
    expect(
      routed(topic)
        .map((m) => m.payload.toString())
        .sort(),
    ).toEqual([...accepted].sort());
    expect(refusals(id, /publish refused: over AWS IoT Core's 100 publishes per second/).length).toBe(
      N - accepted.length,
    );
  });

  test('MQTT 3.1.1: over 100 publishes in a burst, the excess is discarded', async () => {
    const id = 'rate-4';
    const topic = 'lim/rate/4';
    const raw = await open(id, 4);
    raw.sendAll(Array.from({ length: N }, (_, i) => publishPacket(i + 1, topic, String(i + 1)) as Packet));
    // the broker handles a connection's packets in order: its PINGRESP comes after all 300
    // publishes were taken or discarded (whether a discarded one is acknowledged is not asserted),
    // and the connection is still open
    raw.send({ cmd: 'pingreq' });
    expect(await raw.waitFor((p) => p.cmd === 'pingresp')).toBeDefined();
    await settle();
    const got = delivered(topic);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(N);
    expect(routed(topic).length).toBe(got.length);
    expect(refusals(id, /publish refused: over AWS IoT Core's 100 publishes per second/).length).toBe(
      N - got.length,
    );
  });
});

describe('subscription identifiers and topic aliases (MQTT 5)', () => {
  test('a Subscription Identifier in SUBSCRIBE ends the connection with DISCONNECT 0xA1, logged', async () => {
    const id = 'subid';
    const raw = await open(id, 5);
    expect(await rawSubscribe(raw, 1, ['lim/subid'], 1, { subscriptionIdentifier: 7 })).toBeUndefined();
    expect((await rawServerDisconnect(raw))?.reasonCode).toBe(0xa1);
    expect(refusals(id, /subscribe refused: Subscription Identifiers are not supported/)).toHaveLength(1);
  });

  test('a topic alias above 8 ends the connection with DISCONNECT 0x94, nothing delivered, logged', async () => {
    const id = 'alias9';
    const topic = 'lim/alias9';
    const raw = await open(id, 5);
    raw.send(publishPacket(1, topic, 'nine', { properties: { topicAlias: 9 } }));
    expect((await rawServerDisconnect(raw))?.reasonCode).toBe(0x94);
    expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
    await settle();
    expect(delivered(topic)).toEqual([]);
    expect(routed(topic)).toEqual([]);
    expect(refusals(id, /publish refused: topic alias 9/)).toHaveLength(1);
  });

  test('a topic alias set with a topic, then used with an empty topic, is delivered with the full topic', async () => {
    const topic = 'lim/alias/full';
    const raw = await open('alias1', 5);
    raw.send(publishPacket(1, topic, 'set', { properties: { topicAlias: 8 } }));
    expect(await rawPuback(raw, 1)).toBe(0);
    raw.send(publishPacket(2, '', 'used', { properties: { topicAlias: 8 } }));
    expect(await rawPuback(raw, 2)).toBe(0);
    await settle();
    expect(delivered(topic)).toEqual(['set', 'used']);
    expect(routed(topic).map((m) => m.payload.toString())).toEqual(['set', 'used']);
    expect(seen.some((m) => m.topic === '')).toBe(false);
  });
});
