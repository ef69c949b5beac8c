import { generateKeyPairSync } from 'node:crypto';
import { signDeviceProof } from '../../../core/attestation';
import { DeviceRecord, LotRecord } from '../../../core/model';
import {
  decide,
  DecisionInput,
  DecisionOutcome,
  isPriorCertificateQuery,
  PriorCertificateFact,
  ProvisioningRequest,
} from '../../../core/provisioning-decision';
import { ringForSerial } from '../../../core/rings';

const factory = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const factoryPublicPem = factory.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const factoryPrivatePem = factory.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const otherPrivatePem = otherKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const NEW_CERT = 'c'.repeat(64);
const PRIOR_CERT = 'b'.repeat(64);
const goodProof = signDeviceProof(NEW_CERT, factoryPrivatePem);
const forgedProof = signDeviceProof(NEW_CERT, otherPrivatePem);
const shares = { canaryPercent: 2, earlyPercent: 18 };

const request = (over: Partial<ProvisioningRequest> = {}): ProvisioningRequest => ({
  serial: 'SN-0001',
  hwRev: 'A',
  firmware: '1.2.3',
  claimCertificateId: 'claimA',
  certificateId: NEW_CERT,
  publicKeyFingerprint: 'fp-new',
  templateName: 'FleetTemplate',
  ...over,
});
const device = (over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  serial: 'SN-0001',
  lot: 'LOT-A',
  hwRev: 'A',
  factoryFirmware: '1.0.0',
  currentFirmware: '1.0.0',
  status: 'MANUFACTURED',
  publicKey: factoryPublicPem,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  revision: 4,
  ...over,
});
const provisioning = (over: Partial<DeviceRecord> = {}): DeviceRecord =>
  device({ status: 'PROVISIONING', certificateId: PRIOR_CERT, publicKeyFingerprint: 'fp-old', ...over });
const lot = (over: Partial<LotRecord> = {}): LotRecord => ({
  lot: 'LOT-A',
  status: 'OK',
  claimCertificateIds: ['claimA'],
  requireAttestation: false,
  unitCount: 10,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...over,
});

function input(
  req: Partial<ProvisioningRequest>,
  dev: DeviceRecord | undefined,
  l: LotRecord | undefined,
  prior?: PriorCertificateFact,
): DecisionInput {
  return {
    request: request(req),
    device: dev,
    lot: l,
    config: { thingNamePrefix: 'fleet', ringShares: shares },
    priorCertificate: prior,
  };
}

const reasonOf = (o: DecisionOutcome): string => (isPriorCertificateQuery(o) ? 'QUERY' : o.reason);

