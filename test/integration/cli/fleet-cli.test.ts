/**
 * The `fleet` commands in-process against dynalite on loopback (IoT calls mocked). `fleet device
 * show|reset` runs against the lab's IoT emulation in device-reset.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreateThingGroupCommand,
  DescribeThingGroupCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { GetCommand, PutCommand, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { assignRings, parseRingShares } from '../../../core/rings';
import { DeviceRecord, LotRecord } from '../../../core/model';
import { RegistryAdmin } from '../../../cli/registry-admin';
import { enrollmentPartitions } from '../../../core/trail';
import { claimCreate, claimRevoke } from '../../../cli/commands/claim';
import { enrollmentList } from '../../../cli/commands/enrollment';
import { lotCreate, lotHold, lotList, lotRelease } from '../../../cli/commands/lot';
import { manifestImport } from '../../../cli/commands/manifest-import';
import { CliContext, createContext, FleetClients, resolveResources } from '../../../cli/context';
import { CliError, UsageError } from '../../../cli/errors';
import { ContextFactory, main } from '../../../cli/program';
import { parseManifest } from '../../../core/manifest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createServer, type AddressInfo } from 'node:net';
import { LocalDynamo, startDynalite } from '../../helpers/dynalite';
import { Fixture, NOW, registryFixture } from './support';

const TEMPLATES = [
  {
    templateName: 'fleet-default',
    claimPolicyName: 'ClaimPolicy',
    thingTypeName: 'Sensor',
    claimClientIdPrefix: 'prov-',
  },
];

let local: LocalDynamo;
let suffixCounter = 0;
const iot = new IoTClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
const iotMock = mockClient(iot);

beforeAll(async () => {
  local = await startDynalite();
});
afterAll(async () => {
  await local.stop();
});

function fixture(): Promise<Fixture> {
  suffixCounter += 1;
  return registryFixture(local, iot, `-cli${suffixCounter}`, { provisioningTemplates: TEMPLATES });
}

/**
 * Fresh SDK clients on dynalite for a context handed to `main`: its run wrapper owns the context
 * and destroys its clients once the command is done, so the shared ones stay out of it.
 */
function ownedClients(): FleetClients {
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const dynamo = new DynamoDBClient({ endpoint: local.endpoint, region: 'us-east-1', credentials });
  return {
    dynamo,
    doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
    iot: new IoTClient({ region: 'us-east-1', credentials }),
  };
}

const HEADER = 'serial,lot,hwRev,factoryFirmware,publicKey';
function manifest(rows: string[]): string {
  return [HEADER, ...rows].join('\n') + '\n';
}
function units(n: number, lot: string, hwRev: string, start = 1): string[] {
  return Array.from(
    { length: n },
    (_, i) => `SN-${lot}-${hwRev}-${String(start + i).padStart(4, '0')},${lot},${hwRev},1.0.0,`,
  );
}

