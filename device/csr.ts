/**
 * Device key and CSR generation for CreateCertificateFromCsr: one ECDSA P-256 key pair per
 * enrollment, kept across retries so that a retry after a lost RegisterThing answer presents the
 * same public key (the hook allows such a retry); only the CSR leaves the device.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A device key pair (WebCrypto), generated once per enrollment. */
export type DeviceKeyPair = webcrypto.CryptoKeyPair;

export interface DeviceKeyAndCsr {
  /** The key pair the CSR was signed with; pass it back to sign the next CSR with the same key. */
  keys: DeviceKeyPair;
  /** PKCS#8 PEM private key; stays on the device. */
  privateKeyPem: string;
  /** SPKI PEM public key (to match the issued certificate). */
  publicKeyPem: string;
  /** PEM PKCS#10 request. */
  csrPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, label);
}

/** A CSR with subject `CN=<commonName>` for `existing` keys, or for a newly generated P-256 pair. */
export async function createKeyAndCsr(
  commonName: string,
  existing?: DeviceKeyPair,
): Promise<DeviceKeyAndCsr> {
  const keys =
    existing ?? ((await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as DeviceKeyPair);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName.replace(/[,+="<>#;\\]/g, '_')}`,
    keys: keys as unknown as x509.Pkcs10CertificateRequestCreateParams['keys'],
    signingAlgorithm: SIGNING,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  return {
    keys,
    privateKeyPem: pem('PRIVATE KEY', pkcs8),
    publicKeyPem: pem('PUBLIC KEY', spki),
    csrPem: csr.toString('pem'),
  };
}
