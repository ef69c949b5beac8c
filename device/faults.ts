/**
 * Fault modes: how a simulated device misbehaves on purpose, so scenarios can prove the cloud
 * refuses it (clones, wrong lot, bad attestation) or copes with another enrollment path.
 * `cloneOf` and `wrongLotClaim` change what the device presents and are resolved by the fleet
 * runner; the others change what the agent does and map to agent options here.
 */
import { generateFactoryKey, type FactoryIdentity } from './identity';
import type { EnrollmentMethod } from './provisioning-client';

/** Fault modes used by scenarios. */
export interface DeviceFaults {
  /** Present another serial's identity (its serial, lot, revision) with a different factory key. */
  cloneOf?: string;
  /** Connect with the claim certificate of this other lot. */
  wrongLotClaim?: string;
  /** Sign the DeviceProof with a wrong key. */
  badAttestation?: boolean;
  /** Use CreateKeysAndCertificate instead of the CSR path. */
  useCreateKeys?: boolean;
}

/** The agent options that a device's fault modes set. */
export function faultAgentOptions(faults: DeviceFaults | undefined): {
  method: EnrollmentMethod;
  badAttestation: boolean;
} {
  return {
    method: faults?.useCreateKeys ? 'createKeys' : 'csr',
    badAttestation: faults?.badAttestation === true,
  };
}

/**
 * The private key (PEM) that signs the DeviceProof: the factory key, or under `badAttestation` a
 * freshly generated key the manifest does not know. None without a factory key: no proof is sent.
 */
export function proofSigningKey(
  identity: FactoryIdentity,
  badAttestation: boolean | undefined,
): string | undefined {
  if (badAttestation) return generateFactoryKey().privateKeyPem;
  return identity.factoryKey?.privateKeyPem;
}