describe('manifest import', () => {
  test('creates devices and lots, assigns stratified rings, and is idempotent', async () => {
    const { ctx, tables, registry } = await fixture();
    const rows = [...units(40, 'LA', 'A'), ...units(10, 'LA', 'B'), ...units(25, 'LB', 'A')];
    const content = manifest(rows);
    const first = await manifestImport({ file: 'units.csv', content }, ctx);
    expect(first).toMatchObject({
      rows: 75,
      created: 75,
      unchanged: 0,
      conflicts: [],
      invalid: [],
      imported: true,
      exitCode: 0,
    });
    expect(first.lotsCreated).toEqual(['LA', 'LB']);

    const device = (await registry.getDevice('SN-LA-A-0001')) as DeviceRecord;
    expect(device).toMatchObject({
      lot: 'LA',
      hwRev: 'A',
      factoryFirmware: '1.0.0',
      currentFirmware: '1.0.0',
      status: 'MANUFACTURED',
      revision: 0,
      createdAt: NOW.toISOString(),
    });
    const la = (await registry.getLot('LA')) as LotRecord;
    expect(la).toMatchObject({
      status: 'OK',
      unitCount: 50,
      requireAttestation: false,
      claimCertificateIds: [],
    });
    expect((await registry.getLot('LB'))?.unitCount).toBe(25);

    // Rings: exactly the stratified assignment, with a canary in every lot x hwRev stratum.
    const expected = assignRings(
      rows.map((r) => {
        const [serial, lot, hwRev] = r.split(',');
        return { serial, lot, hwRev };
      }),
      parseRingShares('2:18'),
    );
    const admin = new RegistryAdmin(local.doc, tables);
    const stored = await admin.batchGetDevices([...expected.keys()]);
    for (const [serial, ring] of expected) expect(stored.get(serial)?.ring).toBe(ring);
    for (const prefix of ['SN-LA-A-', 'SN-LA-B-', 'SN-LB-A-']) {
      expect([...stored.values()].some((d) => d.serial.startsWith(prefix) && d.ring === 'canary')).toBe(true);
    }

    const again = await manifestImport({ file: 'units.csv', content }, ctx);
    expect(again).toMatchObject({ created: 0, unchanged: 75, conflicts: [], lotsCreated: [], exitCode: 0 });
    expect((await registry.getLot('LA'))?.unitCount).toBe(50);
  });

  test('reports conflicts, never overwrites them, and still imports the new rows', async () => {
    const { ctx, out, registry } = await fixture();
    await manifestImport(
      { file: 'a.csv', content: manifest(['SN-0001,L1,A,1.0.0,', 'SN-0002,L1,A,1.0.0,']) },
      ctx,
    );
    const result = await manifestImport(
      {
        file: 'b.csv',
        content: manifest(['SN-0001,L1,B,1.0.0,', 'SN-0002,L1,A,1.0.0,', 'SN-0003,L1,A,1.0.0,']),
      },
      ctx,
    );
    expect(result).toMatchObject({ created: 1, unchanged: 1, exitCode: 1 });
    expect(result.conflicts).toEqual([
      { line: 2, serial: 'SN-0001', differences: [{ field: 'hwRev', registry: 'A', manifest: 'B' }] },
    ]);
    expect((await registry.getDevice('SN-0001'))?.hwRev).toBe('A');
    expect(await registry.getDevice('SN-0003')).toBeDefined();
    expect((await registry.getLot('L1'))?.unitCount).toBe(3);
    expect(out.warnings.join('\n')).toMatch(
      /line 2 \(serial SN-0001\): conflict.*hwRev A \(manifest says B\).*correct the manifest.*docs\/operations\.md/,
    );
    expect(out.warnings.join('\n')).not.toMatch(/RMA|refurbish/);
  });

  test('a public key change is a conflict', async () => {
    const { ctx } = await fixture();
    const key = () =>
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        .publicKey.export({ type: 'spki', format: 'der' })
        .toString('base64');
    const k1 = key();
    await manifestImport({ file: 'a.csv', content: manifest([`SN-0001,L1,A,1.0.0,${k1}`]) }, ctx);
    const same = await manifestImport(
      { file: 'a.csv', content: manifest([`SN-0001,L1,A,1.0.0,${k1}`]) },
      ctx,
    );
    expect(same.unchanged).toBe(1);
    const other = await manifestImport(
      { file: 'a.csv', content: manifest([`SN-0001,L1,A,1.0.0,${key()}`]) },
      ctx,
    );
    expect(other.conflicts[0].differences[0].field).toBe('publicKey');
  });

  test('any invalid row imports nothing; --skip-invalid imports the valid rows', async () => {
    const { ctx, out, registry } = await fixture();
    const content = manifest([
      'SN-0001,L1,A,1.0.0,',
      'bad serial,L1,A,1.0.0,',
      'SN-0003,L1,A,v1,',
      'SN-0001,L1,A,1.0.0,',
    ]);
    const rejected = await manifestImport({ file: 'm.csv', content }, ctx);
    expect(rejected).toMatchObject({ imported: false, created: 0, exitCode: 1 });
    expect(rejected.invalid.map((i) => i.line)).toEqual([3, 4, 5]);
    expect(rejected.invalidRows).toBe(3);
    expect(await registry.getDevice('SN-0001')).toBeUndefined();
    expect(await registry.getLot('L1')).toBeUndefined();
    expect(out.warnings.join('\n')).toMatch(
      /nothing imported: 3 problem\(s\).*--skip-invalid to import the 1 valid row/,
    );

    const skipped = await manifestImport({ file: 'm.csv', content, skipInvalid: true }, ctx);
    expect(skipped).toMatchObject({ imported: true, created: 1, exitCode: 0 });
    expect(skipped.invalid).toHaveLength(3);
    expect((await registry.getLot('L1'))?.unitCount).toBe(1);
  });

  test('--dry-run writes nothing but reports what would happen', async () => {
    const { ctx, registry } = await fixture();
    const r = await manifestImport(
      { file: 'm.csv', content: manifest(units(3, 'L1', 'A')), dryRun: true },
      ctx,
    );
    expect(r).toMatchObject({ dryRun: true, imported: false, created: 3, lotsCreated: ['L1'] });
    expect(await registry.getLot('L1')).toBeUndefined();
  });

  test('--require-attestation creates attesting lots; later rows of that lot need a key', async () => {
    const { ctx, registry } = await fixture();
    const pk = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      .publicKey.export({ type: 'spki', format: 'der' })
      .toString('base64');
    const r = await manifestImport(
      { file: 'm.csv', content: manifest([`SN-0001,L1,A,1.0.0,${pk}`]), requireAttestation: true },
      ctx,
    );
    expect(r.created).toBe(1);
    expect((await registry.getLot('L1'))?.requireAttestation).toBe(true);
    expect((await registry.getDevice('SN-0001'))?.publicKey).toContain('BEGIN PUBLIC KEY');
    const later = await manifestImport({ file: 'n.csv', content: manifest(['SN-0002,L1,A,1.0.0,']) }, ctx);
    expect(later.invalid).toEqual([
      expect.objectContaining({
        line: 2,
        serial: 'SN-0002',
        field: 'publicKey',
        problem: expect.stringMatching(/requires attestation/),
      }),
    ]);
    expect(later.imported).toBe(false);
  });

  test('--trail appends a MANUFACTURED event per new unit; JSON manifests work', async () => {
    const { ctx, tables } = await fixture();
    const json = JSON.stringify([{ serial: 'SN-0001', lot: 'L1', hwRev: 'A', firmware: '2.0.0' }]);
    const r = await manifestImport({ file: 'm.json', content: json, trail: true }, ctx);
    expect(r.created).toBe(1);
    const events = await new RegistryAdmin(local.doc, tables).recentEvents('SN-0001');
    expect(events).toEqual([
      expect.objectContaining({ type: 'MANUFACTURED', lot: 'L1', at: NOW.toISOString() }),
    ]);
    expect(events[0].enrollDay).toBeUndefined();
  });

  test('a missing file is a usage error naming the path', async () => {
    const { ctx } = await fixture();
    await expect(manifestImport({ file: '/nonexistent/units.csv' }, ctx)).rejects.toThrow(UsageError);
    await expect(manifestImport({ file: '/nonexistent/units.csv' }, ctx)).rejects.toThrow(
      /no such file; check the path/,
    );
  });
});

