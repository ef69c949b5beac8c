/**
 * Checks of the PEM material a device connects with (its certificate, its private key and the CA
 * that signs the server's certificate), made before any connection, so a local mistake (a key
 * given as the certificate, a key of another certificate, a file that is not PEM) is reported as
 * what it is and never shows up as a failed or refused connection.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

/** The PEM material of one connection. */
export interface TlsMaterial {
  /** CA bundle trusted for the server (one or more CERTIFICATE blocks). */
  caPem: string;
  /** Client certificate. */
  certPem: string;
  /** Client private key. */
  keyPem: string;
}

/** Which piece a problem is about: `keyMismatch` is about the certificate and key together. */
export type TlsMaterialPart = 'ca' | 'cert' | 'key' | 'swapped' | 'keyMismatch';

export interface TlsMaterialProblem {
  part: TlsMaterialPart;
  /** What is wrong, e.g. `holds a PRIVATE KEY block, not a certificate`. */
  problem: string;
}

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/g;

/** The labels of the PEM blocks in `text` (`CERTIFICATE`, `PRIVATE KEY`, ...). */
export function pemLabels(text: string): string[] {
  return [...text.matchAll(PEM_LABEL)].map((m) => m[1]);
}

function describeContent(text: string): string {
  const labels = pemLabels(text);
  if (labels.length === 0) return 'holds no PEM block';
  return `holds ${[...new Set(labels)].map((l) => `a ${l} block`).join(' and ')}`;
}

function opensslReason(err: unknown): string {
  const e = err as { reason?: unknown; message?: unknown };
  return typeof e.reason === 'string' && e.reason ? e.reason : String(e.message ?? err);
}

function parseCertificate(pem: string): X509Certificate | string {
  const labels = pemLabels(pem);
  if (!labels.includes('CERTIFICATE')) return `${describeContent(pem)}, not a certificate`;
  try {
    return new X509Certificate(pem);
  } catch (err) {
    return `holds a CERTIFICATE block that cannot be parsed (${opensslReason(err)})`;
  }
}

function parsePrivateKey(pem: string): KeyObject | string {
  const labels = pemLabels(pem);
  if (!labels.some((l) => l.endsWith('PRIVATE KEY'))) return `${describeContent(pem)}, not a private key`;
  try {
    return createPrivateKey(pem);
  } catch (err) {
    return `holds a private key block that cannot be parsed (${opensslReason(err)})`;
  }
}

/** Every CERTIFICATE block of a CA bundle, or why the bundle is unusable. */
function caProblem(pem: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return `${describeContent(pem)}, not a CA certificate`;
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `has a certificate (block ${i + 1}) that cannot be parsed (${opensslReason(err)})`;
    }
  }
  return undefined;
}

/**
 * The first problem of the material, in the order certificate, key, certificate-and-key, CA; a
 * certificate and a key given the wrong way round are one `swapped` problem. Undefined when Node's
 * TLS layer will accept all three.
 */
export function tlsMaterialProblem(material: TlsMaterial): TlsMaterialProblem | undefined {
  const cert = parseCertificate(material.certPem);
  const key = parsePrivateKey(material.keyPem);
  if (typeof cert === 'string' && typeof key === 'string') {
    const certLabels = pemLabels(material.certPem);
    const keyLabels = pemLabels(material.keyPem);
    if (certLabels.some((l) => l.endsWith('PRIVATE KEY')) && keyLabels.includes('CERTIFICATE'))
      return { part: 'swapped', problem: 'the certificate holds a private key and the key a certificate' };
  }
  if (typeof cert === 'string') return { part: 'cert', problem: cert };
  if (typeof key === 'string') return { part: 'key', problem: key };
  if (!cert.checkPrivateKey(key))
    return { part: 'keyMismatch', problem: 'the private key is not the key of the certificate' };
  const ca = caProblem(material.caPem);
  if (ca) return { part: 'ca', problem: ca };
  return undefined;
}
