/**
 * Client-certificate gate in front of the broker's TLS server.
 *
 * Node's TLS server checks the client certificate only after the handshake and then drops the
 * socket without a TLS alert, so a device with a foreign certificate sees a reset, not an
 * error it can act on. AWS IoT Core fails the handshake with an alert. The gate sits between
 * the TCP socket and the TLS server and reads the client's handshake flight while it is still
 * plaintext (TLS 1.2: everything before the client's ChangeCipherSpec). When the client's
 * Certificate message holds a chain that does not lead to the lab CA, the gate answers with a
 * fatal `unknown_ca` alert (RFC 5246 §7.2.2) and closes the connection; the TLS server never
 * sees that flight. Anything else passes through unchanged, and the TLS server still verifies
 * the chain itself (defence in depth).
 *
 * TLS 1.3 encrypts the client certificate, so the broker negotiates TLS 1.2 at most.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

const RECORD_HEADER = 5;
const CONTENT_ALERT = 21;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CERTIFICATE = 11;
/** Fatal `unknown_ca` alert record, TLS 1.2 (level 2, description 48). */
export const UNKNOWN_CA_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x30]);

export type ChainVerdict = { ok: true } | { ok: false; reason: string };

/** True when `chain` (leaf first, DER) leads to `ca`: each certificate signed by the next, the last by `ca`. */
export function verifyChain(chain: Buffer[], ca: X509Certificate, now = new Date()): ChainVerdict {
  if (chain.length === 0) return { ok: true }; // no certificate: the TLS server refuses it itself
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch {
    return { ok: false, reason: 'the client certificate cannot be parsed' };
  }
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i];
    if (Date.parse(cert.validTo) < now.getTime() || Date.parse(cert.validFrom) > now.getTime())
      return { ok: false, reason: `certificate ${cert.subject} is not valid now` };
    if (cert.fingerprint256 === ca.fingerprint256) return { ok: true };
    if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) return { ok: true };
    const next = certs[i + 1];
    if (!next || !next.ca || !cert.checkIssued(next) || !cert.verify(next.publicKey)) break;
  }
  return { ok: false, reason: 'the client certificate does not chain to the lab CA' };
}

/** Reads TLS records and handshake messages from the client until the flight is encrypted. */
class HandshakeReader {
  private pending = Buffer.alloc(0);
  private handshake = Buffer.alloc(0);
  done = false;

  /** Feed bytes; returns the bytes safe to forward and, once found, the certificate chain. */
  feed(chunk: Buffer): { forward: Buffer; chain?: Buffer[] } {
    this.pending = Buffer.concat([this.pending, chunk]);
    const forward: Buffer[] = [];
    let chain: Buffer[] | undefined;
    while (!this.done && this.pending.length >= RECORD_HEADER) {
      const length = this.pending.readUInt16BE(3);
      if (this.pending.length < RECORD_HEADER + length) break;
      const record = this.pending.subarray(0, RECORD_HEADER + length);
      const type = record[0];
      if (type === CONTENT_HANDSHAKE) {
        this.handshake = Buffer.concat([this.handshake, record.subarray(RECORD_HEADER)]);
        const found = this.readMessages();
        if (found) {
          chain = found;
          this.done = true;
          // hold this record: the caller forwards it only when the chain is accepted
          return { forward: Buffer.concat(forward), chain };
        }
      } else if (type !== CONTENT_ALERT) {
        // ChangeCipherSpec: encrypted from here on (or not TLS at all): stop looking
        this.done = true;
        break;
      }
      forward.push(record);
      this.pending = this.pending.subarray(RECORD_HEADER + length);
    }
    if (this.done && !chain) {
      forward.push(this.pending);
      this.pending = Buffer.alloc(0);
    }
    return { forward: Buffer.concat(forward) };
  }

  /** Bytes read but not forwarded yet (the record holding the certificate and what follows). */
  rest(): Buffer {
    const r = this.pending;
    this.pending = Buffer.alloc(0);
    return r;
  }

  private readMessages(): Buffer[] | undefined {
    while (this.handshake.length >= 4) {
      const type = this.handshake[0];
      const length = this.handshake.readUIntBE(1, 3);
      if (this.handshake.length < 4 + length) return undefined;
      const body = this.handshake.subarray(4, 4 + length);
      this.handshake = this.handshake.subarray(4 + length);
      if (type === HANDSHAKE_CERTIFICATE) return parseCertificateList(body);
    }
    return undefined;
  }
}

function parseCertificateList(body: Buffer): Buffer[] {
  const certs: Buffer[] = [];
  if (body.length < 3) return certs;
  const total = body.readUIntBE(0, 3);
  let off = 3;
  while (off + 3 <= Math.min(body.length, 3 + total)) {
    const len = body.readUIntBE(off, 3);
    off += 3;
    certs.push(body.subarray(off, off + len));
    off += len;
  }
  return certs;
}

export interface GateOptions {
  ca: X509Certificate;
  /** Called once when a connection is refused with the alert. */
  onRefused(reason: string, remote: string | undefined): void;
}

/**
 * A duplex standing in for the TCP socket: the TLS server reads the client's bytes from it
 * (after inspection) and writes its own bytes through it to the socket.
 */
export class ClientCertificateGate extends Duplex {
  private readonly reader = new HandshakeReader();
  private answeredWithAlert = false;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly o: GateOptions,
  ) {
    super({ allowHalfOpen: false });
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /** True once the gate has answered with the alert (the TLS socket never saw that flight). */
  get refused(): boolean {
    return this.answeredWithAlert;
  }

  private fromClient(chunk: Buffer): void {
    if (this.answeredWithAlert) return;
    if (this.reader.done) {
      this.forward(chunk);
      return;
    }
    const { forward, chain } = this.reader.feed(chunk);
    if (forward.length) this.forward(forward);
    if (!chain) return;
    const verdict = verifyChain(chain, this.o.ca);
    if (verdict.ok) {
      this.forward(this.reader.rest());
      return;
    }
    this.answeredWithAlert = true;
    this.o.onRefused(verdict.reason, this.remoteAddress);
    // The alert, then FIN; the client closes on the alert (a client that does not is cut off).
    this.socket.end(UNKNOWN_CA_ALERT);
    this.socket.setTimeout(5000, () => this.socket.destroy());
    this.destroy();
  }

  /** Hand client bytes to the TLS server; stop reading the socket until it asks for more. */
  private forward(bytes: Buffer): void {
    if (!this.push(bytes)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.answeredWithAlert || this.socket.destroyed) return cb();
    this.socket.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.answeredWithAlert) this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.answeredWithAlert) this.socket.destroy();
    cb(err);
  }
}
