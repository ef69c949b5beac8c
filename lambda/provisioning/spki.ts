/**
 * Fast public-key fingerprint of a PEM certificate for the hook's hot path.
 *
 * `publicKeyFingerprintOfCertificate` (shared/attestation.ts) parses the whole certificate with
 * OpenSSL and re-exports the key, which costs about a millisecond of CPU per call, the largest
 * item of the hook's own work. A certificate is DER, so the SubjectPublicKeyInfo is already
 * stored in canonical form: walking the outer structure to it and hashing those bytes gives
 * the same fingerprint in microseconds. Keys whose re-export could differ from the stored
 * bytes (EC points in compressed form) and anything unexpected fall back to the full parse.
 */
import { createHash } from 'node:crypto';
import { publicKeyFingerprintOfCertificate } from '../../core/attestation';

const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/;
const SEQUENCE = 0x30;
const BIT_STRING = 0x03;

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  body: number;
  /** Offset after the last content byte. */
  end: number;
}

function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = der[offset];
  let len = der[offset + 1];
  let body = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4 || body + n > limit) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[body + i];
    body += n;
  }
  const end = body + len;
  if (end > limit) throw new Error('truncated DER');
  return { tag, start: offset, body, end };
}

/** The DER SubjectPublicKeyInfo of a DER certificate, or undefined when the shape is unexpected. */
export function spkiOfCertificateDer(der: Buffer): Buffer | undefined {
  try {
    const cert = readTlv(der, 0, der.length);
    if (cert.tag !== SEQUENCE) return undefined;
    const tbs = readTlv(der, cert.body, cert.end);
    if (tbs.tag !== SEQUENCE) return undefined;
    let el = readTlv(der, tbs.body, tbs.end);
    if (el.tag === 0xa0) el = readTlv(der, el.end, tbs.end); // [0] version
    // serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo.
    for (let i = 0; i < 5; i++) el = readTlv(der, el.end, tbs.end);
    if (el.tag !== SEQUENCE) return undefined;
    const algorithm = readTlv(der, el.body, el.end);
    const key = readTlv(der, algorithm.end, el.end);
    if (key.tag !== BIT_STRING) return undefined;
    const firstKeyByte = der[key.body + 1];
    // Compressed EC points (0x02/0x03 after the unused-bits byte) may be re-exported uncompressed.
    if (isEcAlgorithm(der, algorithm) && firstKeyByte !== 0x04) return undefined;
    return der.subarray(el.start, el.end);
  } catch {
    return undefined;
  }
}

const EC_PUBLIC_KEY_OID = Buffer.from([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);

function isEcAlgorithm(der: Buffer, algorithm: Tlv): boolean {
  return der.subarray(algorithm.body, algorithm.body + EC_PUBLIC_KEY_OID.length).equals(EC_PUBLIC_KEY_OID);
}

/**
 * SHA-256 (hex) of the certificate's SubjectPublicKeyInfo: the same value as
 * `publicKeyFingerprintOfCertificate`. Throws when the PEM is not a certificate.
 */
export function fastPublicKeyFingerprint(certificatePem: string): string {
  const m = PEM.exec(certificatePem);
  const spki = m ? spkiOfCertificateDer(Buffer.from(m[1], 'base64')) : undefined;
  if (!spki) return publicKeyFingerprintOfCertificate(certificatePem);
  return createHash('sha256').update(spki).digest('hex');
}
