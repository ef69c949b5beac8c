/**
 * Device key and CSR generation for CreateCertificateFromCsr: a fresh ECDSA P-256 key pair per
 * enrollment; only the CSR leaves the device.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface DeviceKeyAndCsr {
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

/** Generate a P-256 key pair and a CSR with subject `CN=<commonName>`. */
export async function createKeyAndCsr(commonName: string): Promise<DeviceKeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(P256, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName.replace(/[,+="<>#;\\]/g, '_')}`,
    keys: keys as unknown as x509.Pkcs10CertificateRequestCreateParams['keys'],
    signingAlgorithm: SIGNING,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  return {
    privateKeyPem: pem('PRIVATE KEY', pkcs8),
    publicKeyPem: pem('PUBLIC KEY', spki),
    csrPem: csr.toString('pem'),
  };
}