describe('lots', () => {
  test('create, hold, release and list', async () => {
    const { ctx, out } = await fixture();
    expect((await lotCreate({ lot: 'L1' }, ctx)).created).toBe(true);
    expect((await lotCreate({ lot: 'L1', requireAttestation: true }, ctx)).created).toBe(false);
    await lotCreate({ lot: 'L2', requireAttestation: true }, ctx);

    const held = await lotHold({ lot: 'L1', reason: 'cracked enclosures' }, ctx);
    expect(held).toMatchObject({ changed: true, lot: { status: 'HOLD', holdReason: 'cracked enclosures' } });
    expect((await lotHold({ lot: 'L1', reason: 'still cracked' }, ctx)).changed).toBe(false);

    out.lines.length = 0;
    const lots = await lotList({}, ctx);
    expect(lots.map((l) => [l.lot, l.status])).toEqual([
      ['L1', 'HOLD'],
      ['L2', 'OK'],
    ]);
    expect(out.lines[0]).toMatch(/^LOT\s+STATUS\s+UNITS\s+CLAIM CERTS\s+ATTESTATION\s+HOLD REASON$/);
    expect(out.lines[2]).toMatch(/^L1\s+HOLD\s+0\s+0\s+-\s+still cracked$/);
    expect(out.lines[3]).toMatch(/^L2\s+OK\s+0\s+0\s+required$/);

    const released = await lotRelease({ lot: 'L1', reason: 'supplier fix verified' }, ctx);
    expect(released).toMatchObject({ changed: true, lot: { status: 'OK' } });
    expect(released.lot.holdReason).toBeUndefined();
    expect((await lotRelease({ lot: 'L1', reason: 'again' }, ctx)).changed).toBe(false);

    await lotList({ json: true }, ctx);
    expect(out.values.at(-1)).toEqual(lots.map((l) => expect.objectContaining({ lot: l.lot })));
  });

  test.each([
    [
      'hold of an unknown lot',
      (ctx: CliContext) => lotHold({ lot: 'NOPE', reason: 'x' }, ctx),
      CliError,
      /lot NOPE does not exist; create it/,
    ],
    [
      'hold without reason',
      (ctx: CliContext) => lotHold({ lot: 'L1', reason: ' ' }, ctx),
      UsageError,
      /needs --reason/,
    ],
    ['bad lot name', (ctx: CliContext) => lotCreate({ lot: 'L 1' }, ctx), UsageError, /use 1-48 characters/],
  ])('%s', async (_name, call, type, message) => {
    const { ctx } = await fixture();
    await expect(call(ctx)).rejects.toThrow(type);
    await expect(call(ctx)).rejects.toThrow(message);
  });
});

