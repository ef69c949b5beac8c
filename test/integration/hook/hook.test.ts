/**
 * The BUNDLED pre-provisioning hook against dynalite on loopback, with a loopback stand-in for
 * AWS IoT's DescribeCertificate. Every reason code is exercised against the real handler.
 */
import { generateKeyPairSync } from 'node:crypto';
import { RegistryAdmin } from '../../../cli/registry-admin';
import { signDeviceProof } from '../../../core/attestation';
import { DeviceEvent, DeviceRecord } from '../../../core/model';
import { Registry, RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import {
  createTestCa,
  DeviceKey,
  deviceRecord,
  FakeIot,
  HOOK_ENTRY,
  hookEnv,
  hookEvent,
  HookEventInput,
  IssuedCertificate,
  lotRecord,
  putDevice,
  putLot,
  startFakeIot,
  TestCa,
  type Hook,
  type HookResult,
} from './fixtures';

let db: LocalDynamo;
let iot: FakeIot;
let tables: RegistryTableNames;
let registry: Registry;
let hook: Hook;
let ca: TestCa;
let cert: IssuedCertificate;

const factory = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const factoryPublicKey = factory.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const factoryPrivateKey = factory.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const strangerPrivateKey = stranger.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

let serialSeq = 0;
const newSerial = (): string => `SN-HOOK-${String(++serialSeq).padStart(4, '0')}`;

async function seedDevice(lot: string, over: Partial<DeviceRecord> = {}): Promise<string> {
  const serial = newSerial();
  await putDevice(db.doc, tables, deviceRecord(serial, lot, over));
  return serial;
}

const eventsOf = (serial: string): Promise<DeviceEvent[]> => readTrail(db.doc, tables.events, serial);

const call = (i: HookEventInput): Promise<HookResult> => hook(hookEvent(i));

/** AWS IoT creates the certificate (PENDING_ACTIVATION) before it invokes the hook. */
async function issue(key: DeviceKey): Promise<IssuedCertificate> {
  const c = await key.issue();
  iot.certificates.set(c.certificateId, 'PENDING_ACTIVATION');
  return c;
}
const freshCert = async (): Promise<IssuedCertificate> => issue(await ca.newDeviceKey());

beforeAll(async () => {
  [db, iot, ca] = await Promise.all([startDynalite(), startFakeIot(), createTestCa()]);
  tables = await createRegistryTables(db.client, 'Hook');
  registry = new Registry(db.doc, tables);
  await Promise.all([
    putLot(db.doc, tables, lotRecord('LOT-A')),
    putLot(db.doc, tables, lotRecord('LOT-B')),
    putLot(db.doc, tables, lotRecord('LOT-H', { status: 'HOLD', holdReason: 'batch defect' })),
    putLot(db.doc, tables, lotRecord('LOT-ATT', { requireAttestation: true })),
  ]);
  cert = await freshCert();
  // The largest budget the stack allows: 50 concurrent attempts share one test process.
  hook = loadBundledHandler<Hook>(HOOK_ENTRY, hookEnv(tables, db.endpoint, iot.endpoint, 4500));
});

afterAll(async () => {
  await Promise.all([db.stop(), iot.stop()]);
  cleanBundles();
});

describe('deny reasons against the bundled handler, each audited', () => {
  type Case = [string, () => Promise<{ serial: string; input: HookEventInput; lot?: string }>];
  test.each<Case>([
    [
      'INVALID_PARAMETERS',
      async () => {
        const serial = await seedDevice('LOT-A');
        return { serial, input: { serial, cert, claimCertificateId: 'claim-LOT-A', firmware: 'not-semver' } };
      },
    ],
    [
      'TEMPLATE_MISMATCH',
      async () => {
        const serial = await seedDevice('LOT-A');
        const templateArn = 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/SomeoneElses';
        return { serial, input: { serial, cert, claimCertificateId: 'claim-LOT-A', templateArn } };
      },
    ],
    [
      'NOT_ON_ALLOWLIST',
      async () => {
        const serial = newSerial();
        return { serial, input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
    [
      'LOT_UNKNOWN',
      async () => {
        const serial = await seedDevice('LOT-GHOST');
        return { serial, lot: 'LOT-GHOST', input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
    [
      'CLAIM_LOT_MISMATCH',
      async () => {
        const serial = await seedDevice('LOT-B');
        return { serial, lot: 'LOT-B', input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
    [
      'LOT_ON_HOLD',
      async () => {
        const serial = await seedDevice('LOT-H');
        return { serial, lot: 'LOT-H', input: { serial, cert, claimCertificateId: 'claim-LOT-H' } };
      },
    ],
    [
      'HARDWARE_REVISION_MISMATCH',
      async () => {
        const serial = await seedDevice('LOT-A');
        return {
          serial,
          lot: 'LOT-A',
          input: { serial, cert, claimCertificateId: 'claim-LOT-A', hwRev: 'B' },
        };
      },
    ],
    [
      'ATTESTATION_REQUIRED',
      async () => {
        const serial = await seedDevice('LOT-ATT', { publicKey: factoryPublicKey });
        return { serial, lot: 'LOT-ATT', input: { serial, cert, claimCertificateId: 'claim-LOT-ATT' } };
      },
    ],
    [
      'ATTESTATION_INVALID',
      async () => {
        const serial = await seedDevice('LOT-ATT', { publicKey: factoryPublicKey });
        const proof = signDeviceProof(cert.certificateId, strangerPrivateKey);
        return {
          serial,
          lot: 'LOT-ATT',
          input: { serial, cert, claimCertificateId: 'claim-LOT-ATT', proof },
        };
      },
    ],
    [
      'DEVICE_ALREADY_ACTIVE',
      async () => {
        const serial = await seedDevice('LOT-A', { status: 'ACTIVE', certificateId: 'f'.repeat(64) });
        return { serial, lot: 'LOT-A', input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
    [
      'DEVICE_IN_RMA',
      async () => {
        const serial = await seedDevice('LOT-A', { status: 'RMA' });
        return { serial, lot: 'LOT-A', input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
    [
      'DEVICE_RETIRED',
      async () => {
        const serial = await seedDevice('LOT-A', { status: 'RETIRED' });
        return { serial, lot: 'LOT-A', input: { serial, cert, claimCertificateId: 'claim-LOT-A' } };
      },
    ],
  ])('%s', async (reason, setup) => {
    const { serial, input, lot } = await setup();
    const before = await registry.getDevice(serial);
    const res = await call({ ...input, clientId: 'prov-case' });
    expect(res).toEqual({ allowProvisioning: false, parameterOverrides: {} });
    const events = await eventsOf(serial);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'ENROLLMENT_DENIED',
      reason,
      detail: {
        claimCertificateId: input.claimCertificateId,
        certificateId: cert.certificateId,
        clientId: 'prov-case',
      },
    });
    expect(events[0].enrollDay).toMatch(new RegExp(`^${events[0].at.slice(0, 10)}#[0-7]$`));
    if (lot) expect(events[0].lot).toBe(lot);
    // A denial never changes the device.
    expect(await registry.getDevice(serial)).toEqual(before);
  });

  test('INVALID_PARAMETERS without a usable serial is denied without an audit entry', async () => {
    const res = await hook({ hello: 'world' });
    expect(res).toEqual({ allowProvisioning: false, parameterOverrides: {} });
    const res2 = await call({ serial: 'bad serial with spaces', cert, claimCertificateId: 'claim-LOT-A' });
    expect(res2.allowProvisioning).toBe(false);
    expect(await eventsOf('bad serial with spaces')).toEqual([]);
  });

  test('an unparseable certificate is INVALID_PARAMETERS', async () => {
    const serial = await seedDevice('LOT-A');
    const bogus = { ...cert, pem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' };
    expect((await call({ serial, cert: bogus, claimCertificateId: 'claim-LOT-A' })).allowProvisioning).toBe(
      false,
    );
    expect((await eventsOf(serial))[0]).toMatchObject({ reason: 'INVALID_PARAMETERS' });
  });
});

describe('allow paths', () => {
  test('first enrollment: overrides, PROVISIONING record and ENROLLMENT_ALLOWED', async () => {
    const serial = await seedDevice('LOT-A', { ring: 'canary' });
    const res = await call({ serial, cert, claimCertificateId: 'claim-LOT-A', firmware: '1.4.0' });
    expect(res).toEqual({
      allowProvisioning: true,
      parameterOverrides: {
        ThingName: `fleet-${serial}`,
        Ring: 'canary',
        Lot: 'LOT-A',
        HardwareRevision: 'A',
      },
    });
    const device = await registry.getDevice(serial);
    expect(device).toMatchObject({
      status: 'PROVISIONING',
      revision: 1,
      thingName: `fleet-${serial}`,
      ring: 'canary',
      certificateId: cert.certificateId,
      publicKeyFingerprint: cert.fingerprint,
      currentFirmware: '1.4.0',
    });
    expect(device?.certificateHistory).toEqual([
      {
        certificateId: cert.certificateId,
        publicKeyFingerprint: cert.fingerprint,
        issuedAt: expect.any(String),
      },
    ]);
    const events = await eventsOf(serial);
    expect(events).toEqual([
      expect.objectContaining({ type: 'ENROLLMENT_ALLOWED', reason: 'ALLOWED', lot: 'LOT-A' }),
    ]);
    expect(events[0].detail).toMatchObject({ ring: 'canary', template: 'FleetTemplate' });
  });

  test('attested first enrollment in a lot that requires attestation', async () => {
    const serial = await seedDevice('LOT-ATT', { publicKey: factoryPublicKey });
    const proof = signDeviceProof(cert.certificateId, factoryPrivateKey);
    const res = await call({ serial, cert, claimCertificateId: 'claim-LOT-ATT', proof });
    expect(res.allowProvisioning).toBe(true);
  });
});

describe('races, clones and retries', () => {
  test('50 concurrent attempts for one serial: exactly one is allowed', async () => {
    const serial = await seedDevice('LOT-A');
    const certs = await Promise.all(Array.from({ length: 50 }, () => freshCert()));
    const results = await Promise.all(
      certs.map((c) => call({ serial, cert: c, claimCertificateId: 'claim-LOT-A' })),
    );
    const events = await eventsOf(serial);
    const reasons = events.map((e) => e.reason);
    expect({
      allowed: results.filter((r) => r.allowProvisioning).length,
      reasons: reasons.filter((r) => r !== 'CONCURRENT_ATTEMPT' && r !== 'DUPLICATE_IN_PROGRESS'),
    }).toEqual({ allowed: 1, reasons: ['ALLOWED'] });
    expect(events).toHaveLength(50);
    expect(reasons.filter((r) => r === 'ALLOWED')).toHaveLength(1);
    expect(
      reasons.every((r) => ['ALLOWED', 'CONCURRENT_ATTEMPT', 'DUPLICATE_IN_PROGRESS'].includes(r as string)),
    ).toBe(true);
    const device = await registry.getDevice(serial);
    const winner = events.find((e) => e.reason === 'ALLOWED');
    expect(device?.certificateId).toBe(winner?.detail?.certificateId);
    expect(device?.certificateHistory).toHaveLength(1);
    expect(device?.revision).toBe(1);
  });

  async function provisioned(lot = 'LOT-A', over: Partial<DeviceRecord> = {}) {
    const serial = await seedDevice(lot, over);
    const key = await ca.newDeviceKey();
    const first = await issue(key);
    const claim = `claim-${lot}`;
    const proof = over.publicKey ? signDeviceProof(first.certificateId, factoryPrivateKey) : undefined;
    expect((await call({ serial, cert: first, claimCertificateId: claim, proof })).allowProvisioning).toBe(
      true,
    );
    return { serial, key, first, claim };
  }

  test('a clone (different key) while PROVISIONING is denied when the first certificate is usable', async () => {
    const { serial, first, claim } = await provisioned();
    iot.certificates.set(first.certificateId, 'ACTIVE');
    const clone = await freshCert();
    const res = await call({ serial, cert: clone, claimCertificateId: claim });
    expect(res.allowProvisioning).toBe(false);
    expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual([
      'ALLOWED',
      'DUPLICATE_IN_PROGRESS',
    ]);
    expect((await registry.getDevice(serial))?.certificateId).toBe(first.certificateId);
    expect(iot.calls).toContain(`GET /certificates/${first.certificateId}`);
  });

  test('a genuine retry with the same key (a second certificate) is allowed without an IoT call', async () => {
    const { serial, key, first, claim } = await provisioned();
    const callsBefore = iot.calls.length;
    const second = await issue(key);
    expect(second.fingerprint).toBe(first.fingerprint);
    const res = await call({ serial, cert: second, claimCertificateId: claim });
    expect(res.allowProvisioning).toBe(true);
    expect(iot.calls.length).toBe(callsBefore);
    const device = await registry.getDevice(serial);
    expect(device).toMatchObject({
      status: 'PROVISIONING',
      revision: 2,
      certificateId: second.certificateId,
    });
    expect(device?.certificateHistory?.map((c) => c.certificateId)).toEqual([
      first.certificateId,
      second.certificateId,
    ]);
    expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual([
      'ALLOWED',
      'ALLOWED_RETRY_SAME_KEY',
    ]);
  });

  test('an attested retry with a new key is allowed', async () => {
    const { serial, claim } = await provisioned('LOT-ATT', { publicKey: factoryPublicKey });
    const fresh = await freshCert();
    const proof = signDeviceProof(fresh.certificateId, factoryPrivateKey);
    const res = await call({ serial, cert: fresh, claimCertificateId: claim, proof });
    expect(res.allowProvisioning).toBe(true);
    expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual([
      'ALLOWED',
      'ALLOWED_RETRY_ATTESTED',
    ]);
  });

  test.each(['NOT_FOUND', 'REVOKED'] as const)(
    'a retry is allowed when the earlier certificate is provably unusable (%s)',
    async (fact) => {
      const { serial, first, claim } = await provisioned();
      if (fact === 'REVOKED') iot.certificates.set(first.certificateId, 'REVOKED');
      else iot.certificates.delete(first.certificateId);
      const fresh = await freshCert();
      const res = await call({ serial, cert: fresh, claimCertificateId: claim });
      expect(res.allowProvisioning).toBe(true);
      expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual([
        'ALLOWED',
        'ALLOWED_RETRY_PRIOR_CERT_UNUSABLE',
      ]);
      expect((await registry.getDevice(serial))?.certificateId).toBe(fresh.certificateId);
    },
  );

  test('the IoT lookup failing denies INTERNAL_ERROR (fail closed) and is audited', async () => {
    const { serial, first, claim } = await provisioned();
    iot.failWith500 = true;
    try {
      const fresh = await freshCert();
      const res = await call({ serial, cert: fresh, claimCertificateId: claim });
      expect(res).toEqual({ allowProvisioning: false, parameterOverrides: {} });
    } finally {
      iot.failWith500 = false;
    }
    expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual(['ALLOWED', 'INTERNAL_ERROR']);
    expect((await registry.getDevice(serial))?.certificateId).toBe(first.certificateId);
  });

  test('after activation, every further attempt is DEVICE_ALREADY_ACTIVE, even with the same key', async () => {
    const { serial, key, first, claim } = await provisioned();
    const device = await registry.getDevice(serial);
    await registry.activate(serial, {
      expectedStatus: 'PROVISIONING',
      expectedRevision: device!.revision,
      certificateId: first.certificateId,
    });
    const res = await call({ serial, cert: await issue(key), claimCertificateId: claim });
    expect(res.allowProvisioning).toBe(false);
    expect((await eventsOf(serial)).map((e) => e.reason).sort()).toEqual([
      'ALLOWED',
      'DEVICE_ALREADY_ACTIVE',
    ]);
  });

  test('an operator reset lets a stuck unit enroll afresh', async () => {
    const { serial, first, claim } = await provisioned();
    iot.certificates.set(first.certificateId, 'PENDING_ACTIVATION');
    const fresh = await freshCert();
    expect((await call({ serial, cert: fresh, claimCertificateId: claim })).allowProvisioning).toBe(false);
    await new RegistryAdmin(db.doc, tables).resetDevice(serial, {
      reason: 'stuck after lost response',
      actor: 'ops@example.com',
    });
    expect((await call({ serial, cert: fresh, claimCertificateId: claim })).allowProvisioning).toBe(true);
    const reasons = (await eventsOf(serial)).map((e) => e.type + ':' + (e.reason ?? ''));
    expect(reasons).toEqual([
      'ENROLLMENT_ALLOWED:ALLOWED',
      'ENROLLMENT_DENIED:DUPLICATE_IN_PROGRESS',
      'STATUS_RESET:stuck after lost response',
      'ENROLLMENT_ALLOWED:ALLOWED',
    ]);
  });
});
