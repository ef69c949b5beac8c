/**
 * Factory-key attestation and key fingerprints. Pure functions over node:crypto, shared by the
 * pre-provisioning hook (verify), the device simulator (sign) and the tests.
 *
 * Proof format: the device signs the UTF-8 bytes of the *new* certificate id with its factory
 * ECDSA P-256 key, SHA-256 digest, DER-encoded signature, base64. The manifest carries the
 * factory public key as a PEM SubjectPublicKeyInfo.
 */
import { createHash, createPublicKey, createSign, createVerify, X509Certificate } from 'node:crypto';

/** Sign a certificate id with the factory private key (PEM, PKCS#8 or SEC1). */
export function signDeviceProof(certificateId: string, factoryPrivateKeyPem: string): string {
  const signer = createSign('SHA256');
  signer.update(certificateId, 'utf8');
  signer.end();
  return signer.sign(factoryPrivateKeyPem).toString('base64');
}

/** True when `proof` is a valid factory signature over `certificateId`. Never throws. */
export function verifyDeviceProof(
  certificateId: string,
  proof: string,
  factoryPublicKeyPem: string,
): boolean {
  try {
    const key = createPublicKey(factoryPublicKeyPem);
    if (key.asymmetricKeyType !== 'ec') return false;
    const verifier = createVerify('SHA256');
    verifier.update(certificateId, 'utf8');
    verifier.end();
    return verifier.verify(key, Buffer.from(proof, 'base64'));
  } catch {
    return false;
  }
}

/** True when the PEM parses as an EC P-256 public key (manifest validation). */
export function isP256PublicKey(pem: string): boolean {
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

/** SHA-256 (hex) of the SubjectPublicKeyInfo of a certificate, CSR-independent. */
export function publicKeyFingerprintOfCertificate(certificatePem: string): string {
  const cert = new X509Certificate(certificatePem);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/** SHA-256 (hex) of a public key's SubjectPublicKeyInfo. */
export function publicKeyFingerprint(publicKeyPem: string): string {
  const spki = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/** AWS IoT certificate id: SHA-256 (hex) of the certificate's DER encoding. */
export function certificateIdOf(certificatePem: string): string {
  return createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex');
}
