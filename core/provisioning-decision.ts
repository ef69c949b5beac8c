/**
 * Pure decision core of the pre-provisioning hook. No AWS SDK import, no I/O: the handler reads
 * the registry, calls {@link decide}, and performs the transition it returns.
 *
 * Two phases. The hot path (a first enrollment, or a retry with the same key or a valid
 * attestation) decides in one call. Only when a PROVISIONING device is retried with a different
 * key and no valid proof does the core answer {@link PriorCertificateQuery}: the handler then
 * looks up the status of the earlier certificate and calls {@link decide} again with the fact.
 *
 * The rule: no second device can ever take over a serial, and a genuine retry after a lost
 * response is never stranded.
 */
import { verifyDeviceProof } from './attestation';
import {
  AllowReason,
  DenyReason,
  DeviceRecord,
  LotRecord,
  OVERRIDE_PARAMETERS,
  ProvisioningTransition,
  thingNameFor,
} from './model';
import { canTransition, ENROLLMENT_DENIALS } from './lifecycle';
import { RingShares, ringForSerial } from './rings';

export type { ProvisioningTransition } from './model';

/** A hook request after schema validation. */
export interface ProvisioningRequest {
  serial: string;
  hwRev: string;
  firmware: string;
  /** Base64 DER ECDSA signature of `certificateId` by the factory key. */
  proof?: string;
  claimCertificateId: string;
  /** Id of the new certificate being provisioned. */
  certificateId: string;
  /** SHA-256 of the new certificate's SubjectPublicKeyInfo. */
  publicKeyFingerprint: string;
  templateName: string;
}

export interface DecisionConfig {
  thingNamePrefix: string;
  ringShares: RingShares;
}

/**
 * What AWS IoT says about the certificate of the earlier attempt. `NOT_FOUND` and `REVOKED`
 * prove it never became (or can never again be) usable; anything else counts as `USABLE`.
 */
export type PriorCertificateFact = 'NOT_FOUND' | 'REVOKED' | 'USABLE';

export interface DecisionInput {
  request: ProvisioningRequest;
  device: DeviceRecord | undefined;
  lot: LotRecord | undefined;
  config: DecisionConfig;
  /** Second phase only: the answer to a {@link PriorCertificateQuery}. */
  priorCertificate?: PriorCertificateFact;
}

export interface AllowDecision {
  allow: true;
  reason: AllowReason;
  overrides: Record<string, string>;
  transition: ProvisioningTransition;
}

export interface DenyDecision {
  allow: false;
  reason: DenyReason;
  overrides?: undefined;
  transition?: undefined;
}

export type Decision = AllowDecision | DenyDecision;

/** Phase one could not decide: look up this certificate and decide again with the fact. */
export interface PriorCertificateQuery {
  allow?: undefined;
  needsPriorCertificate: string;
}

export type DecisionOutcome = Decision | PriorCertificateQuery;

export function isPriorCertificateQuery(o: DecisionOutcome): o is PriorCertificateQuery {
  return 'needsPriorCertificate' in o;
}

const deny = (reason: DenyReason): DenyDecision => ({ allow: false, reason });

export function decide(input: DecisionInput): DecisionOutcome {
  const { request: req, device, lot } = input;
  if (!device) return deny('NOT_ON_ALLOWLIST');
  if (!lot || lot.lot !== device.lot) return deny('LOT_UNKNOWN');
  if (!lot.claimCertificateIds.includes(req.claimCertificateId)) return deny('CLAIM_LOT_MISMATCH');
  if (lot.status === 'HOLD') return deny('LOT_ON_HOLD');
  if (req.hwRev !== device.hwRev) return deny('HARDWARE_REVISION_MISMATCH');
  if (lot.requireAttestation && req.proof === undefined) return deny('ATTESTATION_REQUIRED');
  // A proof that is present must verify, whether or not the lot requires one.
  const attested = req.proof !== undefined;
  if (
    attested &&
    !(device.publicKey && verifyDeviceProof(req.certificateId, req.proof as string, device.publicKey))
  ) {
    return deny('ATTESTATION_INVALID');
  }

  // The lifecycle table says which statuses may enroll; every other status has its reason.
  if (!canTransition('enroll', device.status)) {
    return deny(ENROLLMENT_DENIALS[device.status]);
  }
  if (device.status === 'MANUFACTURED') return allow('ALLOWED', input);

  // PROVISIONING: an earlier attempt got this far. Only the same device may continue.
  if (device.publicKeyFingerprint !== undefined && device.publicKeyFingerprint === req.publicKeyFingerprint) {
    return allow('ALLOWED_RETRY_SAME_KEY', input);
  }
  if (attested) return allow('ALLOWED_RETRY_ATTESTED', input);
  if (!device.certificateId) {
    // No earlier certificate was ever recorded, so none can be usable.
    return allow('ALLOWED_RETRY_PRIOR_CERT_UNUSABLE', input);
  }
  switch (input.priorCertificate) {
    case undefined:
      return { needsPriorCertificate: device.certificateId };
    case 'NOT_FOUND':
    case 'REVOKED':
      return allow('ALLOWED_RETRY_PRIOR_CERT_UNUSABLE', input);
    default:
      return deny('DUPLICATE_IN_PROGRESS');
  }
}

function allow(reason: AllowReason, input: DecisionInput): AllowDecision {
  const { request: req, config } = input;
  const device = input.device as DeviceRecord;
  const thingName = thingNameFor(config.thingNamePrefix, req.serial);
  const ring = device.ring ?? ringForSerial(req.serial, config.ringShares);
  return {
    allow: true,
    reason,
    overrides: {
      [OVERRIDE_PARAMETERS.thingName]: thingName,
      [OVERRIDE_PARAMETERS.ring]: ring,
      [OVERRIDE_PARAMETERS.lot]: device.lot,
      [OVERRIDE_PARAMETERS.hwRev]: device.hwRev,
    },
    transition: {
      expectedStatus: device.status as ProvisioningTransition['expectedStatus'],
      expectedRevision: device.revision ?? 0,
      thingName,
      ring,
      certificateId: req.certificateId,
      publicKeyFingerprint: req.publicKeyFingerprint,
      firmware: req.firmware,
      // The same certificate retried (the hook invoked twice for one RegisterThing) is already
      // in the lineage.
      appendHistory: device.certificateId !== req.certificateId,
    },
  };
}
