import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeyFingerprintOfCertificate, verifyDeviceProof } from '../../../core/attestation';
import { DeviceAgent, type AgentOptions } from '../../../device/agent';
import { generateFactoryKey, type FactoryIdentity } from '../../../device/identity';
import { closedLoopbackPort } from './support/ports';
import { fingerprint, ScriptedIot } from './support/responder';
import type { IssuedPair } from './support/pki';

let iot: ScriptedIot;
let claimA: IssuedPair;
const sleeps: number[] = [];
const noSleep = async (ms: number) => {
  sleeps.push(ms);
};

beforeAll(async () => {
  iot = await ScriptedIot.start();
  claimA = await iot.claim('LOT-A');
});
afterAll(async () => {
  await iot.stop();
});
beforeEach(() => {
  iot.connections.length = 0;
  iot.registerCalls.length = 0;
  iot.createCalls.length = 0;
  iot.published.length = 0;
  iot.issued.clear();
  iot.onCreate = undefined;
  iot.onConnect = undefined;
  iot.onRegister = (call) => ({
    accept: {
      thingName: `thing-${call.parameters.SerialNumber}`,
      deviceConfiguration: { telemetryTopic: 'x' },
    },
  });
  sleeps.length = 0;
});

function identity(serial: string, withKey = true): FactoryIdentity {
  return {
    serial,
    lot: 'LOT-A',
    hwRev: 'B',
    firmware: '1.2.3',
    factoryKey: withKey ? generateFactoryKey() : undefined,
  };
}

function agent(id: FactoryIdentity, extra: Partial<AgentOptions> = {}): DeviceAgent {
  return new DeviceAgent({
    identity: id,
    endpoint: iot.endpoint,
    claim: claimA,
    templateName: iot.templateName,
    backoff: { baseMs: 100, capMs: 1000, maxAttempts: 4 },
    connectTimeoutMs: 5000,
    responseTimeoutMs: 5000,
    sleep: noSleep,
    random: () => 0.5,
    ...extra,
  });
}

test('CSR enrollment end to end: claim session, attested RegisterThing, then the thing session with its own certificate', async () => {
  const id = identity('SN000001');
  const dev = agent(id, { keepConnected: true });
  const result = await dev.enroll();

  expect(result).toMatchObject({
    outcome: 'enrolled',
    serial: 'SN000001',
    thingName: 'thing-SN000001',
    retries: 0,
    deviceConfiguration: { telemetryTopic: 'x' },
  });
  if (result.outcome !== 'enrolled') throw new Error('not enrolled');
  expect(result.enrollMs).toBeGreaterThanOrEqual(0);
  expect(iot.createCalls).toEqual([{ clientId: 'prov-SN000001', api: 'csr' }]);

  const [call] = iot.registerCalls;
  expect(call.clientId).toBe('prov-SN000001');
  expect(call.certificateId).toBe(result.certificateId);
  expect(call.parameters).toMatchObject({
    SerialNumber: 'SN000001',
    HardwareRevision: 'B',
    FirmwareVersion: '1.2.3',
  });
  expect(
    verifyDeviceProof(result.certificateId, call.parameters.DeviceProof, id.factoryKey!.publicKeyPem),
  ).toBe(true);

  // Claim session first, then a new session whose client id is the thing name and whose
  // certificate is the one issued for the CSR.
  expect(iot.connections.map((c) => c.clientId)).toEqual(['prov-SN000001', 'thing-SN000001']);
  expect(iot.connections[0].certFingerprint).toBe(fingerprint(claimA.certPem));
  const issuedPem = [...iot.issued.values()].find(
    (i) => i.certificateId === result.certificateId,
  )!.certificatePem;
  expect(iot.connections[1].certFingerprint).toBe(fingerprint(issuedPem));
  expect(iot.connections[1].will).toEqual({
    topic: 'dt/fleet/thing-SN000001/health',
    payload: '{"connection":"lost"}',
  });
  expect(dev.identityAfterEnrollment?.credentials.certPem).toBe(issuedPem);
  expect(dev.session?.connected).toBe(true);
  await dev.close();
});

test('the last will is published when the thing session drops', async () => {
  const dev = agent(identity('SN000002'), { keepConnected: true });
  const result = await dev.enroll();
  expect(result.outcome).toBe('enrolled');
  dev.dropConnection();
  await waitFor(() => iot.published.some((p) => p.topic === 'dt/fleet/thing-SN000002/health'));
  expect(iot.published.find((p) => p.topic === 'dt/fleet/thing-SN000002/health')?.payload).toBe(
    '{"connection":"lost"}',
  );
});

