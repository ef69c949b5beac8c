/**
 * The session on MQTT 5 against a scripted peer (mTLS on loopback, packets from mqtt-packet): the
 * CONNECT it sends, and how each reason code the server answers with becomes a TransportError that
 * names it. The same peer speaks 3.1.1 to check that a SUBACK failure is a refusal there too.
 */
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import { classifyFailure } from '../../../device/enrollment';
import { MqttSession, TransportError, type SessionOptions } from '../../../device/mqtt-session';
import { TestCa, type IssuedPair } from './support/pki';

/** What the peer does, by topic prefix; connects are refused for client ids starting `refuse`. */
const MAX_PACKET = 512;

class ScriptedPeer {
  readonly connects: mqttPacket.IConnectPacket[] = [];
  readonly published: string[] = [];
  private readonly sockets = new Set<TLSSocket>();

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(ca: TestCa): Promise<ScriptedPeer> {
    const pair = await ca.issue('localhost', true);
    const server = createServer({ key: pair.keyPem, cert: pair.certPem, requestCert: true, ca: ca.certPem });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const peer = new ScriptedPeer(server, (server.address() as AddressInfo).port);
    server.on('secureConnection', (socket) => peer.serve(socket));
    return peer;
  }

  private serve(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = mqttPacket.parser();
    let version = 4;
    const send = (packet: Record<string, unknown>): void => {
      socket.write(mqttPacket.generate(packet as unknown as mqttPacket.Packet, { protocolVersion: version }));
    };
    parser.on('packet', (packet: mqttPacket.Packet) => {
      switch (packet.cmd) {
        case 'connect': {
          this.connects.push(packet);
          version = packet.protocolVersion ?? 4;
          const refuse = packet.clientId.startsWith('refuse');
          if (packet.clientId.startsWith('old-server')) {
            // A server that speaks only 3.1.1 answers any other version with return code 1.
            socket.write(Buffer.from([0x20, 0x02, 0x00, 0x01]));
            socket.end();
            return;
          }
          if (version === 5)
            send({
              cmd: 'connack',
              sessionPresent: false,
              reasonCode: refuse ? 0x87 : 0,
              properties: refuse
                ? { reasonString: `policy denies ${packet.clientId}` }
                : { maximumPacketSize: MAX_PACKET },
            });
          else send({ cmd: 'connack', sessionPresent: false, returnCode: refuse ? 5 : 0 });
          if (refuse) socket.end();
          return;
        }
        case 'subscribe':
          send({
            cmd: 'suback',
            messageId: packet.messageId,
            granted: packet.subscriptions.map((s) =>
              s.topic.startsWith('denied/') ? (version === 5 ? 0x87 : 0x80) : 1,
            ),
            ...(version === 5 ? { properties: { reasonString: 'not in the policy' } } : {}),
          });
          return;
        case 'publish': {
          this.published.push(packet.topic);
          const [head] = packet.topic.split('/');
          if (head === 'bye') {
            send({
              cmd: 'disconnect',
              reasonCode: 0x98,
              properties: { reasonString: 'the operator ended the session' },
            });
            socket.end();
            return;
          }
          const reasonCode = head === 'refused' ? 0x87 : head === 'busy' ? 0x97 : 0;
          send({
            cmd: 'puback',
            messageId: packet.messageId,
            ...(version === 5
              ? { reasonCode, properties: reasonCode ? { reasonString: 'denied' } : {} }
              : {}),
          });
          return;
        }
        case 'pingreq':
          send({ cmd: 'pingresp' });
          return;
        case 'disconnect':
          socket.end();
          return;
        default:
          return;
      }
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let ca: TestCa;
let client: IssuedPair;
let peer: ScriptedPeer;
const open: MqttSession[] = [];

beforeAll(async () => {
  ca = await TestCa.create();
  client = await ca.issue('client');
  peer = await ScriptedPeer.start(ca);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.end()));
  peer.connects.length = 0;
  peer.published.length = 0;
});
afterAll(async () => {
  await peer.stop();
});

function options(clientId: string, extra: Partial<SessionOptions> = {}): SessionOptions {
  return {
    endpoint: { host: '127.0.0.1', port: peer.port, caPem: ca.certPem, servername: 'localhost' },
    credentials: client,
    clientId,
    connectTimeoutMs: 5000,
    mqttVersion: '5',
    ...extra,
  };
}

async function session(clientId: string, extra: Partial<SessionOptions> = {}): Promise<MqttSession> {
  const s = await MqttSession.open(options(clientId, extra));
  open.push(s);
  return s;
}

const failure = <T>(p: Promise<T>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

test.each([
  ['5', 5],
  ['3.1.1', 4],
] as const)(
  'on MQTT %s the CONNECT has protocol level %s, a clean start and no session expiry',
  async (mqttVersion, level) => {
    const s = await session(`dev-${level}`, { mqttVersion });
    expect(s.mqttVersion).toBe(mqttVersion);
    expect(peer.connects).toHaveLength(1);
    const [connect] = peer.connects;
    expect(connect).toMatchObject({ protocolVersion: level, clean: true, clientId: `dev-${level}` });
    expect(connect.properties?.sessionExpiryInterval ?? 0).toBe(0);
  },
);

test('the session defaults to MQTT 3.1.1', async () => {
  const { mqttVersion: _omit, ...rest } = options('dev-default');
  const s = await MqttSession.open(rest);
  open.push(s);
  expect(s.mqttVersion).toBe('3.1.1');
  expect(peer.connects[0].protocolVersion).toBe(4);
});

test('a CONNACK reason code is the cause, in hex with its name; the reason string is in the message', async () => {
  const err = await failure(MqttSession.open(options('refuse-1')));
  expect(err).toBeInstanceOf(TransportError);
  expect(err).toMatchObject({
    failure: 'CONNECT_FAILED',
    reason: 'CONNACK refused: 0x87 Not authorized',
    reasonCode: 0x87,
  });
  expect((err as Error).message).toContain('policy denies refuse-1');
  // A refused connect is retried, as on 3.1.1 (AWS may refuse a connect for a while).
  expect(classifyFailure(err).retryable).toBe(true);
});

test('a server that speaks only MQTT 3.1.1 answers MQTT 5 with return code 1: the cause says so', async () => {
  const err = await failure(MqttSession.open(options('old-server-1')));
  expect(err).toMatchObject({
    failure: 'CONNECT_FAILED',
    reason:
      'CONNACK refused: 0x01 Unacceptable protocol version (an MQTT 3.1.1 return code: the server does not speak MQTT 5)',
  });
});

test('a 3.1.1 CONNACK return code reads the same way', async () => {
  const err = await failure(MqttSession.open(options('refuse-2', { mqttVersion: '3.1.1' })));
  expect(err).toMatchObject({ reason: 'CONNACK refused: 0x05 Not authorized', reasonCode: 5 });
});

test.each([
  ['5', '0x87 Not authorized'],
  ['3.1.1', '0x80 Failure'],
] as const)(
  'on MQTT %s a refused filter names its SUBACK code; the others are granted',
  async (mqttVersion, code) => {
    const s = await session(`sub-${mqttVersion}`, { mqttVersion });
    const err = await failure(s.subscribe(['ok/a', 'denied/b']));
    expect(err).toMatchObject({
      failure: 'SUBSCRIBE_REFUSED',
      reason: `subscription refused: denied/b (${code})`,
    });
    expect(classifyFailure(err).retryable).toBe(false);
    await expect(s.subscribe(['ok/c'])).resolves.toBeUndefined();
    expect(s.connected).toBe(true);
  },
);

test('a PUBACK reason code refuses the publish and keeps the session; a transient one is retryable', async () => {
  const s = await session('pub-5');
  await expect(s.publish('ok/x', '{}')).resolves.toBeUndefined();
  const refused = await failure(s.publish('refused/x', '{}'));
  expect(refused).toMatchObject({
    failure: 'PUBLISH_REFUSED',
    reason: 'publish refused on refused/x: PUBACK 0x87 Not authorized',
    reasonCode: 0x87,
  });
  expect(classifyFailure(refused).retryable).toBe(false);
  const busy = await failure(s.publish('busy/x', '{}'));
  expect(busy).toMatchObject({ reason: 'publish refused on busy/x: PUBACK 0x97 Quota exceeded' });
  expect(classifyFailure(busy).retryable).toBe(true);
  expect(s.connected).toBe(true);
  await expect(s.publish('ok/y', '{}')).resolves.toBeUndefined();
});

test("a PUBLISH over the server's Maximum Packet Size is refused before it is sent", async () => {
  const s = await session('big-5');
  const err = await failure(s.publish('ok/big', 'x'.repeat(MAX_PACKET)));
  expect(err).toMatchObject({
    failure: 'PUBLISH_REFUSED',
    reason: `publish not sent on ok/big: larger than the server's Maximum Packet Size (${MAX_PACKET} bytes)`,
    reasonCode: 0x95,
  });
  // The largest payload that fits is sent: 1 + 2 (header) + 2 + 6 (topic) + 2 (id) + 1 (properties).
  await expect(s.publish('ok/big', 'x'.repeat(MAX_PACKET - 14))).resolves.toBeUndefined();
  expect(peer.published).toEqual(['ok/big']);
});

test('a server DISCONNECT fails what was waiting with its reason code and ends the session', async () => {
  const s = await session('bye-5');
  await s.subscribe(['bye/x/accepted', 'bye/x/rejected']);
  const err = await failure(s.request('Bye', 'bye/x', {}, 5000));
  expect(err).toMatchObject({
    failure: 'CONNECTION_LOST',
    reason: 'closed by the server with DISCONNECT 0x98 Administrative action before the PUBACK of bye/x',
    reasonCode: 0x98,
  });
  expect((err as Error).message).toContain('the operator ended the session');
  await s.whenClosed;
  expect(s.connected).toBe(false);
  expect(s.serverDisconnect).toBe('DISCONNECT 0x98 Administrative action: "the operator ended the session"');
  expect(classifyFailure(err).retryable).toBe(true);
});
