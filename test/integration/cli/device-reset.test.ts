/**
 * `fleet device show|reset` against dynalite and the lab's AWS IoT emulation (control plane and
 * mTLS broker) on loopback, in-process and through the real entry point: a reset makes the unit's
 * certificate unusable in AWS IoT (revoked, detached from the thing) before the registry forgets it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  CreatePolicyCommand,
  DescribeCertificateCommand,
  IoTClient,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DeviceEvent } from '../../../core/model';
import { RegistryAdmin } from '../../../cli/registry-admin';
import { deviceReset, deviceShow } from '../../../cli/commands/device';
import { manifestImport } from '../../../cli/commands/manifest-import';
import { CliError, UsageError } from '../../../cli/errors';
import type { IotCore } from '../../../lab/iot';
import { LocalDynamo, startDynalite } from '../../helpers/dynalite';
import { closedLoopbackPort } from '../device/support/ports';
import { Fixture, registryFixture } from './support';
import { closed, connect, devicePolicy, identity, startCore } from '../lab-iot/helpers';

const POLICY = 'fleet-device';

let local: LocalDynamo;
let core: IotCore;
let iot: IoTClient;
let suffix = 0;

beforeAll(async () => {
  local = await startDynalite();
  ({ core, iot } = await startCore());
  await iot.send(
    new CreatePolicyCommand({ policyName: POLICY, policyDocument: JSON.stringify(devicePolicy()) }),
  );
});
afterAll(async () => {
  iot.destroy();
  await core.stop();
  await local.stop();
});

function fixture(iotClient: IoTClient = iot): Promise<Fixture> {
  suffix += 1;
  return registryFixture(local, iotClient, `-reset${suffix}`);
}

/** A unit on the allowlist whose enrollment was allowed with `certificateId` (status PROVISIONING). */
async function stuck(f: Fixture, serial: string, certificateId: string): Promise<void> {
  await manifestImport(
    { file: 'm.csv', content: `serial,lot,hwRev,factoryFirmware\n${serial},L1,A,1.0.0\n` },
    f.ctx,
  );
  await f.registry.beginProvisioning(serial, {
    expectedStatus: 'MANUFACTURED',
    expectedRevision: 0,
    thingName: `fleet-${serial}`,
    ring: 'broad',
    certificateId,
    publicKeyFingerprint: 'f'.repeat(64),
    firmware: '1.0.0',
    appendHistory: true,
  });
}

async function trail(f: Fixture, serial: string): Promise<DeviceEvent[]> {
  return new RegistryAdmin(local.doc, f.tables).recentEvents(serial);
}