describe('enrollment list', () => {
  test('queries every shard of the byEnrollmentDay index day by day and computes the first-time success rate', async () => {
    const { ctx, out, registry } = await fixture();
    const seed = async (serial: string, at: string, allowed: boolean, reason: string, lot = 'L1') =>
      registry.appendEvent({
        serial,
        at,
        lot,
        type: allowed ? 'ENROLLMENT_ALLOWED' : 'ENROLLMENT_DENIED',
        reason,
      });
    await seed('SN-OLD', '2026-07-01T10:00:00.000Z', false, 'NOT_ON_ALLOWLIST'); // outside the window
    await seed('SN-0001', '2026-07-08T23:59:00.000Z', true, 'ALLOWED');
    await seed('SN-0002', '2026-07-09T01:00:00.000Z', false, 'LOT_ON_HOLD');
    await seed('SN-0002', '2026-07-09T02:00:00.000Z', true, 'ALLOWED');
    await seed('SN-0003', '2026-07-10T08:00:00.000Z', false, 'CLAIM_LOT_MISMATCH', 'L2');
    await seed('SN-0004', '2026-07-10T09:00:00.000Z', true, 'ALLOWED');
    await registry.appendEvent({ serial: 'SN-0004', at: '2026-07-10T09:01:00.000Z', type: 'ACTIVATED' }); // not on the index

    const send = jest.spyOn(local.doc, 'send');
    const r = await enrollmentList({ since: '3d' }, ctx);
    const commands = send.mock.calls.map((c) => c[0]);
    send.mockRestore();
    expect(commands.every((c) => c instanceof QueryCommand)).toBe(true);
    expect(commands.some((c) => c instanceof ScanCommand)).toBe(false);
    expect(commands.map((c) => (c as QueryCommand).input.ExpressionAttributeValues?.[':day'])).toEqual(
      ['2026-07-07', '2026-07-08', '2026-07-09', '2026-07-10'].flatMap(enrollmentPartitions),
    );
    expect(commands.every((c) => (c as QueryCommand).input.IndexName === 'byEnrollmentDay')).toBe(true);

    expect(r.window).toEqual({ since: '2026-07-07T12:00:00.000Z', until: NOW.toISOString() });
    expect(r.attempts.map((a) => [a.serial, a.decision, a.reason])).toEqual([
      ['SN-0004', 'ALLOWED', 'ALLOWED'],
      ['SN-0003', 'DENIED', 'CLAIM_LOT_MISMATCH'],
      ['SN-0002', 'ALLOWED', 'ALLOWED'],
      ['SN-0002', 'DENIED', 'LOT_ON_HOLD'],
      ['SN-0001', 'ALLOWED', 'ALLOWED'],
    ]);
    expect(r.stats).toEqual({
      attempts: 5,
      allowed: 3,
      denied: 2,
      serials: 4,
      firstTimeAllowed: 2,
      firstTimeSuccessRate: 0.5,
      deniedByReason: { LOT_ON_HOLD: 1, CLAIM_LOT_MISMATCH: 1 },
    });
    expect(out.lines.join('\n')).toMatch(/first-time success rate 50.0% \(2\/4\)/);

    const denied = await enrollmentList({ since: '3d', denied: true }, ctx);
    expect(denied.attempts.map((a) => a.serial)).toEqual(['SN-0003', 'SN-0002']);
    expect(denied.stats.attempts).toBe(5);

    const byReason = await enrollmentList({ since: '2026-07-01', reason: 'not_on_allowlist' }, ctx);
    expect(byReason.attempts.map((a) => a.serial)).toEqual(['SN-OLD']);

    const limited = await enrollmentList({ since: '7d', limit: 2, lot: 'L1' }, ctx);
    expect(limited).toMatchObject({ matched: 4 });
    expect(limited.attempts.map((a) => a.serial)).toEqual(['SN-0004', 'SN-0002']);

    const window = await enrollmentList(
      { since: '2026-07-09T00:00:00Z', until: '2026-07-09T01:30:00Z' },
      ctx,
    );
    expect(window.attempts.map((a) => a.serial)).toEqual(['SN-0002']);
    expect(window.stats.firstTimeSuccessRate).toBe(0);
  });

  test.each([
    [{ since: 'yesterday' }, /--since "yesterday" is not a time/],
    [{ since: '1h', until: '2h' }, /must be before --until/],
    [{ since: '200d' }, /more than 92 days/],
    [{ reason: 'NOPE' }, /not a decision reason code/],
    [{ denied: true, reason: 'ALLOWED' }, /allow reason/],
    [{ limit: 0 }, /positive whole number/],
  ])('usage error %j', async (opts, message) => {
    const { ctx } = await fixture();
    await expect(enrollmentList(opts, ctx)).rejects.toThrow(UsageError);
    await expect(enrollmentList(opts, ctx)).rejects.toThrow(message);
  });
});

