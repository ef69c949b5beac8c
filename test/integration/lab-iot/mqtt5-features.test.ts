/**
 * Issue 8, item 1: the MQTT 5 features AWS IoT Core documents, on the lab's broker: CONNACK
 * properties, clean start and session expiry, reason codes on every acknowledgement, message
 * expiry, user properties and request/response properties, payload format, cross-version
 * delivery, server DISCONNECT with a reason, the `MQTTv5` connect attribute and lifecycle events
 * identical on both protocol versions.
 */
import { UpdateCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import type { IotCore, IotMessage } from '../../../lab/iot';
import '../../../lab/iot/ca';
import {
  arn,
  closed,
  connect,
  connect5,
  connectWithAck,
  end,
  endAll,
  ended,
  identity,
  logged,
  nextMessage,
  openPolicy,
  pubackCode,
  publish,
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

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
let creds: { cert: string; key: string; id: string };
const messages: IotMessage[] = [];
const open: MqttClient[] = [];
const raws: RawMqtt[] = [];

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.onMessage((m) => messages.push(m));
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

async function c5(clientId: string, extra: Parameters<typeof connect5>[3] = {}): Promise<MqttClient> {
  const { client } = await connect5(core, creds, clientId, extra);
  open.push(client);
  return client;
}

async function c4(clientId: string, extra: Parameters<typeof connect>[3] = {}): Promise<MqttClient> {
  const c = await connect(core, creds, clientId, extra);
  open.push(c);
  return c;
}

/** Resolves with the first message on `topic`, with its packet (MQTT 5 properties included). */
function nextPacket(c: MqttClient, topic: string): Promise<IPublishPacket> {
  return new Promise((resolve) => {
    const on = (t: string, _p: Buffer, packet: IPublishPacket): void => {
      if (t !== topic) return;
      c.off('message', on);
      resolve(packet);
    };
    c.on('message', on);
  });
}

/**
 * Proves nothing more is on its way to a raw connection: it subscribes to a fresh marker topic,
 * a message is published to it, and once it arrives everything routed before it has arrived.
 */
async function settleRaw(raw: RawMqtt, id: number): Promise<void> {
  const marker = `feat/marker/${id}-${Math.random().toString(16).slice(2)}`;
  expect(await rawSubscribe(raw, id, [marker])).toEqual([1]);
  await core.publish(marker, 'm');
  await raw.waitFor((p) => p.cmd === 'publish' && p.topic === marker);
}

function rawPublishes(raw: RawMqtt, topic: string): IPublishPacket[] {
  return raw.packets.filter((p): p is IPublishPacket => p.cmd === 'publish' && p.topic === topic);
}

describe('CONNACK', () => {
  test('MQTT 5 CONNACK carries AWS IoT Core’s limits and capabilities', async () => {
    const { client, connack } = await connect5(core, creds, 'connack-5');
    open.push(client);
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties).toEqual(
      expect.objectContaining({
        maximumQoS: 1,
        topicAliasMaximum: 8,
        receiveMaximum: 100,
        maximumPacketSize: 131072,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: true,
        retainAvailable: true,
        wildcardSubscriptionAvailable: true,
      }),
    );
  });

  test('MQTT 3.1.1 CONNACK has return code 0 and no properties', async () => {
    const { client, connack } = await connectWithAck(core, creds, 'connack-4');
    open.push(client);
    expect(connack.returnCode).toBe(0);
    expect(connack.properties).toBeUndefined();
  });
});

describe('sessions: clean start and session expiry', () => {
  test('a persistent MQTT 5 session is resumed (session present) and a QoS 1 message queued while offline is delivered', async () => {
    const topic = 'feat/session/resume';
    const first = await rawConnect(
      core,
      creds,
      { clientId: 'sess-5', clean: false, properties: { sessionExpiryInterval: 300 } },
      5,
    );
    raws.push(first.raw);
    expect(first.connack?.sessionPresent).toBe(false);
    expect(await rawSubscribe(first.raw, 1, [topic])).toEqual([1]);
    await first.raw.end();

    const sender = await c5('sess-5-sender');
    expect(await pubackCode(sender, topic, 'while offline')).toBe(0);

    const again = await rawConnect(
      core,
      creds,
      { clientId: 'sess-5', clean: false, properties: { sessionExpiryInterval: 300 } },
      5,
    );
    raws.push(again.raw);
    expect(again.connack?.reasonCode).toBe(0);
    expect(again.connack?.sessionPresent).toBe(true);
    const got = (await again.raw.waitFor((p) => p.cmd === 'publish' && p.topic === topic)) as IPublishPacket;
    expect(got).toEqual(expect.objectContaining({ qos: 1, payload: Buffer.from('while offline') }));
  });

  test('Clean Start discards the session; Session Expiry Interval 0 ends it at disconnect', async () => {
    const keep = await rawConnect(
      core,
      creds,
      { clientId: 'sess-clean', clean: false, properties: { sessionExpiryInterval: 300 } },
      5,
    );
    raws.push(keep.raw);
    await keep.raw.end();
    const clean = await rawConnect(
      core,
      creds,
      { clientId: 'sess-clean', clean: true, properties: { sessionExpiryInterval: 300 } },
      5,
    );
    raws.push(clean.raw);
    expect(clean.connack?.sessionPresent).toBe(false);
    await clean.raw.end();

    const zero = await rawConnect(core, creds, { clientId: 'sess-zero', clean: false }, 5);
    raws.push(zero.raw);
    await zero.raw.end();
    const after = await rawConnect(core, creds, { clientId: 'sess-zero', clean: false }, 5);
    raws.push(after.raw);
    expect(after.connack?.sessionPresent).toBe(false);
  });

  test.each([
    [7200, 3600],
    [4_294_967_295, 3600],
  ])(
    'a Session Expiry Interval of %i s is returned adjusted to %i s in the CONNACK',
    async (asked, given) => {
      const { raw, connack } = await rawConnect(
        core,
        creds,
        { clientId: `sess-exp-${asked}`, clean: false, properties: { sessionExpiryInterval: asked } },
        5,
      );
      raws.push(raw);
      expect(connack?.reasonCode).toBe(0);
      expect(connack?.properties?.sessionExpiryInterval).toBe(given);
    },
  );

  test('a session ends when its Session Expiry Interval has passed', async () => {
    const persistent = { clientId: 'sess-short', clean: false, properties: { sessionExpiryInterval: 1 } };
    const first = await rawConnect(core, creds, persistent, 5);
    raws.push(first.raw);
    await first.raw.end();
    // a short wait past the expiry; nothing asserts on how long anything took
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const again = await rawConnect(core, creds, persistent, 5);
    raws.push(again.raw);
    expect(again.connack?.sessionPresent).toBe(false);
  });

  test('DISCONNECT with Session Expiry Interval 0 ends a persistent session', async () => {
    const persistent = { clientId: 'sess-end', clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await rawConnect(core, creds, persistent, 5);
    raws.push(first.raw);
    first.raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await first.raw.closed;
    const again = await rawConnect(core, creds, persistent, 5);
    raws.push(again.raw);
    expect(again.connack?.sessionPresent).toBe(false);
  });

  test('DISCONNECT raising the Session Expiry Interval from 0 is a protocol error (DISCONNECT 0x82)', async () => {
    const { raw } = await rawConnect(core, creds, { clientId: 'sess-raise' }, 5);
    raws.push(raw);
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    expect((await rawServerDisconnect(raw))?.reasonCode).toBe(0x82);
  });

  test('a Session Expiry Interval within the limit is taken as asked', async () => {
    const { raw, connack } = await rawConnect(
      core,
      creds,
      { clientId: 'sess-exp-ok', clean: false, properties: { sessionExpiryInterval: 3600 } },
      5,
    );
    raws.push(raw);
    expect(connack?.properties?.sessionExpiryInterval ?? 3600).toBe(3600);
  });

  test.each([
    ['MQTT 3.1.1 then MQTT 5', 4, 5],
    ['MQTT 5 then MQTT 3.1.1', 5, 4],
  ] as const)('%s: a persistent session is not resumed across versions', async (_n, from, to) => {
    const id = `xver-${from}${to}`;
    const topic = `feat/xver/${from}${to}`;
    const persistent = {
      clean: false,
      ...(from === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    };
    const first = await rawConnect(core, creds, { clientId: id, ...persistent }, from);
    raws.push(first.raw);
    expect(await rawSubscribe(first.raw, 1, [topic])).toEqual([1]);
    await first.raw.end();
    const sender = await c4(`${id}-sender`);
    await publish(sender, topic, 'queued');

    const resumed = { clean: false, ...(to === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) };
    const second = await rawConnect(core, creds, { clientId: id, ...resumed }, to);
    raws.push(second.raw);
    expect(second.connack?.sessionPresent).toBe(false);
    await settleRaw(second.raw, 2);
    expect(rawPublishes(second.raw, topic)).toEqual([]);
    // and the old subscription is gone
    await publish(sender, topic, 'later');
    await settleRaw(second.raw, 3);
    expect(rawPublishes(second.raw, topic)).toEqual([]);
  });
});

describe('reason codes on every acknowledgement (MQTT 5)', () => {
  test('CONNACK, SUBACK, PUBACK and UNSUBACK carry reason codes', async () => {
    core.registry.putPolicy('ack-codes', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: arn('topic/feat/acks/ok') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/feat/acks/*') },
      ],
    });
    const limited = await identity(iot, 'ack-codes');
    const { raw, connack } = await rawConnect(core, limited, { clientId: 'acks' }, 5);
    raws.push(raw);
    expect(connack).toEqual(expect.objectContaining({ cmd: 'connack', reasonCode: 0 }));
    raw.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: 'feat/acks/ok', qos: 1 },
        { topic: 'feat/acks/zero', qos: 0 },
        { topic: 'feat/other', qos: 1 },
      ],
    });
    const suback = await raw.waitFor((p) => p.cmd === 'suback');
    expect(suback).toEqual(expect.objectContaining({ granted: [0x01, 0x00, 0x87] }));
    raw.send({
      cmd: 'publish',
      messageId: 2,
      topic: 'feat/acks/ok',
      payload: 'ok',
      qos: 1,
      dup: false,
      retain: false,
    });
    raw.send({
      cmd: 'publish',
      messageId: 3,
      topic: 'feat/other',
      payload: 'no',
      qos: 1,
      dup: false,
      retain: false,
    });
    const pubacks = await Promise.all(
      [2, 3].map((id) => raw.waitFor((p) => p.cmd === 'puback' && p.messageId === id)),
    );
    expect(pubacks.map((p) => (p as { reasonCode?: number }).reasonCode)).toEqual([0x00, 0x87]);
    raw.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['feat/acks/ok', 'feat/acks/never'] });
    const unsuback = await raw.waitFor((p) => p.cmd === 'unsuback');
    expect(unsuback).toEqual(expect.objectContaining({ granted: [0x00, 0x11] }));
  });
});

describe('reason strings and problem information (MQTT 5)', () => {
  const EIGHT_SLASHES = 'feat/rs/2/3/4/5/6/7/8';

  test('a refusal carries a Reason String, unless the client asked for no problem information', async () => {
    const verbose = await rawConnect(core, creds, { clientId: 'rs-verbose' }, 5);
    raws.push(verbose.raw);
    verbose.raw.send({
      cmd: 'publish',
      messageId: 1,
      topic: EIGHT_SLASHES,
      payload: 'x',
      qos: 1,
      dup: false,
      retain: false,
    });
    const withReason = await verbose.raw.waitFor((p) => p.cmd === 'puback');
    expect(withReason).toEqual(
      expect.objectContaining({
        reasonCode: 0x90,
        properties: { reasonString: expect.stringMatching(/slashes/) },
      }),
    );

    const quiet = await rawConnect(
      core,
      creds,
      { clientId: 'rs-quiet', properties: { requestProblemInformation: false } },
      5,
    );
    raws.push(quiet.raw);
    quiet.raw.send({
      cmd: 'publish',
      messageId: 1,
      topic: EIGHT_SLASHES,
      payload: 'x',
      qos: 1,
      dup: false,
      retain: false,
    });
    const withoutReason = await quiet.raw.waitFor((p) => p.cmd === 'puback');
    expect(withoutReason).toEqual(expect.objectContaining({ reasonCode: 0x90 }));
    expect((withoutReason as { properties?: unknown }).properties).toBeUndefined();
  });

  test.each([
    ['MQTT 5', 5],
    ['MQTT 3.1.1', 4],
  ] as const)(
    '%s: a RETAIN publish without iot:RetainPublish is refused as any unauthorized publish',
    async (_n, v) => {
      core.registry.putPolicy('no-retain', openPolicy());
      const noRetain = await identity(iot, 'no-retain');
      const { raw } = await rawConnect(core, noRetain, { clientId: `noretain-${v}` }, v);
      raws.push(raw);
      raw.send({
        cmd: 'publish',
        messageId: 1,
        topic: `feat/noretain/${v}`,
        payload: 'x',
        qos: 1,
        dup: false,
        retain: true,
      });
      if (v === 5) expect(await rawPuback(raw, 1)).toBe(0x87);
      else {
        await raw.closed;
        expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
      }
      expect(messages.some((m) => m.topic === `feat/noretain/${v}`)).toBe(false);
    },
  );
});

describe('message expiry', () => {
  test('a retained message with Message Expiry Interval 1 is not replayed once it has expired', async () => {
    const topic = 'feat/expiry/retained';
    const keeper = 'feat/expiry/kept';
    const pub = await c5('exp-pub');
    expect(
      await pubackCode(pub, topic, 'short-lived', { retain: true, properties: { messageExpiryInterval: 1 } }),
    ).toBe(0);
    expect(await pubackCode(pub, keeper, 'kept', { retain: true })).toBe(0);

    // replayed while it lives, with what is left of its interval
    const early = await rawConnect(core, creds, { clientId: 'exp-early' }, 5);
    raws.push(early.raw);
    await rawSubscribe(early.raw, 1, [topic, keeper]);
    await early.raw.waitFor((p) => p.cmd === 'publish' && p.topic === keeper);
    const live = rawPublishes(early.raw, topic);
    expect(live).toHaveLength(1);
    expect(live[0].retain).toBe(true);
    expect(live[0].properties?.messageExpiryInterval).toBeLessThanOrEqual(1);

    // a short wait past its expiry; nothing asserts on how long anything took
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const late = await rawConnect(core, creds, { clientId: 'exp-late' }, 5);
    raws.push(late.raw);
    await rawSubscribe(late.raw, 1, [topic, keeper]);
    // retained messages are sent in the order of the filters: the kept one comes after the expired one would
    await late.raw.waitFor((p) => p.cmd === 'publish' && p.topic === keeper);
    expect(rawPublishes(late.raw, topic)).toEqual([]);
  });

  test('a queued message whose Message Expiry Interval has passed is not delivered when the session resumes', async () => {
    const topic = 'feat/expiry/queued';
    const persistent = { clientId: 'exp-queued', clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await rawConnect(core, creds, persistent, 5);
    raws.push(first.raw);
    expect(await rawSubscribe(first.raw, 1, [topic])).toEqual([1]);
    await first.raw.end();
    const pub = await c5('exp-queued-pub');
    expect(await pubackCode(pub, topic, 'short-lived', { properties: { messageExpiryInterval: 1 } })).toBe(0);
    expect(await pubackCode(pub, topic, 'lasting')).toBe(0);
    // a short wait past its expiry; nothing asserts on how long anything took
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = await rawConnect(core, creds, persistent, 5);
    raws.push(again.raw);
    expect(again.connack?.sessionPresent).toBe(true);
    // queued messages come in order: the expired one would have come before the lasting one
    await again.raw.waitFor((p) => p.cmd === 'publish' && p.payload.toString() === 'lasting');
    expect(rawPublishes(again.raw, topic).map((p) => p.payload.toString())).toEqual(['lasting']);
  });

  test.each([
    [60, 60],
    [4_294_967_295, 604_800],
  ])(
    'a message sent with Message Expiry Interval %i s is forwarded with at most %i s',
    async (sent, most) => {
      const topic = `feat/expiry/fwd/${sent}`;
      const sub = await c5(`exp-sub-${sent}`);
      await subscribe(sub, topic);
      const got = nextPacket(sub, topic);
      const pub = await c5(`exp-fwd-${sent}`);
      expect(await pubackCode(pub, topic, 'x', { properties: { messageExpiryInterval: sent } })).toBe(0);
      const interval = (await got).properties?.messageExpiryInterval;
      expect(interval).toBeDefined();
      expect(interval).toBeLessThanOrEqual(most);
      expect(interval).toBeGreaterThanOrEqual(most - 5);
    },
  );
});

describe('application properties', () => {
  const properties = {
    userProperties: { origin: 'sensor-7', tags: ['a', 'b'] },
    contentType: 'application/json',
    payloadFormatIndicator: true,
    responseTopic: 'feat/props/reply',
    correlationData: Buffer.from('corr-42'),
  };

  test('user properties, content type, payload format, response topic and correlation data reach an MQTT 5 subscriber', async () => {
    const topic = 'feat/props/5';
    const sub = await c5('props-sub-5');
    await subscribe(sub, topic);
    const got = nextPacket(sub, topic);
    const pub = await c5('props-pub-5');
    expect(await pubackCode(pub, topic, '{"v":1}', { properties })).toBe(0);
    const packet = await got;
    expect(packet.payload.toString()).toBe('{"v":1}');
    expect(packet.properties).toEqual(expect.objectContaining(properties));
  });

  test('an MQTT 3.1.1 subscriber gets the message with the properties stripped, and stays connected', async () => {
    const topic = 'feat/props/4';
    const sub = await c4('props-sub-4');
    await subscribe(sub, topic);
    const got = nextPacket(sub, topic);
    const pub = await c5('props-pub-4');
    expect(await pubackCode(pub, topic, '{"v":2}', { properties })).toBe(0);
    const packet = await got;
    expect(packet.payload.toString()).toBe('{"v":2}');
    expect(packet.properties).toBeUndefined();
    expect(sub.connected).toBe(true);
    await publish(sub, topic, 'still here');
  });

  test('a request/response round trip: the responder answers on the response topic with the correlation data', async () => {
    const requester = await c5('rr-requester');
    const responder = await c5('rr-responder');
    await subscribe(responder, 'feat/rr/request');
    await subscribe(requester, 'feat/rr/reply/requester');
    responder.on('message', (_t, _p, packet: IPublishPacket) => {
      const { responseTopic, correlationData } = packet.properties ?? {};
      if (responseTopic)
        responder.publish(responseTopic, 'pong', { qos: 1, properties: { correlationData } });
    });
    const reply = nextPacket(requester, 'feat/rr/reply/requester');
    await pubackCode(requester, 'feat/rr/request', 'ping', {
      properties: { responseTopic: 'feat/rr/reply/requester', correlationData: Buffer.from('req-1') },
    });
    const answer = await reply;
    expect(answer.payload.toString()).toBe('pong');
    expect(answer.properties?.correlationData).toEqual(Buffer.from('req-1'));
  });

  test('Payload Format Indicator 1 with a payload that is not UTF-8 gets PUBACK 0x99, nothing delivered, logged', async () => {
    const topic = 'feat/pfi';
    const sub = await c5('pfi-sub');
    await subscribe(sub, topic);
    const first = nextMessage(sub, (t) => t === topic);
    const pub = await c5('pfi-pub');
    const bad = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    expect(await pubackCode(pub, topic, bad, { properties: { payloadFormatIndicator: true } })).toBe(0x99);
    expect(await pubackCode(pub, topic, 'é ok', { properties: { payloadFormatIndicator: true } })).toBe(0);
    // the refused one would have arrived first
    expect((await first).payload.toString()).toBe('é ok');
    expect(messages.filter((m) => m.topic === topic)).toHaveLength(1);
    expect(
      logged(logs, /publish refused: Payload Format Indicator says UTF-8/).filter(
        (l) => l.clientId === 'pfi-pub',
      ),
    ).toHaveLength(1);
  });
});

describe('Will messages (MQTT 5)', () => {
  const will = (topic: string) => ({
    topic,
    payload: Buffer.from('gone'),
    qos: 1 as const,
    retain: false,
    properties: { contentType: 'text/plain', userProperties: { why: 'lost' } },
  });

  /** Resolves once the lifecycle event of the client's disconnection has been published (after its Will). */
  function disconnectedEvent(clientId: string): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void =>
        void (messages.some((m) => m.topic === `$aws/events/presence/disconnected/${clientId}`) && resolve());
      core.onMessage(check);
      check();
    });
  }

  /** What `sub` received on `topic` up to a marker published now. */
  async function receivedUpToMarker(
    sub: MqttClient,
    topic: string,
    got: IPublishPacket[],
  ): Promise<IPublishPacket[]> {
    const marker = new Promise<void>((resolve) => {
      const on = (t: string, p: Buffer): void => {
        if (t !== topic || p.toString() !== 'marker') return;
        sub.off('message', on);
        resolve();
      };
      sub.on('message', on);
    });
    await core.publish(topic, 'marker');
    await marker;
    return got.filter((p) => p.payload.toString() !== 'marker');
  }

  function packetsOn(sub: MqttClient, topic: string): IPublishPacket[] {
    const got: IPublishPacket[] = [];
    sub.on('message', (t, _p, packet: IPublishPacket) => t === topic && got.push(packet));
    return got;
  }

  test('a connection lost without DISCONNECT publishes its Will, with its properties', async () => {
    const topic = 'feat/will/lost';
    const sub = await c5('will-sub-lost');
    await subscribe(sub, topic);
    const got = packetsOn(sub, topic);
    const { raw, connack } = await rawConnect(core, creds, { clientId: 'will-lost', will: will(topic) }, 5);
    raws.push(raw);
    expect(connack?.reasonCode).toBe(0);
    const gone = disconnectedEvent('will-lost');
    raw.destroy();
    await gone;
    const wills = await receivedUpToMarker(sub, topic, got);
    expect(wills.map((p) => p.payload.toString())).toEqual(['gone']);
    expect(wills[0].properties).toEqual(
      expect.objectContaining({ contentType: 'text/plain', userProperties: { why: 'lost' } }),
    );
  });

  test('a normal DISCONNECT does not publish the Will', async () => {
    const topic = 'feat/will/normal';
    const sub = await c5('will-sub-normal');
    await subscribe(sub, topic);
    const got = packetsOn(sub, topic);
    const { raw } = await rawConnect(core, creds, { clientId: 'will-normal', will: will(topic) }, 5);
    raws.push(raw);
    await raw.end();
    expect(await receivedUpToMarker(sub, topic, got)).toEqual([]);
  });

  test('DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the Will', async () => {
    const topic = 'feat/will/asked';
    const sub = await c5('will-sub-asked');
    await subscribe(sub, topic);
    const got = packetsOn(sub, topic);
    const { raw } = await rawConnect(core, creds, { clientId: 'will-asked', will: will(topic) }, 5);
    raws.push(raw);
    raw.send({ cmd: 'disconnect', reasonCode: 0x04 });
    await raw.closed;
    const wills = await receivedUpToMarker(sub, topic, got);
    expect(wills.map((p) => p.payload.toString())).toEqual(['gone']);
  });
});

describe('the client’s limits (MQTT 5)', () => {
  test('Receive Maximum: no more unacknowledged QoS 1 messages in flight than the client allows', async () => {
    const topic = 'feat/flow';
    const { raw } = await rawConnect(core, creds, { clientId: 'flow', properties: { receiveMaximum: 2 } }, 5);
    raws.push(raw);
    expect(await rawSubscribe(raw, 1, [topic])).toEqual([1]);
    const pub = await c5('flow-pub');
    for (let i = 0; i < 5; i++) expect(await pubackCode(pub, topic, `q${i}`)).toBe(0);
    // a QoS 0 message is not held back by the receive window: once it arrives, the QoS 1 ones
    // the window allowed have arrived too
    await core.publish(topic, 'qos0');
    await raw.waitFor((p) => p.cmd === 'publish' && p.qos === 0);
    const inFlight = rawPublishes(raw, topic).filter((p) => p.qos === 1);
    expect(inFlight.map((p) => p.payload.toString())).toEqual(['q0', 'q1']);
    // acknowledging one lets the next one in
    raw.send({ cmd: 'puback', messageId: inFlight[0].messageId });
    await raw.waitFor((p) => p.cmd === 'publish' && p.payload.toString() === 'q2');
  });

  test('Maximum Packet Size: a message larger than the client accepts is not sent to it, logged', async () => {
    const topic = 'feat/mps';
    const { raw } = await rawConnect(
      core,
      creds,
      { clientId: 'mps', properties: { maximumPacketSize: 200 } },
      5,
    );
    raws.push(raw);
    expect(await rawSubscribe(raw, 1, [topic])).toEqual([1]);
    const pub = await c5('mps-pub');
    expect(await pubackCode(pub, topic, 'x'.repeat(500))).toBe(0);
    expect(await pubackCode(pub, topic, 'small')).toBe(0);
    await raw.waitFor((p) => p.cmd === 'publish' && p.payload.toString() === 'small');
    expect(rawPublishes(raw, topic).map((p) => p.payload.toString())).toEqual(['small']);
    expect(
      logged(logs, /larger than the client's Maximum Packet Size/).some((l) => l.clientId === 'mps'),
    ).toBe(true);
  });
});

describe('cross-version delivery', () => {
  test.each([
    ['MQTT 3.1.1 to MQTT 5', 4, 5],
    ['MQTT 5 to MQTT 3.1.1', 5, 4],
  ] as const)('%s', async (_n, from, to) => {
    const topic = `feat/xdel/${from}${to}`;
    const sub = to === 5 ? await c5(`xdel-sub-${from}${to}`) : await c4(`xdel-sub-${from}${to}`);
    expect(await subscribe(sub, topic)).toEqual([1]);
    const got = nextPacket(sub, topic);
    const pub = from === 5 ? await c5(`xdel-pub-${from}${to}`) : await c4(`xdel-pub-${from}${to}`);
    await publish(pub, topic, `from ${from}`);
    const packet = await got;
    expect(packet.payload.toString()).toBe(`from ${from}`);
    expect(packet.qos).toBe(1);
    expect(messages.find((m) => m.topic === topic)).toEqual(
      expect.objectContaining({ clientId: `xdel-pub-${from}${to}` }),
    );
  });
});

describe('server DISCONNECT with a reason (MQTT 5)', () => {
  test('0x8E Session taken over: a second connection with the same client id', async () => {
    const old = await c5('takeover');
    const oldEnd = ended(old);
    const next = await c5('takeover');
    const { disconnect } = await oldEnd;
    expect(disconnect?.reasonCode).toBe(0x8e);
    expect(next.connected).toBe(true);
  });

  test('an MQTT 3.1.1 connection taken over by an MQTT 5 one is closed (no DISCONNECT on 3.1.1)', async () => {
    const old = await c4('takeover-4');
    const gone = closed(old);
    await c5('takeover-4');
    await gone;
  });

  test('0x87 Not authorized: its certificate is made INACTIVE through the control plane', async () => {
    const own = await identity(iot, 'open-retain');
    const { client } = await connect5(core, own, 'deactivated');
    open.push(client);
    const gone = ended(client);
    await iot.send(new UpdateCertificateCommand({ certificateId: own.id, newStatus: 'INACTIVE' }));
    const { disconnect } = await gone;
    expect(disconnect?.reasonCode).toBe(0x87);
    await expect(connect5(core, own, 'deactivated')).rejects.toThrow(/Not authorized/i);
  });
});

describe('Last Will authorization, the same on both versions', () => {
  test.each([
    ['MQTT 5', 5, 0x87],
    ['MQTT 3.1.1', 4, 5],
  ] as const)('%s: a Will on a topic the client may not publish refuses the CONNECT', async (_n, v, code) => {
    core.registry.putPolicy('will-limited', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/feat/will-ok/*') },
      ],
    });
    const limited = await identity(iot, 'will-limited');
    const refused = await rawConnect(
      core,
      limited,
      {
        clientId: `will-denied-${v}`,
        will: { topic: 'feat/will-other/x', payload: 'x', qos: 1, retain: false },
      },
      v,
    );
    raws.push(refused.raw);
    expect(refused.connack?.reasonCode ?? refused.connack?.returnCode).toBe(code);
    const accepted = await rawConnect(
      core,
      limited,
      {
        clientId: `will-allowed-${v}`,
        will: { topic: 'feat/will-ok/x', payload: 'x', qos: 1, retain: false },
      },
      v,
    );
    raws.push(accepted.raw);
    expect(accepted.connack?.reasonCode ?? accepted.connack?.returnCode).toBe(0);
  });
});

describe('reserved topics on MQTT 5', () => {
  test('publishing a lifecycle event ends the connection with DISCONNECT 0x87, nothing routed', async () => {
    const { raw } = await rawConnect(core, creds, { clientId: 'reserved-pub' }, 5);
    raws.push(raw);
    const topic = '$aws/events/presence/connected/someone-else';
    raw.send({ cmd: 'publish', messageId: 1, topic, payload: '{}', qos: 1, dup: false, retain: false });
    expect((await rawServerDisconnect(raw))?.reasonCode).toBe(0x87);
    expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
    expect(messages.some((m) => m.topic === topic)).toBe(false);
  });

  test('Basic Ingest and provisioning request topics cannot be subscribed to, shared or not (SUBACK 0x87)', async () => {
    const { raw } = await rawConnect(core, creds, { clientId: 'reserved-sub' }, 5);
    raws.push(raw);
    const filters = [
      '$aws/rules/my_rule/x',
      '$share/g/$aws/rules/my_rule/x',
      '$aws/certificates/create/json',
      '$share/g/$aws/certificates/create/json',
    ];
    expect(await rawSubscribe(raw, 1, filters)).toEqual([0x87, 0x87, 0x87, 0x87]);
    expect(await rawSubscribe(raw, 2, ['$aws/events/presence/connected/+'])).toEqual([1]);
  });
});

describe('the MQTTv5 connect attribute', () => {
  beforeAll(async () => {
    core.registry.putPolicy('persistent-only', {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: arn('client/*'),
          Condition: { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
        },
      ],
    });
    core.registry.putPolicy('mqtt5-allowed', {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: arn('client/*'),
          Condition: {
            'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect', 'MQTTv5'] },
          },
        },
      ],
    });
  });

  test('a policy allowing only PersistentConnect refuses MQTT 5 (CONNACK 0x87) and accepts MQTT 3.1.1', async () => {
    const only = await identity(iot, 'persistent-only');
    const refused = await rawConnect(core, only, { clientId: 'attr-5' }, 5);
    raws.push(refused.raw);
    expect(refused.connack?.reasonCode).toBe(0x87);
    const refusedPersistent = await rawConnect(
      core,
      only,
      { clientId: 'attr-5p', clean: false, properties: { sessionExpiryInterval: 60 } },
      5,
    );
    raws.push(refusedPersistent.raw);
    expect(refusedPersistent.connack?.reasonCode).toBe(0x87);
    expect(
      logs.some(
        (l) =>
          l.clientId === 'attr-5' && l.action === 'iot:Connect' && /policy denied iot:Connect/.test(l.msg),
      ),
    ).toBe(true);

    const clean = await rawConnect(core, only, { clientId: 'attr-4' }, 4);
    raws.push(clean.raw);
    expect(clean.connack?.returnCode).toBe(0);
    const persistent = await rawConnect(core, only, { clientId: 'attr-4p', clean: false }, 4);
    raws.push(persistent.raw);
    expect(persistent.connack?.returnCode).toBe(0);
  });

  test('a policy that lists MQTTv5 accepts the MQTT 5 connect', async () => {
    const allowed = await identity(iot, 'mqtt5-allowed');
    const { raw, connack } = await rawConnect(
      core,
      allowed,
      { clientId: 'attr-ok', clean: false, properties: { sessionExpiryInterval: 60 } },
      5,
    );
    raws.push(raw);
    expect(connack?.reasonCode).toBe(0);
  });
});

describe('lifecycle events', () => {
  /** The presence events of one client id, without what differs between connections. */
  function presence(clientId: string): Array<Record<string, unknown>> {
    return messages
      .filter((m) => m.topic.startsWith('$aws/events/presence/') && m.topic.endsWith(`/${clientId}`))
      .map((m) => {
        const e = JSON.parse(m.payload.toString()) as Record<string, unknown>;
        expect(m.topic).toBe(`$aws/events/presence/${String(e.eventType)}/${clientId}`);
        expect(e).toEqual(
          expect.objectContaining({
            clientId,
            timestamp: expect.any(Number),
            sessionIdentifier: expect.stringMatching(/^[0-9a-f-]{36}$/),
            principalIdentifier: creds.id,
            ipAddress: '127.0.0.1',
          }),
        );
        const { clientId: _c, timestamp: _t, sessionIdentifier: _s, ...rest } = e;
        return rest;
      });
  }

  function eventCount(clientId: string, n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => void (presence(clientId).length >= n && resolve());
      core.onMessage(check);
      check();
    });
  }

  /** Connect, disconnect; connect, be taken over by a second connection, which disconnects. */
  async function scenario(v: 4 | 5): Promise<void> {
    const id = `presence-${v}`;
    const conn = (): Promise<MqttClient> =>
      v === 5 ? connect5(core, creds, id).then((r) => r.client) : connect(core, creds, id);
    await end(await conn());
    const first = await conn();
    const firstGone = closed(first);
    const second = await conn();
    await firstGone;
    await end(second);
    await eventCount(id, 6);
  }

  test('identical for an MQTT 5 and an MQTT 3.1.1 client: connected, disconnected with CLIENT_INITIATED_DISCONNECT and DUPLICATE_CLIENTID', async () => {
    await scenario(5);
    await scenario(4);
    const common = { principalIdentifier: creds.id, ipAddress: '127.0.0.1' };
    const connected = (versionNumber: number) => ({ eventType: 'connected', ...common, versionNumber });
    const disconnected = (versionNumber: number, disconnectReason: string) => ({
      eventType: 'disconnected',
      clientInitiatedDisconnect: disconnectReason === 'CLIENT_INITIATED_DISCONNECT',
      disconnectReason,
      ...common,
      versionNumber,
    });
    const expected = [
      connected(1),
      disconnected(1, 'CLIENT_INITIATED_DISCONNECT'),
      connected(2),
      disconnected(2, 'DUPLICATE_CLIENTID'),
      connected(3),
      disconnected(3, 'CLIENT_INITIATED_DISCONNECT'),
    ];
    expect(presence('presence-5')).toEqual(expected);
    expect(presence('presence-4')).toEqual(expected);
  });
});