const certificateStatus = async (certificateId: string) =>
  (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status;

const thingPrincipals = async (thingName: string) =>
  (await iot.send(new ListThingPrincipalsCommand({ thingName }))).principals ?? [];

test('show, then reset: the certificate RegisterThing activated is revoked and detached before the registry forgets it', async () => {
  const f = await fixture();
  // What RegisterThing leaves behind: an ACTIVE certificate attached to the thing, with the device policy.
  const old = await identity(iot, POLICY, 'fleet-SN-0001');
  await stuck(f, 'SN-0001', old.id);
  await f.registry.appendEvent({
    serial: 'SN-0001',
    at: '2026-07-10T11:00:00.000Z',
    type: 'ENROLLMENT_ALLOWED',
    reason: 'ALLOWED',
    lot: 'L1',
  });
  // Whoever holds the certificate can connect as the thing.
  const holder = await connect(core, old, 'fleet-SN-0001');
  const dropped = closed(holder);

  const shown = await deviceShow({ serial: 'SN-0001' }, f.ctx);
  expect(shown.device.status).toBe('PROVISIONING');
  expect(shown.events.map((e) => e.type)).toEqual(['ENROLLMENT_ALLOWED']);
  expect(f.out.lines.join('\n')).toMatch(/this unit is PROVISIONING/);

  const reset = await deviceReset({ serial: 'SN-0001', reason: 'lost answer, OPS-42' }, f.ctx);
  expect(reset.device).toMatchObject({ status: 'MANUFACTURED', revision: 2 });
  expect(reset.device.certificateId).toBeUndefined();
  expect(reset.previousCertificate).toEqual({
    certificateId: old.id,
    thingName: 'fleet-SN-0001',
    outcome: 'revoked',
  });

  // In AWS IoT: revoked, detached, the open session dropped, and no new session accepted.
  expect(await certificateStatus(old.id)).toBe('REVOKED');
  expect(await thingPrincipals('fleet-SN-0001')).toEqual([]);
  await dropped;
  await expect(connect(core, old, 'fleet-SN-0001')).rejects.toThrow(/Not authorized/i);

  expect((await trail(f, 'SN-0001'))[0]).toMatchObject({
    type: 'STATUS_RESET',
    reason: 'lost answer, OPS-42',
    detail: {
      actor: 'tester',
      from: 'PROVISIONING',
      to: 'MANUFACTURED',
      previousCertificateId: old.id,
      previousCertificate: 'revoked',
    },
  });
  expect(f.out.lines).toContain(
    `previous certificate ${old.id}: revoked in AWS IoT and detached from thing fleet-SN-0001; it can no longer connect`,
  );

  await expect(deviceReset({ serial: 'SN-0001', reason: 'again' }, f.ctx)).rejects.toThrow(
    /already MANUFACTURED/,
  );
  await expect(deviceReset({ serial: 'SN-0001', reason: '' }, f.ctx)).rejects.toThrow(UsageError);
  await expect(deviceShow({ serial: 'SN-NOPE' }, f.ctx)).rejects.toThrow(/not in the registry/);
});

test('a certificate revoked already is detached and recorded as already-revoked', async () => {
  const f = await fixture();
  const old = await identity(iot, POLICY, 'fleet-SN-0002');
  await iot.send(new UpdateCertificateCommand({ certificateId: old.id, newStatus: 'REVOKED' }));
  await stuck(f, 'SN-0002', old.id);

  const reset = await deviceReset({ serial: 'SN-0002', reason: 'revoked per runbook 2a first' }, f.ctx);
  expect(reset.previousCertificate?.outcome).toBe('already-revoked');
  expect(await thingPrincipals('fleet-SN-0002')).toEqual([]);
  expect((await trail(f, 'SN-0002'))[0].detail).toMatchObject({ previousCertificate: 'already-revoked' });
  expect(f.out.lines.join('\n')).toMatch(/was already revoked in AWS IoT; detached from thing fleet-SN-0002/);
});

test('a certificate AWS IoT does not know (and a thing that was never created) is recorded as not-found', async () => {
  const f = await fixture();
  await stuck(f, 'SN-0003', 'c'.repeat(64));

  const reset = await deviceReset({ serial: 'SN-0003', reason: 'lost answer' }, f.ctx);
  expect(reset.device.status).toBe('MANUFACTURED');
  expect(reset.previousCertificate?.outcome).toBe('not-found');
  expect((await trail(f, 'SN-0003'))[0].detail).toMatchObject({
    previousCertificateId: 'c'.repeat(64),
    previousCertificate: 'not-found',
  });
  expect(f.out.lines.join('\n')).toMatch(/not in AWS IoT \(deleted\), so nobody can connect with it/);
});

test('when AWS IoT cannot be reached, nothing is reset and the error names the fix', async () => {
  const unreachable = new IoTClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${await closedLoopbackPort()}`,
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  const f = await fixture(unreachable);
  const old = await identity(iot, POLICY, 'fleet-SN-0004');
  await stuck(f, 'SN-0004', old.id);
  try {
    const attempt = deviceReset({ serial: 'SN-0004', reason: 'lost answer' }, f.ctx);
    await expect(attempt).rejects.toThrow(CliError);
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `^device SN-0004 was not reset: its certificate ${old.id} could not be revoked in AWS IoT .*the registry is unchanged: check the AWS IoT endpoint`,
      ),
    );
  } finally {
    unreachable.destroy();
  }
  expect(await f.registry.getDevice('SN-0004')).toMatchObject({
    status: 'PROVISIONING',
    certificateId: old.id,
  });
  expect((await trail(f, 'SN-0004')).map((e) => e.type)).not.toContain('STATUS_RESET');
  expect(await certificateStatus(old.id)).toBe('ACTIVE');
});

test('a refused reset makes no AWS IoT call', async () => {
  const f = await fixture();
  await manifestImport(
    { file: 'm.csv', content: 'serial,lot,hwRev,factoryFirmware\nSN-0005,L1,A,1.0.0\n' },
    f.ctx,
  );
  const send = jest.spyOn(iot, 'send');
  try {
    await expect(deviceReset({ serial: 'SN-0005', reason: 'x' }, f.ctx)).rejects.toThrow(
      /already MANUFACTURED; nothing to reset/,
    );
    await expect(deviceReset({ serial: 'SN-NOPE', reason: 'x' }, f.ctx)).rejects.toThrow(
      /not in the registry/,
    );
    expect(send).not.toHaveBeenCalled();
  } finally {
    send.mockRestore();
  }
});

test('the real entry point resets a stuck unit (DynamoDB and IoT calls) and ends on its own', async () => {
  const f = await fixture();
  const old = await identity(iot, POLICY, 'fleet-SN-0006');
  await stuck(f, 'SN-0006', old.id);
  const root = join(__dirname, '..', '..', '..');
  const child = spawn(
    join(root, 'node_modules', '.bin', 'tsx'),
    [
      join(root, 'bin', 'fleet.ts'),
      'device',
      'reset',
      'SN-0006',
      '--reason',
      'lost answer',
      '--actor',
      'e2e',
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        AWS_ENDPOINT_URL_DYNAMODB: local.endpoint,
        AWS_ENDPOINT_URL_IOT: core.controlPlaneUrl,
        FLEET_DEVICES_TABLE: f.tables.devices,
        FLEET_LOTS_TABLE: f.tables.lots,
        FLEET_EVENTS_TABLE: f.tables.events,
        // Were anything still open a second after the command, the entry point would name it here.
        FLEET_DEBUG: '1',
      },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += String(c)));
  child.stderr.on('data', (c) => (stderr += String(c)));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).toContain(
    `previous certificate ${old.id}: revoked in AWS IoT and detached from thing fleet-SN-0006`,
  );
  expect(await certificateStatus(old.id)).toBe('REVOKED');
  expect((await trail(f, 'SN-0006'))[0].detail).toMatchObject({
    actor: 'e2e',
    previousCertificate: 'revoked',
  });
}, 120_000);

test('device show lists connectivity and health state in the table, not only with --json', async () => {
  const f = await fixture();
  await manifestImport(
    { file: 'm.csv', content: 'serial,lot,hwRev,factoryFirmware\nSN-0009,L1,A,1.0.0\n' },
    f.ctx,
  );
  await f.ctx.clients.doc.send(
    new UpdateCommand({
      TableName: f.tables.devices,
      Key: { serial: 'SN-0009' },
      UpdateExpression: 'SET #c = :c, #r = :r, #l = :l, #b = :b, #u = :u',
      ExpressionAttributeNames: {
        '#c': 'connected',
        '#r': 'disconnectReason',
        '#l': 'lastSeen',
        '#b': 'healthBootId',
        '#u': 'healthUptimeS',
      },
      ExpressionAttributeValues: {
        ':c': false,
        ':r': 'CONNECTION_LOST',
        ':l': '2026-07-01T08:15:00.000Z',
        ':b': 'boot-7',
        ':u': 3600,
      },
    }),
  );
  await deviceShow({ serial: 'SN-0009' }, f.ctx);
  const text = f.out.lines.join('\n');
  expect(text).toMatch(/^connected\s+false$/m);
  expect(text).toMatch(/^disconnectReason\s+CONNECTION_LOST$/m);
  expect(text).toMatch(/^lastSeen\s+2026-07-01T08:15:00\.000Z$/m);
  expect(text).toMatch(/^bootId\s+boot-7$/m);
  expect(text).toMatch(/^uptimeS\s+3600$/m);
});
