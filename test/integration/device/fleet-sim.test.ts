import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyDeviceProof } from '../../../core/attestation';
import {
  denialReason,
  formatSummary,
  generateIdentities,
  parseEndpoint,
  percentile,
  resolvePresentation,
  runFleet,
  simulateAgainstEndpoint,
  summarize,
  toManifestEntry,
  type DeviceSpec,
  type EnrollmentResult,
  type ProgressEvent,
} from '../../../device';
import { fingerprint, ScriptedIot, type RegisterDecision } from './support/responder';
import type { IssuedPair } from './support/pki';

let iot: ScriptedIot;
const claims: Record<string, IssuedPair> = {};

beforeAll(async () => {
  iot = await ScriptedIot.start();
  claims['LOT-A'] = await iot.claim('LOT-A');
  claims['LOT-B'] = await iot.claim('LOT-B');
});
afterAll(async () => {
  await iot.stop();
});

const deny = (code: string, text: string): RegisterDecision => ({
  reject: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: `[${code}] ${text}` },
});

/** A miniature hook in the responder: allowlist, claim lot, attestation, one active cert per serial. */
function installHook(manifest: Map<string, { lot: string; publicKey?: string }>): Set<string> {
  const active = new Set<string>();
  const lotByClaim = new Map(Object.entries(claims).map(([lot, c]) => [fingerprint(c.certPem), lot]));
  iot.onRegister = (call) => {
    const serial = call.parameters.SerialNumber;
    const entry = manifest.get(serial);
    if (!entry) return deny('NOT_ON_ALLOWLIST', 'unknown serial');
    const conn = [...iot.connections].reverse().find((c) => c.clientId === call.clientId);
    if (lotByClaim.get(conn?.certFingerprint ?? '') !== entry.lot)
      return deny('CLAIM_LOT_MISMATCH', 'claim of another lot');
    if (
      entry.publicKey &&
      !verifyDeviceProof(call.certificateId!, call.parameters.DeviceProof ?? '', entry.publicKey)
    ) {
      return deny('ATTESTATION_INVALID', 'bad proof');
    }
    if (active.has(serial)) return deny('DEVICE_ALREADY_ACTIVE', 'already active');
    active.add(serial);
    return { accept: { thingName: `fleet-${serial}` } };
  };
  return active;
}