test('CreateKeysAndCertificate path uses the returned key for the thing session; no proof without a factory key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'device-certs-'));
  const dev = agent(identity('SN000003', false), { method: 'createKeys', certDir: dir });
  const result = await dev.enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', thingName: 'thing-SN000003' });
  expect(iot.createCalls).toEqual([{ clientId: 'prov-SN000003', api: 'keys' }]);
  expect(iot.registerCalls[0].parameters.DeviceProof).toBeUndefined();
  const issued = [...iot.issued.values()][0];
  expect(iot.connections[1]).toMatchObject({
    clientId: 'thing-SN000003',
    certFingerprint: fingerprint(issued.certificatePem),
  });

  const certPath = join(dir, 'thing-SN000003.cert.pem');
  expect(await readFile(certPath, 'utf8')).toBe(issued.certificatePem);
  expect((await stat(certPath)).mode & 0o777).toBe(0o600);
  expect((await stat(join(dir, 'thing-SN000003.private.key'))).mode & 0o777).toBe(0o600);
});

test('bad attestation signs the proof with a wrong key', async () => {
  const id = identity('SN000004');
  const result = await agent(id, { badAttestation: true }).enroll();
  if (result.outcome !== 'enrolled') throw new Error(result.outcome);
  const proof = iot.registerCalls[0].parameters.DeviceProof;
  expect(proof).toBeDefined();
  expect(verifyDeviceProof(result.certificateId, proof, id.factoryKey!.publicKeyPem)).toBe(false);
});

test('throttled RegisterThing (429) retries on a new session, reusing the ownership token, then succeeds', async () => {
  iot.onRegister = (call, index) =>
    index < 2
      ? { reject: { statusCode: 429, errorCode: 'ThrottlingException', errorMessage: 'Rate exceeded' } }
      : { accept: { thingName: `thing-${call.parameters.SerialNumber}` } };
  const result = await agent(identity('SN000005')).enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', retries: 2 });
  expect(iot.createCalls).toHaveLength(1);
  expect(new Set(iot.registerCalls.map((c) => c.certificateOwnershipToken)).size).toBe(1);
  expect(iot.connections.map((c) => c.clientId)).toEqual([
    'prov-SN000005',
    'prov-SN000005',
    'prov-SN000005',
    'thing-SN000005',
  ]);
  // Full jitter with random 0.5: half of min(cap, base * 2^retry).
  expect(sleeps).toEqual([50, 100]);
});

test('5xx and throttled certificate creation are retried too', async () => {
  iot.onCreate = (_api, index) =>
    index === 0 ? { statusCode: 503, errorCode: 'ServiceUnavailable', errorMessage: 'try later' } : undefined;
  const result = await agent(identity('SN000006')).enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', retries: 1 });
  expect(iot.createCalls).toHaveLength(2);
});

test('a final rejection (403, hook denied) stops at once and reports the reason', async () => {
  iot.onRegister = () => ({
    reject: {
      statusCode: 403,
      errorCode: 'AccessDenied',
      errorMessage: '[NOT_ON_ALLOWLIST] serial is not allowlisted',
    },
  });
  const result = await agent(identity('SN000007')).enroll();
  expect(result).toMatchObject({
    outcome: 'denied',
    api: 'RegisterThing',
    statusCode: 403,
    errorCode: 'AccessDenied',
    errorMessage: '[NOT_ON_ALLOWLIST] serial is not allowlisted',
    retries: 0,
  });
  expect(iot.registerCalls).toHaveLength(1);
  expect(sleeps).toEqual([]);
  expect(iot.connections.map((c) => c.clientId)).toEqual(['prov-SN000007']);
});

test('gives up after maxAttempts of server errors', async () => {
  iot.onRegister = () => ({
    reject: { statusCode: 500, errorCode: 'InternalFailure', errorMessage: 'boom' },
  });
  const result = await agent(identity('SN000008')).enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'provisioning',
    retries: 3,
    lastError: '500 InternalFailure: boom',
    cause: 'RegisterThing 500 InternalFailure',
  });
  expect(iot.registerCalls).toHaveLength(4);
  expect(sleeps).toEqual([50, 100, 200]);
});

test('a missing answer is a retryable timeout', async () => {
  iot.onRegister = (call, index) =>
    index === 0 ? 'ignore' : { accept: { thingName: `thing-${call.parameters.SerialNumber}` } };
  const result = await agent(identity('SN000009'), { responseTimeoutMs: 300 }).enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', retries: 1 });
});

test('a stale ownership token is rejected once, then the device starts over with a new certificate', async () => {
  let clock = 0;
  iot.onRegister = (call, index) =>
    index === 0
      ? { reject: { statusCode: 429, errorCode: 'ThrottlingException', errorMessage: 'slow down' } }
      : { accept: { thingName: `thing-${call.parameters.SerialNumber}` } };
  const result = await agent(identity('SN000010'), {
    now: () => clock,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += 2 * 3600_000; // the token is older than 1 h at the next attempt
    },
  }).enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', retries: 1 });
  expect(iot.createCalls).toHaveLength(2);
  expect(new Set(iot.registerCalls.map((c) => c.certificateOwnershipToken)).size).toBe(2);
  // Both certificates carry the same device key: a retry after a lost answer is the same device.
  const keys = [...iot.issued.values()]
    .slice(-2)
    .map((c) => publicKeyFingerprintOfCertificate(c.certificatePem));
  expect(keys[0]).toBe(keys[1]);
});

