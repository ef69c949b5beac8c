/**
 * Hook hardening against the BUNDLED handler on dynalite: device parameters are exactly the
 * template's, the template must be this stack's (account, partition, region), trail entries of
 * serials without a device record expire, and the new environment variables fail at init.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ENV } from '../../../core/env';
import { DeviceEvent } from '../../../core/model';
import { RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import {
  createTestCa,
  deviceRecord,
  FakeIot,
  HOOK_ENTRY,
  hookEnv,
  hookEvent,
  IssuedCertificate,
  lotRecord,
  putDevice,
  putLot,
  startFakeIot,
  TEMPLATE,
  TEMPLATE_ARN_PREFIX,
  UNLISTED_RETENTION_DAYS,
  type Hook,
  type HookResult,
} from './fixtures';

let db: LocalDynamo;
let iot: FakeIot;
let tables: RegistryTableNames;
let hook: Hook;
let cert: IssuedCertificate;
let seq = 0;

const DENIED: HookResult = { allowProvisioning: false, parameterOverrides: {} };

async function listedSerial(): Promise<string> {
  const serial = `SN-HARD-${String(++seq).padStart(4, '0')}`;
  await putDevice(db.doc, tables, deviceRecord(serial, 'LOT-A'));
  return serial;
}

const trail = (serial: string): Promise<DeviceEvent[]> => readTrail(db.doc, tables.events, serial);

beforeAll(async () => {
  [db, iot] = await Promise.all([startDynalite(), startFakeIot()]);
  tables = await createRegistryTables(db.client, 'Hardening');
  await putLot(db.doc, tables, lotRecord('LOT-A'));
  cert = await (await (await createTestCa()).newDeviceKey()).issue();
  hook = loadBundledHandler<Hook>(HOOK_ENTRY, hookEnv(tables, db.endpoint, iot.endpoint));
});

afterAll(async () => {
  await Promise.all([db.stop(), iot.stop()]);
  cleanBundles();
});

describe('device parameters are exactly the template parameters', () => {
  /**
   * The event as Lambda hands it over: parsed from JSON, so `"__proto__"` is an own property
   * (an object literal would set the prototype instead).
   */
  function eventWithExtraParameter(serial: string, name: string): unknown {
    const event = hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' });
    const text = JSON.stringify(event).replace(
      '"parameters":{',
      `"parameters":{${JSON.stringify(name)}:"x",`,
    );
    const parsed = JSON.parse(text) as { parameters: object };
    expect(Object.keys(parsed.parameters)).toContain(name);
    return parsed;
  }

  test.each(['__proto__', 'constructor', 'toString', 'Location', 'AWS::IoT::Certificate::Id'])(
    'a %s parameter is refused INVALID_PARAMETERS and audited',
    async (name) => {
      const serial = await listedSerial();
      await expect(hook(eventWithExtraParameter(serial, name))).resolves.toEqual(DENIED);
      const entries = await trail(serial);
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({ type: 'ENROLLMENT_DENIED', reason: 'INVALID_PARAMETERS' });
      const device = await db.doc.send(new GetCommand({ TableName: tables.devices, Key: { serial } }));
      expect(device.Item?.status).toBe('MANUFACTURED');
    },
  );

  test('the same unit with only the template parameters is allowed (the refusals above are the key)', async () => {
    const serial = await listedSerial();
    const res = await hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }));
    expect(res.allowProvisioning).toBe(true);
  });

  test('a parameter value that is not a bounded string is refused', async () => {
    const serial = await listedSerial();
    const long = hookEvent({
      serial,
      cert,
      claimCertificateId: 'claim-LOT-A',
      firmware: `1.0.0-${'a'.repeat(80)}`,
    });
    await expect(hook(long)).resolves.toEqual(DENIED);
    expect((await trail(serial))[0]).toMatchObject({ reason: 'INVALID_PARAMETERS' });
  });
});

describe('the template must be this stack template (account, partition, region)', () => {
  test.each([
    ['another account', `arn:aws:iot:us-east-1:210987654321:provisioningtemplate/${TEMPLATE}`],
    ['another region', `arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/${TEMPLATE}`],
    ['another partition', `arn:aws-cn:iot:us-east-1:123456789012:provisioningtemplate/${TEMPLATE}`],
    ['a template this hook does not serve', `${TEMPLATE_ARN_PREFIX}SomeoneElses`],
  ])('%s: TEMPLATE_MISMATCH, audited', async (_what, templateArn) => {
    const serial = await listedSerial();
    await expect(
      hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A', templateArn })),
    ).resolves.toEqual(DENIED);
    expect(await trail(serial)).toEqual([
      expect.objectContaining({ type: 'ENROLLMENT_DENIED', reason: 'TEMPLATE_MISMATCH' }),
    ]);
  });
});

describe('trail entries of serials that are not on the manifest expire', () => {
  test('NOT_ON_ALLOWLIST carries expiresAt of about now + the retention', async () => {
    const serial = 'SN-UNLISTED-0001';
    const before = Math.floor(Date.now() / 1000);
    await expect(hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }))).resolves.toEqual(
      DENIED,
    );
    const after = Math.ceil(Date.now() / 1000);
    const [entry] = await trail(serial);
    expect(entry).toMatchObject({ reason: 'NOT_ON_ALLOWLIST' });
    const retention = UNLISTED_RETENTION_DAYS * 86_400;
    expect(entry.expiresAt).toBeGreaterThanOrEqual(before + retention - 1);
    expect(entry.expiresAt).toBeLessThanOrEqual(after + retention);
  });

  test('an allowlisted device keeps its entries for ever (allowed and denied alike)', async () => {
    const serial = await listedSerial();
    expect(
      (await hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }))).allowProvisioning,
    ).toBe(true);
    // A second claim from another lot's certificate: denied after the device was read.
    await hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-Z' }));
    const entries = await trail(serial);
    expect(entries.map((e) => e.reason).sort()).toEqual(['ALLOWED', 'CLAIM_LOT_MISMATCH']);
    for (const e of entries) expect(e.expiresAt).toBeUndefined();
  });
});

