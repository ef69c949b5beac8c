/**
 * The lab's local certificate authority (ECDSA P-256, @peculiar/x509 over Node WebCrypto).
 *
 * - one self-signed root, which devices trust as "the AWS IoT endpoint CA" and which signs
 *   every device certificate;
 * - a broker server certificate for 127.0.0.1 / localhost;
 * - issuance from a CSR (the device keeps its private key) and from a generated key pair.
 *
 * Difference from AWS, on purpose: AWS IoT's CreateKeysAndCertificate returns an RSA-2048 key
 * pair; the lab issues ECDSA P-256 for every path (faster, and TLS-equivalent for the lab).
 * Issued certificates expire 2049-12-31T23:59:59Z like AWS IoT-issued ones.
 */
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const AWS_IOT_NOT_AFTER = new Date('2049-12-31T23:59:59Z');

export interface IssuedCertificate {
  certificateId: string;
  certificatePem: string;
}

export interface IssuedKeysAndCertificate extends IssuedCertificate {
  privateKeyPem: string;
  publicKeyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive INTEGER
  return b.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END ${label}-----\n`;
}

/** AWS IoT certificate id: SHA-256 (hex) of the certificate's DER. */
export function certificateIdOfPem(pem: string): string {
  return createHash('sha256').update(new NodeX509(pem).raw).digest('hex');
}

export function certificateIdOfDer(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

export class LabCa {
  private constructor(
    private readonly rootCert: x509.X509Certificate,
    private readonly rootKeys: CryptoKeyPair,
    /** PEM of the root CA certificate: what devices must trust. */
    readonly caPem: string,
    /** Broker server certificate and key (PEM). */
    readonly serverCertPem: string,
    readonly serverKeyPem: string,
    /** Id of the CA as AWS would report it (caCertificateId). */
    readonly caCertificateId: string,
  ) {}

  static async create(commonName = 'iot-fleet-stack lab root CA'): Promise<LabCa> {
    const rootKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = new Date(Date.now() - 60_000);
    const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${commonName}, O=iot-fleet-stack lab`,
      notBefore: now,
      notAfter: AWS_IOT_NOT_AFTER,
      keys: rootKeys,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const serverKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const serverCert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: 'CN=localhost',
      issuer: rootCert.subject,
      notBefore: now,
      notAfter: AWS_IOT_NOT_AFTER,
      publicKey: serverKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const serverKeyPem = toPem(
      await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey),
      'PRIVATE KEY',
    );
    const caPem = rootCert.toString('pem') + '\n';
    return new LabCa(
      rootCert,
      rootKeys,
      caPem,
      serverCert.toString('pem') + '\n',
      serverKeyPem,
      certificateIdOfDer(Buffer.from(rootCert.rawData)),
    );
  }

  private async issue(publicKey: x509.PublicKey | CryptoKey, commonName: string): Promise<IssuedCertificate> {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${commonName}`,
      issuer: this.rootCert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: AWS_IOT_NOT_AFTER,
      publicKey,
      signingKey: this.rootKeys.privateKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(this.rootKeys.publicKey),
      ],
    });
    const certificatePem = cert.toString('pem') + '\n';
    return { certificatePem, certificateId: certificateIdOfDer(Buffer.from(cert.rawData)) };
  }

  /**
   * Issue a certificate for a PEM CSR after verifying its self-signature. The subject of the
   * issued certificate is AWS's fixed one, not the CSR's (AWS IoT ignores the CSR subject).
   * Throws an Error with a readable message when the CSR is malformed or its signature is bad.
   */
  async issueFromCsr(csrPem: string): Promise<IssuedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (e) {
      throw new Error(
        `Certificate signing request is not a valid PEM PKCS#10 request: ${(e as Error).message}`,
      );
    }
    let ok = false;
    try {
      ok = await csr.verify();
    } catch (e) {
      throw new Error(`Certificate signing request signature cannot be verified: ${(e as Error).message}`);
    }
    if (!ok) throw new Error('Certificate signing request signature is invalid');
    return this.issue(csr.publicKey, 'AWS IoT Certificate');
  }

  /** Generate a P-256 key pair and issue a certificate for it (CreateKeysAndCertificate). */
  async issueWithNewKeys(): Promise<IssuedKeysAndCertificate> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const issued = await this.issue(keys.publicKey, 'AWS IoT Certificate');
    return {
      ...issued,
      privateKeyPem: toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
      publicKeyPem: toPem(await webcrypto.subtle.exportKey('spki', keys.publicKey), 'PUBLIC KEY'),
    };
  }
}