test('a TLS-refused connection (claim from an unknown CA) is retried and ends in gaveUp', async () => {
  const { TestCa } = await import('./support/pki');
  const rogue = await (await TestCa.create('Rogue CA')).issue('claim-rogue');
  const result = await agent(identity('SN000011'), { claim: rogue, connectTimeoutMs: 2000 }).enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'provisioning',
    retries: 3,
    // mqtt.js reports only `close`; the handshake had completed, so the server refused the client.
    cause: `closed by 127.0.0.1:${iot.port} after the TLS handshake, before CONNACK`,
  });
  expect(iot.registerCalls).toHaveLength(0);
});

test('a device pointed at a closed loopback port gives up with ECONNREFUSED and the address as cause', async () => {
  const port = await closedLoopbackPort();
  const result = await agent(identity('SN000013'), {
    endpoint: { ...iot.endpoint, port },
    backoff: { baseMs: 100, capMs: 1000, maxAttempts: 3 },
  }).enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'provisioning',
    retries: 2,
    cause: `ECONNREFUSED 127.0.0.1:${port}`,
  });
  if (result.outcome !== 'gaveUp') throw new Error(result.outcome);
  expect(result.lastError).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  expect(sleeps).toEqual([50, 100]);
});

test('an unanswered certificate request gives up with the awaited topic as cause', async () => {
  iot.onCreate = () => 'ignore';
  const result = await agent(identity('SN000014'), {
    responseTimeoutMs: 200,
    backoff: { baseMs: 100, capMs: 1000, maxAttempts: 2 },
  }).enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'provisioning',
    retries: 1,
    cause: 'timeout waiting for $aws/certificates/create-from-csr/json/accepted',
  });
  expect(iot.createCalls).toHaveLength(2);
});

test('registered but refused as the thing: gives up in thingConnect with the CONNACK refusal as cause', async () => {
  iot.onConnect = (clientId) => (clientId.startsWith('thing-') ? 'notAuthorized' : 'accept');
  const dev = agent(identity('SN000015'), { backoff: { baseMs: 100, capMs: 1000, maxAttempts: 2 } });
  const result = await dev.enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'thingConnect',
    retries: 1,
    thingName: 'thing-SN000015',
    cause: 'CONNACK refused: 0x05 Not authorized',
  });
  expect(iot.connections.map((c) => c.clientId)).toEqual([
    'prov-SN000015',
    'thing-SN000015',
    'thing-SN000015',
  ]);
  expect(dev.session).toBeUndefined();
});

test('startup jitter delays the first connect by random * startupJitterMs', async () => {
  const result = await agent(identity('SN000012'), { startupJitterMs: 1000, random: () => 0.25 }).enroll();
  expect(result).toMatchObject({ outcome: 'enrolled', retries: 0 });
  expect(sleeps).toEqual([250]);
});

async function waitFor(cond: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error('condition not met');
}

test('a claim whose certificate and key are swapped gives up with the TLS cause: a local problem, never a denial', async () => {
  const result = await agent(identity('SN000040'), {
    claim: { certPem: claimA.keyPem, keyPem: claimA.certPem },
  }).enroll();
  expect(result).toMatchObject({
    outcome: 'gaveUp',
    phase: 'provisioning',
    cause: expect.stringMatching(/^client TLS setup failed: .+ \(check the certificate, key and CA PEM\)$/),
    retries: 0,
  });
  // Nothing reached the server, and nothing was retried: the material will not change.
  expect(iot.connections).toEqual([]);
  expect(sleeps).toEqual([]);
});

test.each([['../escape'], ['a/b'], ['..'], ['x'.repeat(129)], ['thing name']])(
  'a RegisterThing answer with thingName %j: gives up naming it, and stores nothing',
  async (thingName) => {
    const root = await mkdtemp(join(tmpdir(), 'agent-thing-name-'));
    const certDir = join(root, 'certs');
    iot.onRegister = () => ({ accept: { thingName } });
    const result = await agent(identity('SN000041'), { certDir }).enroll();
    expect(result).toMatchObject({
      outcome: 'gaveUp',
      phase: 'provisioning',
      cause: expect.stringContaining(
        `RegisterThing answered with an unusable accepted payload: thingName ${JSON.stringify(thingName)}`,
      ),
    });
    if (result.outcome === 'gaveUp') expect(result.cause).toMatch(/AWS IoT thing name/);
    // No session as the "thing", no file inside or outside the cert dir.
    expect(iot.connections.map((c) => c.clientId)).toEqual(['prov-SN000041']);
    expect(await readdir(root)).toEqual([]);
  },
);