describe('decide: one case per reason code', () => {
  test.each<[string, DecisionInput, string]>([
    ['serial not in the manifest', input({}, undefined, lot()), 'NOT_ON_ALLOWLIST'],
    ['lot has no record', input({}, device(), undefined), 'LOT_UNKNOWN'],
    ['lot record of another lot', input({}, device(), lot({ lot: 'LOT-B' })), 'LOT_UNKNOWN'],
    ['claim of another lot', input({ claimCertificateId: 'claimB' }, device(), lot()), 'CLAIM_LOT_MISMATCH'],
    ['lot on hold', input({}, device(), lot({ status: 'HOLD' })), 'LOT_ON_HOLD'],
    ['hardware revision differs', input({ hwRev: 'B' }, device(), lot()), 'HARDWARE_REVISION_MISMATCH'],
    [
      'lot requires attestation, none sent',
      input({}, device(), lot({ requireAttestation: true })),
      'ATTESTATION_REQUIRED',
    ],
    [
      'forged proof',
      input({ proof: forgedProof }, device(), lot({ requireAttestation: true })),
      'ATTESTATION_INVALID',
    ],
    [
      'garbage proof, lot without requirement',
      input({ proof: 'AAAA' }, device(), lot()),
      'ATTESTATION_INVALID',
    ],
    [
      'proof but no factory key on record',
      input({ proof: goodProof }, device({ publicKey: undefined }), lot()),
      'ATTESTATION_INVALID',
    ],
    [
      'proof over another certificate id',
      input({ proof: goodProof, certificateId: 'd'.repeat(64) }, device(), lot()),
      'ATTESTATION_INVALID',
    ],
    ['first enrollment', input({}, device(), lot()), 'ALLOWED'],
    [
      'first enrollment with valid proof',
      input({ proof: goodProof }, device(), lot({ requireAttestation: true })),
      'ALLOWED',
    ],
    ['already active (clone)', input({}, device({ status: 'ACTIVE' }), lot()), 'DEVICE_ALREADY_ACTIVE'],
    [
      'already active even with the same key',
      input({ publicKeyFingerprint: 'fp-old' }, provisioning({ status: 'ACTIVE' }), lot()),
      'DEVICE_ALREADY_ACTIVE',
    ],
    ['under RMA', input({}, device({ status: 'RMA' }), lot()), 'DEVICE_IN_RMA'],
    ['retired', input({}, device({ status: 'RETIRED' }), lot()), 'DEVICE_RETIRED'],
    [
      'retry with the same key',
      input({ publicKeyFingerprint: 'fp-old' }, provisioning(), lot()),
      'ALLOWED_RETRY_SAME_KEY',
    ],
    [
      'retry with a new key and valid proof',
      input({ proof: goodProof }, provisioning(), lot()),
      'ALLOWED_RETRY_ATTESTED',
    ],
    [
      'retry, new key, prior cert not found',
      input({}, provisioning(), lot(), 'NOT_FOUND'),
      'ALLOWED_RETRY_PRIOR_CERT_UNUSABLE',
    ],
    [
      'retry, new key, prior cert revoked',
      input({}, provisioning(), lot(), 'REVOKED'),
      'ALLOWED_RETRY_PRIOR_CERT_UNUSABLE',
    ],
    [
      'retry, no prior certificate recorded',
      input({}, provisioning({ certificateId: undefined, publicKeyFingerprint: undefined }), lot()),
      'ALLOWED_RETRY_PRIOR_CERT_UNUSABLE',
    ],
    [
      'clone while provisioning, prior cert usable',
      input({}, provisioning(), lot(), 'USABLE'),
      'DUPLICATE_IN_PROGRESS',
    ],
    ['clone while provisioning: phase one asks', input({}, provisioning(), lot()), 'QUERY'],
    [
      'lot hold wins over same-key retry',
      input({ publicKeyFingerprint: 'fp-old' }, provisioning(), lot({ status: 'HOLD' })),
      'LOT_ON_HOLD',
    ],
    [
      'forged proof never counts as a retry proof',
      input({ proof: forgedProof }, provisioning(), lot(), 'NOT_FOUND'),
      'ATTESTATION_INVALID',
    ],
  ])('%s -> %s', (_name, i, expected) => {
    expect(reasonOf(decide(i))).toBe(expected);
  });
});

describe('decide: allow details', () => {
  test('overrides and transition of a first enrollment', () => {
    const out = decide(input({}, device(), lot()));
    expect(out).toEqual({
      allow: true,
      reason: 'ALLOWED',
      overrides: {
        ThingName: 'fleet-SN-0001',
        Ring: ringForSerial('SN-0001', shares),
        Lot: 'LOT-A',
        HardwareRevision: 'A',
      },
      transition: {
        expectedStatus: 'MANUFACTURED',
        expectedRevision: 4,
        thingName: 'fleet-SN-0001',
        ring: ringForSerial('SN-0001', shares),
        certificateId: NEW_CERT,
        publicKeyFingerprint: 'fp-new',
        firmware: '1.2.3',
        appendHistory: true,
      },
    });
  });

  test('the manifest ring wins over the hash', () => {
    const out = decide(input({}, device({ ring: 'canary' }), lot()));
    expect(!isPriorCertificateQuery(out) && out.allow && out.overrides.Ring).toBe('canary');
  });

  test('phase one names the prior certificate; the hot paths never ask', () => {
    expect(decide(input({}, provisioning(), lot()))).toEqual({ needsPriorCertificate: PRIOR_CERT });
    for (const i of [
      input({}, device(), lot()),
      input({ publicKeyFingerprint: 'fp-old' }, provisioning(), lot()),
      input({ proof: goodProof }, provisioning(), lot()),
    ]) {
      expect(isPriorCertificateQuery(decide(i))).toBe(false);
    }
  });

  test('a retry is a PROVISIONING -> PROVISIONING transition on the revision read', () => {
    const out = decide(input({ publicKeyFingerprint: 'fp-old' }, provisioning({ revision: 7 }), lot()));
    expect(!isPriorCertificateQuery(out) && out.transition).toMatchObject({
      expectedStatus: 'PROVISIONING',
      expectedRevision: 7,
      appendHistory: true,
    });
  });

  test('the same certificate retried is not appended to the lineage again', () => {
    const out = decide(
      input({ publicKeyFingerprint: 'fp-old', certificateId: PRIOR_CERT }, provisioning(), lot()),
    );
    expect(!isPriorCertificateQuery(out) && out.transition?.appendHistory).toBe(false);
  });

  test('denials carry no overrides and no transition', () => {
    const out = decide(input({}, device({ status: 'ACTIVE' }), lot()));
    expect(out).toEqual({ allow: false, reason: 'DEVICE_ALREADY_ACTIVE' });
  });
});