describe('claim create and revoke (IoT mocked)', () => {
  let dir: string;
  beforeEach(async () => {
    iotMock.reset();
    dir = await mkdtemp(join(tmpdir(), 'fleet-claim-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const mockCreate = (id: string) =>
    iotMock.on(CreateKeysAndCertificateCommand).resolves({
      certificateId: id,
      certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${id}`,
      certificatePem: `-----BEGIN CERTIFICATE-----\n${id}\n-----END CERTIFICATE-----\n`,
      keyPair: {
        PrivateKey: `-----BEGIN RSA PRIVATE KEY-----\n${id}\n-----END RSA PRIVATE KEY-----\n`,
        PublicKey: 'x',
      },
    });

  test('create writes 0600 files, attaches the claim policy, creates the lot group and records the claim', async () => {
    const { ctx, registry } = await fixture();
    mockCreate('a'.repeat(64));
    iotMock
      .on(DescribeThingGroupCommand)
      .rejects(Object.assign(new Error('nope'), { name: 'ResourceNotFoundException' }));
    iotMock.on(CreateThingGroupCommand).resolves({});
    iotMock.on(AttachPolicyCommand).resolves({});

    const out = join(dir, 'L1');
    const r = await claimCreate({ lot: 'L1', out }, ctx);
    expect(r).toMatchObject({
      certificateId: 'a'.repeat(64),
      thingGroup: 'fleet-lot-L1',
      thingGroupCreated: true,
      lotCreated: true,
    });
    expect(iotMock.commandCalls(CreateKeysAndCertificateCommand)[0].args[0].input).toEqual({
      setAsActive: true,
    });
    expect(iotMock.commandCalls(AttachPolicyCommand)[0].args[0].input).toEqual({
      policyName: 'ClaimPolicy',
      target: `arn:aws:iot:us-east-1:123456789012:cert/${'a'.repeat(64)}`,
    });
    expect(iotMock.commandCalls(CreateThingGroupCommand)[0].args[0].input.thingGroupName).toBe(
      'fleet-lot-L1',
    );
    for (const f of Object.values(r.files)) expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(await readFile(r.files.privateKey, 'utf8')).toContain('PRIVATE KEY');
    expect(JSON.parse(await readFile(r.files.metadata, 'utf8'))).toMatchObject({
      certificateId: 'a'.repeat(64),
      lot: 'L1',
      template: 'fleet-default',
      claimClientIdPrefix: 'prov-',
    });
    expect((await registry.getLot('L1'))?.claimCertificateIds).toEqual(['a'.repeat(64)]);

    // Existing files: refused before any IoT call.
    const calls = iotMock.calls().length;
    await expect(claimCreate({ lot: 'L1', out }, ctx)).rejects.toThrow(/already exist.*--force/);
    expect(iotMock.calls().length).toBe(calls);

    // --force overwrites (and restores the mode); the group exists now.
    await writeFile(r.files.privateKey, 'old', { mode: 0o644 });
    mockCreate('b'.repeat(64));
    iotMock.on(DescribeThingGroupCommand).resolves({ thingGroupName: 'fleet-lot-L1' });
    const second = await claimCreate({ lot: 'L1', out, force: true }, ctx);
    expect(second.thingGroupCreated).toBe(false);
    expect((await stat(second.files.privateKey)).mode & 0o777).toBe(0o600);
    expect(await readFile(second.files.privateKey, 'utf8')).toContain('b'.repeat(64));
    expect((await registry.getLot('L1'))?.claimCertificateIds).toEqual(['a'.repeat(64), 'b'.repeat(64)]);

    // Revoke one, then deactivate the rest (kept on the lot), then revoke all.
    iotMock.on(UpdateCertificateCommand).resolves({});
    const one = await claimRevoke({ lot: 'L1', certificateId: 'a'.repeat(64) }, ctx);
    expect(one).toMatchObject({ newStatus: 'REVOKED', remainingOnLot: ['b'.repeat(64)] });
    expect(iotMock.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({
      certificateId: 'a'.repeat(64),
      newStatus: 'REVOKED',
    });
    const deactivated = await claimRevoke({ lot: 'L1', deactivate: true }, ctx);
    expect(deactivated).toMatchObject({ newStatus: 'INACTIVE', remainingOnLot: ['b'.repeat(64)] });
    const all = await claimRevoke({ lot: 'L1' }, ctx);
    expect(all.certificates).toEqual([{ certificateId: 'b'.repeat(64), outcome: 'UPDATED' }]);
    expect((await registry.getLot('L1'))?.claimCertificateIds).toEqual([]);
    expect((await claimRevoke({ lot: 'L1' }, ctx)).certificates).toEqual([]);
    await expect(claimRevoke({ lot: 'L1', certificateId: 'zz' }, ctx)).rejects.toThrow(
      /not a claim certificate of lot L1/,
    );
  });

  test('a failure after the certificate exists deactivates it and removes the files', async () => {
    const { ctx, registry } = await fixture();
    mockCreate('c'.repeat(64));
    iotMock
      .on(AttachPolicyCommand)
      .rejects(Object.assign(new Error('no such policy'), { name: 'ResourceNotFoundException' }));
    iotMock.on(UpdateCertificateCommand).resolves({});
    const out = join(dir, 'x');
    await expect(claimCreate({ lot: 'L1', out }, ctx)).rejects.toThrow(
      /certificate set INACTIVE, claim files removed/,
    );
    expect(iotMock.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({
      certificateId: 'c'.repeat(64),
      newStatus: 'INACTIVE',
    });
    await expect(stat(join(out, 'claim.private.key'))).rejects.toThrow();
    expect(await registry.getLot('L1')).toBeUndefined();
  });

  test('an --out that cannot be a directory is refused before any AWS call, naming the path and the fix', async () => {
    const { ctx } = await fixture();
    mockCreate('d'.repeat(64));
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    for (const [out, why] of [
      [file, 'it is a file, not a directory'],
      [join(file, 'claims'), `${file} is a file, not a directory`],
    ]) {
      const message = `--out ${out} cannot be used as a directory: ${why}; pass a directory that can be created or written, e.g. --out ./claims/L1`;
      await expect(claimCreate({ lot: 'L1', out }, ctx)).rejects.toThrow(new UsageError(message));
      // Through the entry point: exit 2, one line, and the context (stack, region) is never resolved.
      const stderr: string[] = [];
      let resolved = 0;
      const factory = async () => {
        resolved++;
        return { ...ctx, clients: ownedClients() };
      };
      const code = await main(['claim', 'create', '--lot', 'L1', '--out', out], factory, {
        stderr: (t) => void stderr.push(t),
        env: {},
      });
      expect({ code, stderr: stderr.join(''), resolved }).toEqual({
        code: 2,
        stderr: `error: ${message}\n`,
        resolved: 0,
      });
    }
    // No certificate was created in AWS IoT.
    expect(iotMock.calls()).toHaveLength(0);
  });

  test('template choice: unknown names and ambiguity are usage errors', async () => {
    const { ctx } = await fixture();
    await expect(claimCreate({ lot: 'L1', out: dir, template: 'other' }, ctx)).rejects.toThrow(
      /not one of the stack's provisioning templates/,
    );
    ctx.resources.provisioningTemplates = [...TEMPLATES, { ...TEMPLATES[0], templateName: 'second' }];
    await expect(claimCreate({ lot: 'L1', out: dir }, ctx)).rejects.toThrow(/choose one with --template/);
    expect(iotMock.calls()).toHaveLength(0);
  });
});

describe('main (in-process)', () => {
  test('exit codes: 0 ok, 1 for import problems, 2 for usage errors', async () => {
    const { ctx } = await fixture();
    const stderr: string[] = [];
    const io = { stderr: (t: string) => void stderr.push(t), env: {} };
    const factory = async () => ({ ...ctx, clients: ownedClients() });
    expect(await main(['lot', 'create', 'L1'], factory, io)).toBe(0);
    expect(await main(['lot', 'create', 'bad lot'], factory, io)).toBe(2);
    expect(stderr.join('')).toMatch(/^error: lot "bad lot" is invalid/);
    expect(await main(['lot', 'hold', 'NOPE', '--reason', 'x'], factory, io)).toBe(1);
    const dir = await mkdtemp(join(tmpdir(), 'fleet-main-'));
    const file = join(dir, 'm.csv');
    await writeFile(file, manifest(['bad serial,L1,A,1.0.0,']));
    expect(await main(['manifest', 'import', file], factory, io)).toBe(1);
    await rm(dir, { recursive: true, force: true });
    const lots = await local.doc.send(
      new GetCommand({ TableName: ctx.resources.lotsTable, Key: { lot: 'L1' } }),
    );
    expect(lots.Item).toBeDefined();
    await local.doc.send(
      new PutCommand({ TableName: ctx.resources.lotsTable, Item: { lot: 'L9', status: 'OK' } }),
    );
    expect(await main(['lot', 'list', '--json'], factory, io)).toBe(0);
  });
});

describe('manifest import takes the serial pattern and ring shares from the stack outputs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-contract-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Resolve exactly what the command declares, from a fake deployed stack (no flags, no env). */
  async function stackFixture(contract: Record<string, string>) {
    const { ctx, out, tables, registry } = await fixture();
    const outputs = {
      DevicesTableName: tables.devices,
      LotsTableName: tables.lots,
      EventsTableName: tables.events,
      ...contract,
    };
    const factory: ContextFactory = async (flags, needs, wants) =>
      createContext({
        ...ctx,
        clients: ownedClients(),
        resources: await resolveResources({
          flags,
          env: {},
          needs,
          wants,
          readStackOutputs: async () => outputs,
        }),
      });
    const stderr: string[] = [];
    const run = (argv: string[]) => main(argv, factory, { stderr: (t) => void stderr.push(t), env: {} });
    return { run, out, stderr, registry };
  }

  test('a custom pattern accepts serials the default refuses; rings use the stack shares', async () => {
    const rows = ['unit-0001,L1,A,1.0.0,', 'unit-0002,L1,A,1.0.0,', 'unit-0003,L1,B,1.0.0,'];
    expect(parseManifest(manifest(rows), 'csv').issues).toHaveLength(3); // the default refuses them
    const { run, registry } = await stackFixture({ SerialPattern: '^unit-[0-9]{4}$', RingShares: '100:0' });
    const file = join(dir, 'custom.csv');
    await writeFile(file, manifest(rows));
    expect(await run(['manifest', 'import', file])).toBe(0);
    for (const serial of ['unit-0001', 'unit-0002', 'unit-0003'])
      expect((await registry.getDevice(serial))?.ring).toBe('canary');
  });

  test('a stricter pattern refuses serials the default accepts', async () => {
    const rows = ['SN-ABCD,L1,A,1.0.0,', 'SN-123456,L1,A,1.0.0,'];
    expect(parseManifest(manifest(rows), 'csv').issues).toEqual([]); // the default accepts them
    const { run, out, registry } = await stackFixture({ SerialPattern: '^SN-[0-9]{6}$', RingShares: '2:18' });
    const file = join(dir, 'strict.csv');
    await writeFile(file, manifest(rows));
    expect(await run(['manifest', 'import', file])).toBe(1);
    expect(out.warnings[0]).toMatch(/^line 2 \(serial SN-ABCD\): serial/);
    expect(await registry.getDevice('SN-123456')).toBeUndefined();
  });

  test.each([
    [
      { RingShares: '2:18' },
      /serialPattern: pass --serial-pattern, set FLEET_SERIAL_PATTERN, or deploy stack IotFleetStack with output SerialPattern/,
    ],
    [
      { SerialPattern: '^SN' },
      /ringShares: pass --ring-shares, set FLEET_RING_SHARES, or deploy stack IotFleetStack with output RingShares/,
    ],
  ])('without %j the import stops (exit 2) naming flag, variable and output', async (contract, message) => {
    const { run, stderr } = await stackFixture(contract);
    const file = join(dir, 'any.csv');
    await writeFile(file, manifest(['SN-0001,L1,A,1.0.0,']));
    expect(await run(['manifest', 'import', file])).toBe(2);
    expect(stderr.join('')).toMatch(message);
  });
});

test('--dry-run reports every row problem even when the AWS endpoint cannot be reached', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const dynamo = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  const { ctx, out } = await fixture();
  const unreachable = createContext({
    ...ctx,
    clients: { ...ownedClients(), dynamo, doc: DynamoDBDocumentClient.from(dynamo) },
  });
  const dir = await mkdtemp(join(tmpdir(), 'fleet-dry-'));
  const file = join(dir, 'm.csv');
  await writeFile(
    file,
    manifest([
      'SN-0001,L1,A,1.0.0,',
      'bad serial,L1,A,1.0.0,',
      'SN-0003,L 1,A,1.0.0,',
      'SN-0004,L1,,1.0.0,',
      'SN-0005,L1,A,v1,',
      'SN-0006,L1,A,1.0.0,not-a-key',
      'SN-0001,L1,A,1.0.0,',
    ]),
  );
  const stderr: string[] = [];
  const code = await main(['manifest', 'import', file, '--dry-run'], async () => unreachable, {
    stderr: (t) => void stderr.push(t),
    env: {},
  });
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(1);
  expect(out.warnings.map((w) => Number(/^line (\d+)/.exec(w)?.[1]))).toEqual([3, 4, 5, 6, 7, 8]);
  expect(stderr.join('')).toMatch(/^error: cannot reach the AWS endpoint: check the network/);
});
