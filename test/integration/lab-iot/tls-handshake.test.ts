/**
 * A client certificate the broker cannot accept fails the TLS handshake with an alert the
 * client sees as a TLS error, as on AWS IoT Core, not a dropped socket.
 */
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { IoTClient } from '@aws-sdk/client-iot';
import type { IotCore } from '../../../lab/iot';
import { LabCa } from '../../../lab/iot/ca';
import { verifyChain } from '../../../lab/iot/client-certificate-gate';
import { connect, end, identity, openPolicy, startCore, type LogEntry } from './helpers';

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
let foreign: { cert: string; key: string };

/** Outcome of a bare TLS handshake: 'secure' or the client-side error code. */
function handshake(options: ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({
      host: core.mqtt.host,
      port: core.mqtt.port,
      ca: core.mqtt.caPem,
      servername: 'localhost',
      ...options,
    });
    let outcome: string | undefined;
    s.once('secureConnect', () => {
      outcome = 'secure';
      s.end();
    });
    s.once('error', (err: NodeJS.ErrnoException) => (outcome ??= err.code ?? err.message));
    s.once('close', () => resolve(outcome ?? 'closed without an error'));
  });
}

/** A duplex over a TCP connection that writes one byte per TCP write. */
function trickle(): Duplex {
  const tcp = netConnect({ host: core.mqtt.host, port: core.mqtt.port, noDelay: true });
  const d = new Duplex({
    read: () => undefined,
    write(chunk: Buffer, _enc, cb) {
      let i = 0;
      const next = (err?: Error | null): void => {
        if (err || i >= chunk.length) return cb(err);
        tcp.write(chunk.subarray(i, ++i), next);
      };
      next();
    },
    final(cb) {
      tcp.end();
      cb();
    },
  });
  tcp.on('data', (b) => d.push(b));
  tcp.on('end', () => d.push(null));
  tcp.on('error', (e) => d.destroy(e));
  return d;
}

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.registry.putPolicy('lab-open', openPolicy());
  const other = await LabCa.create('other CA');
  const kc = await other.issueWithNewKeys();
  foreign = { cert: kc.certificatePem, key: kc.privateKeyPem };
});

afterAll(async () => {
  iot.destroy();
  await core.stop();
});

test('a certificate from a foreign CA gets the unknown_ca alert (node:tls)', async () => {
  expect(await handshake(foreign)).toBe('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
  expect(logs).toContainEqual(
    expect.objectContaining({
      level: 'warn',
      msg: 'TLS handshake refused with alert unknown_ca: the client certificate does not chain to the lab CA',
      remote: '127.0.0.1',
    }),
  );
});

test('a certificate from a foreign CA gets the unknown_ca alert (mqtt.js)', async () => {
  // mqtt.js writes CONNECT before the handshake ends, so the alert fails that write (EPROTO)
  await expect(connect(core, foreign, 'foreign-device')).rejects.toMatchObject({
    code: 'EPROTO',
    message: expect.stringMatching(/tlsv1 alert unknown ca.*SSL alert number 48/),
  });
});

test('no client certificate gets a handshake_failure alert', async () => {
  expect(await handshake({})).toBe('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
});

test('a lab certificate still completes the handshake and connects', async () => {
  const id = await identity(iot, 'lab-open');
  expect(await handshake({ cert: id.cert, key: id.key })).toBe('secure');
  const c = await connect(core, id, 'lab-device');
  expect(c.connected).toBe(true);
  await end(c);
});

test.each([
  ['a foreign certificate', () => foreign, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'],
  ['a lab certificate', () => undefined, 'secure'],
])('a client flight that arrives one byte at a time is read whole: %s', async (_what, creds, outcome) => {
  const id = creds() ?? (await identity(iot, 'lab-open'));
  expect(await handshake({ socket: trickle(), cert: id.cert, key: id.key })).toBe(outcome);
});

describe('verifyChain', () => {
  let ca: LabCa;
  beforeAll(async () => {
    ca = await LabCa.create('chain test CA');
  });
  const der = (pem: string): Buffer => Buffer.from(new X509Certificate(pem).raw);

  test.each([
    ['a certificate issued by the CA', true, async () => [der((await ca.issueWithNewKeys()).certificatePem)]],
    ['the CA itself', true, async () => [der(ca.caPem)]],
    ['a certificate from another CA', false, async () => [der(foreign.cert)]],
    ['bytes that are not a certificate', false, async () => [Buffer.from('not a certificate')]],
    ['no certificate (left to the TLS server)', true, async () => []],
  ])('%s: accepted %s', async (_what, ok, chain) => {
    expect(verifyChain(await chain(), new X509Certificate(ca.caPem)).ok).toBe(ok);
  });
});
