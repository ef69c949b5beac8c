import { createServer, type Server } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeConnectError } from '../../../device/connect-failure';
import { MqttSession, TransportError } from '../../../device/mqtt-session';
import { TestCa, type IssuedPair } from './support/pki';

const TARGET = '127.0.0.1:8883';

test.each([
  [
    'refused socket',
    {
      code: 'ECONNREFUSED',
      syscall: 'connect',
      address: '127.0.0.1',
      port: 8883,
      message: 'connect ECONNREFUSED 127.0.0.1:8883',
    },
    'ECONNREFUSED 127.0.0.1:8883',
  ],
  [
    'unknown host',
    {
      code: 'ENOTFOUND',
      syscall: 'getaddrinfo',
      hostname: 'iot.example.com',
      message: 'getaddrinfo ENOTFOUND iot.example.com',
    },
    'ENOTFOUND iot.example.com',
  ],
  [
    'reset during the handshake (no address on the error)',
    {
      code: 'ECONNRESET',
      message: 'Client network socket disconnected before secure TLS connection was established',
    },
    `ECONNRESET ${TARGET}`,
  ],
  [
    'TLS alert',
    {
      code: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
      reason: 'sslv3 alert certificate unknown',
      message: 'ssl3_read_bytes:sslv3 alert certificate unknown',
    },
    'TLS: certificate unknown',
  ],
  [
    'TLS 1.3 alert',
    {
      code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
      reason: 'tlsv13 alert certificate required',
      message: 'x',
    },
    'TLS: certificate required',
  ],
  [
    'server certificate not trusted',
    { code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain' },
    'TLS: self-signed certificate in certificate chain',
  ],
  [
    'CONNACK return code (3.1.1)',
    { code: 5, message: 'Connection refused: Not authorized' },
    'CONNACK refused: 0x05 Not authorized',
  ],
  ["mqtt.js's own CONNACK timer", new Error('connack timeout'), `timeout waiting for CONNACK from ${TARGET}`],
  ['anything else', new Error('TLS not authorized'), 'TLS not authorized'],
])('describeConnectError: %s', (_name, err, cause) => {
  expect(describeConnectError(err, TARGET)).toBe(cause);
});

test.each([
  [0x87, 'CONNACK refused: 0x87 Not authorized'],
  [0x85, 'CONNACK refused: 0x85 Client Identifier not valid'],
  [0x9f, 'CONNACK refused: 0x9f Connection rate exceeded'],
  [0xa7, 'CONNACK refused: 0xa7 (unknown reason code)'],
])('describeConnectError on MQTT 5: reason code %s', (code, cause) => {
  expect(describeConnectError({ code, message: 'Connection refused: x' }, TARGET, '5')).toBe(cause);
});

test('a TransportError without a reason uses its message', () => {
  expect(new TransportError('CONNECTION_LOST', 'gone').reason).toBe('gone');
  expect(new TransportError('CONNECTION_LOST', 'gone', 'connection lost while subscribing').reason).toBe(
    'connection lost while subscribing',
  );
});

describe('against a broker that answers CONNACK and never closes the connection', () => {
  let ca: TestCa;
  let client: IssuedPair;
  let server: Server;
  let port: number;
  /** Every connection, handshake done or not, so none outlives the suite. */
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    ca = await TestCa.create();
    const pair = await ca.issue('localhost', true);
    client = await ca.issue('client');
    // allowHalfOpen: the client's FIN gets no FIN back, as with a peer that went silent.
    server = createServer({ key: pair.keyPem, cert: pair.certPem, allowHalfOpen: true }, (socket) => {
      socket.once('data', () => socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00])));
      socket.on('error', () => undefined);
    });
    server.on('connection', (socket: Socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('end() still destroys the socket', async () => {
    const session = await MqttSession.open({
      endpoint: { host: '127.0.0.1', port, caPem: ca.certPem },
      credentials: client,
      clientId: 'silent-peer',
      connectTimeoutMs: 5000,
    });
    expect(session.connected).toBe(true);
    await session.end();
    expect((session.client.stream as Duplex).destroyed).toBe(true);
  });

  test('a server certificate from an untrusted CA is a TLS cause', async () => {
    const other = await TestCa.create('Other CA');
    const err = await MqttSession.open({
      endpoint: { host: '127.0.0.1', port, caPem: other.certPem },
      credentials: client,
      clientId: 'untrusting',
      connectTimeoutMs: 5000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({
      failure: 'CONNECT_FAILED',
      // The server sends its certificate without the chain.
      reason: 'TLS: unable to verify the first certificate',
    });
  });
});
