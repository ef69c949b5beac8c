/**
 * The lab's MQTT server on its own (no TLS, no AWS IoT policies: hooks that allow everything),
 * driven with raw MQTT 5 packets, for the protocol rules and the timers that the AWS IoT tests do
 * not reach: subscription options, protocol errors in CONNECT and SUBSCRIBE, and QoS 1 messages
 * left unacknowledged past the retry period.
 */
import { AddressInfo, createServer, Server, Socket, connect as tcpConnect } from 'node:net';
import { generate, parser as createParser, type Packet } from 'mqtt-packet';
import { RC } from '../../../lab/iot/mqtt/reason-codes';
import { MqttServer } from '../../../lab/iot/mqtt/server';

let server: Server;
let mqtt: MqttServer;
const sockets: Socket[] = [];

beforeAll(async () => {
  mqtt = new MqttServer({
    // A short retry period, so the sweep that drops unacknowledged QoS 1 runs within the test.
    limits: { qos1RetryMs: 200 },
    hooks: {
      authenticate: () => undefined,
      authorizePublish: () => undefined,
      authorizeSubscribe: () => undefined,
      mayReceive: () => true,
      isServiceConsumed: () => false,
      onMessage: () => undefined,
      onConnected: () => undefined,
      onDisconnected: () => undefined,
    },
  });
  server = createServer((socket) => mqtt.handle(socket, socket.remoteAddress ?? 'unknown'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await mqtt.stop();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A raw MQTT 5 client: sends packets, and hands out the ones it receives in order. */
interface Raw {
  send(p: Packet): void;
  next(cmd?: string): Promise<Packet>;
  closed: Promise<void>;
}

function raw(): Promise<Raw> {
  const socket = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1');
  sockets.push(socket);
  const parser = createParser({ protocolVersion: 5 });
  const inbox: Packet[] = [];
  const waiting: Array<{ cmd?: string; resolve: (p: Packet) => void }> = [];
  parser.on('packet', (p: Packet) => {
    const i = waiting.findIndex((w) => !w.cmd || w.cmd === p.cmd);
    if (i >= 0) waiting.splice(i, 1)[0].resolve(p);
    else inbox.push(p);
  });
  socket.on('data', (b: Buffer) => parser.parse(b));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return new Promise((resolve) =>
    socket.once('connect', () =>
      resolve({
        send: (p) => socket.write(generate(p, { protocolVersion: 5 })),
        next: (cmd) => {
          const i = inbox.findIndex((p) => !cmd || p.cmd === cmd);
          if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
          return new Promise((r) => waiting.push({ cmd, resolve: r }));
        },
        closed,
      }),
    ),
  );
}

async function connected(clientId: string, properties: Record<string, unknown> = {}): Promise<Raw> {
  const c = await raw();
  c.send({ cmd: 'connect', protocolVersion: 5, clientId, clean: true, keepalive: 60, properties });
  const ack = (await c.next('connack')) as { reasonCode?: number };
  expect(ack.reasonCode).toBe(RC.SUCCESS);
  return c;
}

test('Receive Maximum 0 in CONNECT is a protocol error: CONNACK 0x82', async () => {
  const c = await raw();
  c.send({
    cmd: 'connect',
    protocolVersion: 5,
    clientId: 'rm0',
    clean: true,
    keepalive: 60,
    properties: { receiveMaximum: 0 },
  });
  const ack = (await c.next('connack')) as { reasonCode?: number };
  expect(ack.reasonCode).toBe(RC.PROTOCOL_ERROR);
  await c.closed;
});

test('No Local on a shared subscription ends the connection with DISCONNECT 0x82, no SUBACK', async () => {
  const c = await connected('nl-shared');
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/nl/x', qos: 1, nl: true }] });
  const got = (await c.next()) as { cmd: string; reasonCode?: number };
  expect(got.cmd).toBe('disconnect');
  expect(got.reasonCode).toBe(RC.PROTOCOL_ERROR);
  await c.closed;
});

test('Retain Handling 1 sends the retained message only when the subscription is new; 0 every time', async () => {
  const pub = await connected('rh-pub');
  pub.send({
    cmd: 'publish',
    topic: 'rh/t',
    payload: Buffer.from('kept'),
    qos: 1,
    retain: true,
    dup: false,
    messageId: 1,
  });
  await pub.next('puback');
  const sub = await connected('rh-sub');
  const subscribe = async (messageId: number, rh: number): Promise<void> => {
    sub.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: 'rh/t', qos: 0, rh }] });
    await sub.next('suback');
  };
  await subscribe(1, 1); // new: the retained message comes
  expect(((await sub.next('publish')) as { retain: boolean }).retain).toBe(true);
  await subscribe(2, 1); // exists: nothing
  await subscribe(3, 0); // Retain Handling 0: again
  const again = (await sub.next('publish')) as { retain: boolean; payload: Buffer };
  expect(again.retain).toBe(true);
  // a live message after the third SUBACK, so nothing else was queued in between
  pub.send({
    cmd: 'publish',
    topic: 'rh/t',
    payload: Buffer.from('live'),
    qos: 0,
    retain: false,
    dup: false,
  });
  const live = (await sub.next('publish')) as { retain: boolean; payload: Buffer };
  expect(live.payload.toString()).toBe('live');
});

test('a QoS 1 message left unacknowledged past the retry period is dropped, and its room goes to the next', async () => {
  // Receive Maximum 1: the second message waits for the first one's PUBACK, which never comes.
  const sub = await connected('slow-acker', { receiveMaximum: 1 });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'retry/t', qos: 1 }] });
  await sub.next('suback');
  const pub = await connected('retry-pub');
  for (const [id, text] of [
    [1, 'first'],
    [2, 'second'],
  ] as const) {
    pub.send({
      cmd: 'publish',
      topic: 'retry/t',
      payload: Buffer.from(text),
      qos: 1,
      retain: false,
      dup: false,
      messageId: id,
    });
    await pub.next('puback');
  }
  const first = (await sub.next('publish')) as { payload: Buffer };
  expect(first.payload.toString()).toBe('first');
  // no PUBACK: after the retry period the sweep drops it and sends the second
  const second = (await sub.next('publish')) as { payload: Buffer };
  expect(second.payload.toString()).toBe('second');
});

test('a CONNECT of an unknown protocol level gets CONNACK return code 1 and is closed', async () => {
  const c = await raw();
  // CONNECT, remaining length 12: protocol name "MQTT", level 6, flags 2 (clean), keep-alive 60, empty client id
  const connect = Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 2, 0, 60, 0, 0]);
  sockets[sockets.length - 1].write(connect);
  const ack = (await c.next('connack')) as { returnCode?: number; reasonCode?: number };
  expect(ack.returnCode ?? ack.reasonCode).toBe(1);
  await c.closed;
});