test('runFleet enrolls the good units and denies each bad case with its own reason', async () => {
  const good = generateIdentities({
    count: 6,
    lots: ['LOT-A', 'LOT-B'],
    hwRevs: ['A', 'B'],
    serialPrefix: 'GOOD',
  });
  const [unknown] = generateIdentities({ count: 1, serialPrefix: 'UNKNOWN' });
  const manifest = new Map(
    good.map((g) => [g.serial, { lot: g.lot, publicKey: toManifestEntry(g).publicKey }]),
  );
  const [badAtt, wrongLot, ...rest] = generateIdentities({
    count: 3,
    lots: ['LOT-B'],
    serialPrefix: 'EXTRA',
  });
  for (const id of [badAtt, wrongLot, ...rest])
    manifest.set(id.serial, { lot: id.lot, publicKey: id.factoryKey!.publicKeyPem });
  installHook(manifest);

  const devices: DeviceSpec[] = [
    // The clone is listed first but runs after the original.
    { identity: { ...good[0], serial: 'CLONE-1' }, faults: { cloneOf: good[0].serial } },
    ...good.map((identity) => ({ identity })),
    { identity: unknown },
    { identity: badAtt, faults: { badAttestation: true } },
    { identity: wrongLot, faults: { wrongLotClaim: 'LOT-A' } },
    { identity: rest[0], faults: { useCreateKeys: true } },
  ];
  const progress: ProgressEvent[] = [];
  const fleet = await runFleet({
    devices,
    endpoint: iot.endpoint,
    claims,
    templateName: iot.templateName,
    concurrency: 3,
    backoff: { baseMs: 1, capMs: 5, maxAttempts: 3 },
    progressBar: false,
    onProgress: (e) => progress.push(e),
  });

  expect(fleet.summary).toMatchObject({
    attempted: 11,
    enrolled: 7,
    gaveUp: 0,
    retries: 0,
    mqttVersions: { '3.1.1': 11 },
    deniedByReason: {
      NOT_ON_ALLOWLIST: 1,
      ATTESTATION_INVALID: 2, // bad attestation and the clone (different factory key)
      CLAIM_LOT_MISMATCH: 1,
    },
  });
  expect(fleet.summary.p99Ms).toBeGreaterThanOrEqual(fleet.summary.p50Ms);
  const clone = fleet.results.find((r) => r.specSerial === 'CLONE-1')!;
  expect(clone).toMatchObject({
    outcome: 'denied',
    serial: good[0].serial,
    faults: { cloneOf: good[0].serial },
  });
  expect(fleet.results[fleet.results.length - 1].specSerial).toBe('CLONE-1');
  expect(progress.map((p) => p.done)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
  expect(progress.every((p) => p.total === 11)).toBe(true);
  // Every enrolled device reconnected with client id == thing name.
  for (const r of fleet.results.filter((x) => x.outcome === 'enrolled')) {
    if (r.outcome === 'enrolled') expect(iot.connections.some((c) => c.clientId === r.thingName)).toBe(true);
  }
  const text = formatSummary(fleet.summary);
  expect(text).toContain('7/11 enrolled, 4 denied, 0 gave up, 0 retries');
  expect(text).toMatch(/ATTESTATION_INVALID\s+2/);
  expect(text.split('\n')[1]).toMatch(/; MQTT 3\.1\.1$/);
});

test('keepConnected leaves the thing sessions open until close()', async () => {
  const ids = generateIdentities({ count: 2, serialPrefix: 'KEEP' });
  iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
  const fleet = await runFleet({
    devices: ids.map((identity) => ({ identity })),
    endpoint: iot.endpoint,
    claims,
    templateName: iot.templateName,
    concurrency: 2,
    keepConnected: true,
  });
  expect(fleet.summary.enrolled).toBe(2);
  expect([...fleet.agents.values()].every((a) => a.session?.connected)).toBe(true);
  await fleet.close();
  expect(fleet.agents.size).toBe(0);
});

test('a missing claim for a lot fails before any device connects, naming the fix', async () => {
  const [id] = generateIdentities({ count: 1, lots: ['LOT-Z'] });
  await expect(
    runFleet({ devices: [{ identity: id }], endpoint: iot.endpoint, claims, templateName: 't' }),
  ).rejects.toThrow(/claims\['LOT-Z'\]/);
});

test('simulateAgainstEndpoint reads PEM files and enrolls through host:port', async () => {
  iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
  const dir = await mkdtemp(join(tmpdir(), 'sim-'));
  await writeFile(join(dir, 'ca.pem'), iot.serverCaPem);
  await writeFile(join(dir, 'claim.pem'), claims['LOT-A'].certPem);
  await writeFile(join(dir, 'claim.key'), claims['LOT-A'].keyPem);
  const result = await simulateAgainstEndpoint({
    endpoint: `127.0.0.1:${iot.port}`,
    ca: join(dir, 'ca.pem'),
    claimCert: join(dir, 'claim.pem'),
    claimKey: join(dir, 'claim.key'),
    template: iot.templateName,
    serials: ['REAL-0001', 'REAL-0002'],
    progressBar: false,
    certDir: join(dir, 'certs'),
  });
  expect(result.summary).toMatchObject({ attempted: 2, enrolled: 2 });
  expect(result.text).toContain('2/2 enrolled');
  await expect(
    simulateAgainstEndpoint({
      endpoint: 'x',
      ca: join(dir, 'missing.pem'),
      claimCert: 'a',
      claimKey: 'b',
      template: 't',
    }),
  ).rejects.toThrow(
    /^CA: cannot read PEM.*; claim certificate: cannot read PEM.*; claim key: cannot read PEM/,
  );
});

test.each([
  ['abc123-ats.iot.eu-west-1.amazonaws.com', { host: 'abc123-ats.iot.eu-west-1.amazonaws.com', port: 8883 }],
  ['abc-ats.iot.us-east-1.amazonaws.com:443', { host: 'abc-ats.iot.us-east-1.amazonaws.com', port: 443 }],
  ['mqtts://127.0.0.1:18883', { host: '127.0.0.1', port: 18883 }],
  ['[::1]:8884', { host: '::1', port: 8884 }],
])('parseEndpoint(%s)', (input, expected) => {
  expect(parseEndpoint(input)).toEqual(expected);
});

test('parseEndpoint rejects a bad port', () => {
  expect(() => parseEndpoint('host:70000')).toThrow(/Invalid port/);
});

test.each([
  [{ errorMessage: '[LOT_ON_HOLD] lot L1 is on hold', errorCode: 'AccessDenied' }, 'LOT_ON_HOLD'],
  [{ errorMessage: 'DEVICE_RETIRED', errorCode: 'AccessDenied' }, 'DEVICE_RETIRED'],
  [{ errorMessage: 'Hook denied provisioning', errorCode: 'AccessDenied' }, 'Hook denied provisioning'],
  [{ errorMessage: '', errorCode: 'InvalidCsr' }, 'InvalidCsr'],
])('denialReason(%j) = %s', (input, reason) => {
  expect(denialReason(input)).toBe(reason);
});

function gaveUp(
  serial: string,
  phase: 'provisioning' | 'thingConnect',
  cause: string,
  retries = 0,
): EnrollmentResult {
  return {
    outcome: 'gaveUp',
    serial,
    phase,
    lastError: `CONNECT_FAILED: ${cause} (full detail)`,
    cause,
    elapsedMs: 1,
    retries,
  };
}

test('give-ups are grouped by cause in the summary and its text, most frequent first, then by name', () => {
  const summary = summarize([
    gaveUp('a', 'provisioning', 'ECONNREFUSED 127.0.0.1:8883'),
    gaveUp('b', 'provisioning', 'TLS: certificate unknown'),
    gaveUp('c', 'provisioning', 'ECONNREFUSED 127.0.0.1:8883'),
    gaveUp('d', 'thingConnect', 'ECONNREFUSED 127.0.0.1:8883'),
  ]);
  expect(summary.gaveUpByCause).toEqual({
    'ECONNREFUSED 127.0.0.1:8883': 2,
    'TLS: certificate unknown': 1,
    'registered, then connecting as the thing failed: ECONNREFUSED 127.0.0.1:8883': 1,
  });
  expect(formatSummary(summary).split('\n').slice(2)).toEqual([
    '  gave up: 2 (ECONNREFUSED 127.0.0.1:8883)',
    '  gave up: 1 (registered, then connecting as the thing failed: ECONNREFUSED 127.0.0.1:8883)',
    '  gave up: 1 (TLS: certificate unknown)',
  ]);
  expect(formatSummary(summarize([]))).not.toMatch(/gave up:/);
});

test('summarize counts outcomes and nearest-rank percentiles', () => {
  const enrolled = (ms: number, retries = 0): EnrollmentResult => ({
    outcome: 'enrolled',
    serial: 's',
    thingName: 't',
    certificateId: 'c',
    enrollMs: ms,
    retries,
    deviceConfiguration: {},
  });
  const results: EnrollmentResult[] = [
    ...Array.from({ length: 100 }, (_, i) => enrolled(i + 1, i === 0 ? 3 : 0)),
    {
      outcome: 'denied',
      serial: 'x',
      api: 'RegisterThing',
      statusCode: 403,
      errorCode: 'AccessDenied',
      errorMessage: '[LOT_ON_HOLD] x',
      elapsedMs: 1,
      retries: 0,
    },
    gaveUp('y', 'provisioning', 'ECONNREFUSED 127.0.0.1:8883', 7),
  ];
  expect(summarize(results, 5)).toEqual({
    attempted: 102,
    enrolled: 100,
    deniedByReason: { LOT_ON_HOLD: 1 },
    gaveUp: 1,
    gaveUpByCause: { 'ECONNREFUSED 127.0.0.1:8883': 1 },
    retries: 10,
    p50Ms: 50,
    p99Ms: 99,
    wallMs: 5,
    mqttVersions: {},
  });
  expect(percentile([], 50)).toBe(0);
  const mixed = summarize([
    { ...enrolled(1, 0), mqttVersion: '3.1.1' },
    { ...enrolled(2, 0), mqttVersion: '5' },
    { ...enrolled(3, 0), mqttVersion: '5' },
  ]);
  expect(mixed.mqttVersions).toEqual({ '3.1.1': 1, '5': 2 });
  expect(formatSummary(mixed).split('\n')[1]).toMatch(/; MQTT 3\.1\.1 ×1, 5 ×2$/);
});

test('generated identities spread lots and revisions; the manifest never carries the private key', () => {
  const ids = generateIdentities({ count: 4, lots: ['L1', 'L2'], hwRevs: ['A', 'B'], serialPrefix: 'X' });
  expect(ids.map((i) => i.serial)).toEqual(['X000001', 'X000002', 'X000003', 'X000004']);
  expect(new Set(ids.map((i) => `${i.lot}/${i.hwRev}`)).size).toBe(4);
  const entry = toManifestEntry(ids[0]);
  expect(entry.publicKey).toContain('BEGIN PUBLIC KEY');
  expect(JSON.stringify(entry)).not.toContain('PRIVATE');
});

test('resolvePresentation: a clone presents the original serial with a different key; wrongLotClaim swaps the claim', () => {
  const [orig, other] = generateIdentities({ count: 2, lots: ['LOT-A', 'LOT-B'] });
  const bySerial = new Map([orig, other].map((i) => [i.serial, i]));
  const clone = resolvePresentation(
    { identity: { ...orig, serial: 'C' }, faults: { cloneOf: orig.serial } },
    bySerial,
    claims,
  );
  expect(clone.identity.serial).toBe(orig.serial);
  expect(clone.identity.factoryKey!.publicKeyPem).not.toBe(orig.factoryKey!.publicKeyPem);
  const swapped = resolvePresentation(
    { identity: other, faults: { wrongLotClaim: 'LOT-A' } },
    bySerial,
    claims,
  );
  expect(swapped.claim).toBe(claims['LOT-A']);
});
