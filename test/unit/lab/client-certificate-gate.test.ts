/**
 * The client-certificate gate honours backpressure: whenever the TLS server's side of the gate
 * is full, the gate stops reading the TCP socket, and resumes it when the TLS server reads again.
 * The socket is a stand-in that records pause/resume; the bytes are hand-built TLS records.
 */
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { LabCa } from '../../../lab/iot/ca';
import { ClientCertificateGate } from '../../../lab/iot/client-certificate-gate';

/** More than the gate's readable buffer holds (16 KiB by default). */
const BIG = 20 * 1024;

class FakeSocket extends EventEmitter {
  readonly calls: string[] = [];
  remoteAddress = '127.0.0.1';
  remotePort = 1;
  destroyed = false;
  pause(): this {
    this.calls.push('pause');
    return this;
  }
  resume(): this {
    this.calls.push('resume');
    return this;
  }
  write(_chunk: Buffer, cb?: () => void): boolean {
    cb?.();
    return true;
  }
  end(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
/** A TLS 1.2 record of `type` around `body`. */
const record = (type: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type, 0x03, 0x03]), u16(body.length), body]);

/** A handshake record carrying a Certificate message with `der` as the only certificate. */
function certificateRecord(der: Buffer): Buffer {
  const list = Buffer.concat([u24(der.length), der]);
  const body = Buffer.concat([u24(list.length), list]);
  return record(22, Buffer.concat([Buffer.from([11]), u24(body.length), body]));
}

let ca: LabCa;
let clientDer: Buffer;
beforeAll(async () => {
  ca = await LabCa.create();
  clientDer = new X509Certificate((await ca.issueWithNewKeys()).certificatePem).raw;
});

function gateOn(socket: FakeSocket): ClientCertificateGate {
  return new ClientCertificateGate(socket as unknown as Socket, {
    ca: new X509Certificate(ca.caPem),
    onRefused: () => undefined,
  });
}

const appData = (): Buffer => record(0x17, Buffer.alloc(16));

test.each([
  [
    'the bytes forwarded while the handshake is read (a non-handshake record ends the inspection)',
    (): Buffer[] => [Buffer.concat([appData(), Buffer.alloc(BIG)])],
  ],
  [
    'the accepted certificate record and what follows it',
    (): Buffer[] => [Buffer.concat([certificateRecord(clientDer), Buffer.alloc(BIG)])],
  ],
  ['the bytes after the inspection has ended', (): Buffer[] => [appData(), Buffer.alloc(BIG)]],
])('a full buffer pauses the socket: %s; reading resumes it', (_name, chunks) => {
  const socket = new FakeSocket();
  const gate = gateOn(socket);
  for (const chunk of chunks()) socket.emit('data', chunk);
  expect(gate.refused).toBe(false);
  expect(socket.calls).toEqual(['pause']);
  expect(gate.read()).not.toBeNull();
  expect(socket.calls).toEqual(['pause', 'resume']);
});

test('a buffer with room left does not pause the socket', () => {
  const socket = new FakeSocket();
  gateOn(socket);
  socket.emit('data', certificateRecord(clientDer));
  expect(socket.calls).toEqual([]);
});
