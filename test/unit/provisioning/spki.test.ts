import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { publicKeyFingerprintOfCertificate } from '../../../core/attestation';
import { fastPublicKeyFingerprint, spkiOfCertificateDer } from '../../../lambda/provisioning/spki';
import { createTestCa } from '../../integration/hook/fixtures';

describe('fastPublicKeyFingerprint', () => {
  test('equals the full-parse fingerprint for EC P-256 certificates', async () => {
    const ca = await createTestCa();
    for (let i = 0; i < 5; i++) {
      const cert = await (await ca.newDeviceKey()).issue();
      expect(fastPublicKeyFingerprint(cert.pem)).toBe(publicKeyFingerprintOfCertificate(cert.pem));
      expect(fastPublicKeyFingerprint(cert.pem)).toBe(cert.fingerprint);
    }
  });

  test('two certificates of one key share the fingerprint', async () => {
    const key = await (await createTestCa()).newDeviceKey();
    const [a, b] = [await key.issue(), await key.issue()];
    expect(a.certificateId).not.toBe(b.certificateId);
    expect(fastPublicKeyFingerprint(a.pem)).toBe(fastPublicKeyFingerprint(b.pem));
  });

  test.each([
    ['not a PEM', 'hello'],
    ['empty certificate', '-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----'],
    ['garbage body', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'],
  ])('throws on %s (falls back to the full parse)', (_name, pem) => {
    expect(() => fastPublicKeyFingerprint(pem)).toThrow();
  });

  test('the DER walk rejects truncated input', () => {
    expect(spkiOfCertificateDer(Buffer.from([0x30, 0x82, 0xff]))).toBeUndefined();
    expect(spkiOfCertificateDer(Buffer.alloc(0))).toBeUndefined();
  });

  test('equals the full-parse fingerprint for an RSA certificate', async () => {
    const alg = {
      name: 'RSASSA-PKCS1-v1_5',
      hash: 'SHA-256',
      publicExponent: new Uint8Array([1, 0, 1]),
      modulusLength: 2048,
    };
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=rsa',
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: alg,
      keys,
    });
    const pem = cert.toString('pem');
    expect(fastPublicKeyFingerprint(pem)).toBe(publicKeyFingerprintOfCertificate(pem));
  });
});