describe('a serial that can never be a thing name is refused whatever the configured pattern', () => {
  /** A hook whose configured pattern lets anything printable through (bounded and anchored). */
  let permissive: Hook;
  beforeAll(() => {
    permissive = loadBundledHandler<Hook>(HOOK_ENTRY, {
      ...hookEnv(tables, db.endpoint, iot.endpoint),
      [ENV.serialPattern]: '^[ -~]{1,100}$',
    });
  });
  afterAll(() => {
    Object.assign(process.env, hookEnv(tables, db.endpoint, iot.endpoint));
  });

  test.each([
    ['a topic wildcard +', 'SN+0001', true],
    ['a topic wildcard #', 'SN#0001', true],
    ['a level separator /', 'SN/0001', true],
    ['a space', 'SN 0001', false],
    ['65 characters', `SN-${'9'.repeat(62)}`, false],
  ])('%s: INVALID_PARAMETERS before any registry read', async (_what, serial, audited) => {
    // On the manifest and MANUFACTURED: only the serial check stands between it and an allow.
    await putDevice(db.doc, tables, deviceRecord(serial, 'LOT-A'));
    await expect(permissive(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }))).resolves.toEqual(
      DENIED,
    );
    const device = await db.doc.send(new GetCommand({ TableName: tables.devices, Key: { serial } }));
    expect(device.Item?.status).toBe('MANUFACTURED');
    const entries = await trail(serial);
    if (audited) {
      // No lot and an expiry: the decision was made without reading the device record.
      expect(entries).toEqual([expect.objectContaining({ reason: 'INVALID_PARAMETERS' })]);
      expect(entries[0].lot).toBeUndefined();
      expect(entries[0].expiresAt).toBeGreaterThan(0);
    } else {
      expect(entries).toEqual([]);
    }
  });

  test('a safe serial of 64 characters passes the same hook (the refusals above are the key)', async () => {
    const serial = `SN-${'7'.repeat(61)}`;
    await putDevice(db.doc, tables, deviceRecord(serial, 'LOT-A'));
    const res = await permissive(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }));
    expect(res.allowProvisioning).toBe(true);
  });
});

describe('the new environment variables fail closed at init, naming the variable', () => {
  const load = (over: Record<string, string | undefined>): unknown => {
    const env = { ...hookEnv(tables, db.endpoint, iot.endpoint) };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) {
        delete env[k];
        delete process.env[k];
      } else env[k] = v;
    }
    try {
      return loadBundledHandler<Hook>(HOOK_ENTRY, env);
    } finally {
      // Restore the variables the other tests rely on.
      Object.assign(process.env, hookEnv(tables, db.endpoint, iot.endpoint));
    }
  };

  test.each([
    [ENV.templateArnPrefix, undefined, /missing environment variable\(s\) FLEET_TEMPLATE_ARN_PREFIX/],
    [
      ENV.unlistedTrailRetentionDays,
      undefined,
      /missing environment variable\(s\) FLEET_UNLISTED_TRAIL_RETENTION_DAYS/,
    ],
    [
      ENV.templateArnPrefix,
      'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/FleetTemplate',
      /FLEET_TEMPLATE_ARN_PREFIX .*not a provisioning template ARN prefix/,
    ],
    [ENV.templateArnPrefix, 'arn:aws:iot:us-east-1::provisioningtemplate/', /FLEET_TEMPLATE_ARN_PREFIX/],
    [
      ENV.unlistedTrailRetentionDays,
      '0',
      /FLEET_UNLISTED_TRAIL_RETENTION_DAYS "0" is not a positive whole number/,
    ],
    [ENV.unlistedTrailRetentionDays, '-3', /FLEET_UNLISTED_TRAIL_RETENTION_DAYS/],
    [ENV.unlistedTrailRetentionDays, '1.5', /FLEET_UNLISTED_TRAIL_RETENTION_DAYS/],
    [ENV.unlistedTrailRetentionDays, 'ninety', /FLEET_UNLISTED_TRAIL_RETENTION_DAYS/],
    [ENV.unlistedTrailRetentionDays, '3651', /FLEET_UNLISTED_TRAIL_RETENTION_DAYS "3651" .*1-3650/],
    [ENV.hookBudgetMs, 'fast', /FLEET_HOOK_BUDGET_MS "fast" is not a whole number of milliseconds/],
    [ENV.hookBudgetMs, '3500ms', /FLEET_HOOK_BUDGET_MS "3500ms" .*between 100 and 4500/],
    [ENV.hookBudgetMs, '99', /FLEET_HOOK_BUDGET_MS "99" .*hook\.budgetMs/],
    [ENV.hookBudgetMs, '4501', /FLEET_HOOK_BUDGET_MS "4501"/],
  ])('%s=%s', (name, value, message) => {
    expect(() => load({ [name]: value })).toThrow(message);
  });
});
