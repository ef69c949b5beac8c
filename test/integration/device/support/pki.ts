/** A throwaway test CA (ECDSA P-256) issuing server, claim and device certificates. */
import 'reflect-metadata';
import { webcrypto, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type KeyPair = x509.Pkcs10CertificateRequestCreateParams['keys'];
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

async function newKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as unknown as KeyPair;
}

async function keyPem(keys: KeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

export interface IssuedPair {
  certPem: string;
  keyPem: string;
}

export class TestCa {
  private constructor(
    private readonly keys: KeyPair,
    readonly cert: x509.X509Certificate,
    readonly name: string,
  ) {}

  static async create(name = 'Test Device CA'): Promise<TestCa> {
    const keys = await newKeys();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${name}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    return new TestCa(keys, cert, name);
  }

  get certPem(): string {
    return this.cert.toString('pem');
  }

  private async sign(
    subject: string,
    publicKey: x509.PublicKey | KeyPair['publicKey'],
    server: boolean,
  ): Promise<string> {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${subject}`,
      issuer: this.cert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ]),
        ...(server
          ? [
              new x509.SubjectAlternativeNameExtension([
                { type: 'dns', value: 'localhost' },
                { type: 'ip', value: '127.0.0.1' },
              ]),
            ]
          : []),
      ],
    });
    return cert.toString('pem');
  }

  /** Key pair + certificate (server: SAN localhost/127.0.0.1; otherwise client auth). */
  async issue(subject: string, server = false): Promise<IssuedPair> {
    const keys = await newKeys();
    return { certPem: await this.sign(subject, keys.publicKey, server), keyPem: await keyPem(keys) };
  }

  /** Certificate for a PEM CSR (signature verified), or an Error message for a bad CSR. */
  async issueForCsr(csrPem: string, subject: string): Promise<string> {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (!(await csr.verify())) throw new Error('CSR signature does not verify');
    return this.sign(subject, csr.publicKey, false);
  }
}
