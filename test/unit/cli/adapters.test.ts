/** Adapter unit tests with mocked SDK clients: IoT claim calls and DynamoDB batch retries. */
import {
  AttachPolicyCommand,
  CertificateStatus,
  CreateKeysAndCertificateCommand,
  CreateThingGroupCommand,
  DescribeCertificateCommand,
  DescribeThingGroupCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { ClaimIot, retireDeviceCertificate } from '../../../cli/iot-adapter';
import { BatchRetryExhaustedError, RegistryAdmin } from '../../../cli/registry-admin';
import { utcDays } from '../../../core/trail';
import { DeviceRecord } from '../../../core/model';

const named = (name: string) => Object.assign(new Error(name), { name });

describe('ClaimIot', () => {
  const iot = new IoTClient({ region: 'us-east-1' });
  const mock = mockClient(iot);
  const adapter = new ClaimIot(iot);
  beforeEach(() => mock.reset());

  test('createClaimCertificate asks for an active certificate and returns the key pair', async () => {
    mock.on(CreateKeysAndCertificateCommand).resolves({
      certificateId: 'id',
      certificateArn: 'arn:cert/id',
      certificatePem: 'PEM',
      keyPair: { PrivateKey: 'KEY', PublicKey: 'PUB' },
    });
    await expect(adapter.createClaimCertificate()).resolves.toEqual({
      certificateId: 'id',
      certificateArn: 'arn:cert/id',
      certificatePem: 'PEM',
      privateKey: 'KEY',
    });
    expect(mock.commandCalls(CreateKeysAndCertificateCommand)[0].args[0].input).toEqual({
      setAsActive: true,
    });
  });

  test('createClaimCertificate rejects an incomplete answer', async () => {
    mock.on(CreateKeysAndCertificateCommand).resolves({ certificateId: 'id' });
    await expect(adapter.createClaimCertificate()).rejects.toThrow(
      /without a certificate id, ARN, PEM or private key/,
    );
  });

  test('attachPolicy targets the certificate ARN', async () => {
    mock.on(AttachPolicyCommand).resolves({});
    await adapter.attachPolicy('ClaimPolicy', 'arn:cert/id');
    expect(mock.commandCalls(AttachPolicyCommand)[0].args[0].input).toEqual({
      policyName: 'ClaimPolicy',
      target: 'arn:cert/id',
    });
  });

  test.each([
    ['exists', () => mock.on(DescribeThingGroupCommand).resolves({ thingGroupName: 'g' }), false, 0],
    [
      'missing: created',
      () => {
        mock.on(DescribeThingGroupCommand).rejects(named('ResourceNotFoundException'));
        mock.on(CreateThingGroupCommand).resolves({});
      },
      true,
      1,
    ],
    [
      'created concurrently',
      () => {
        mock.on(DescribeThingGroupCommand).rejects(named('ResourceNotFoundException'));
        mock.on(CreateThingGroupCommand).rejects(named('ResourceAlreadyExistsException'));
      },
      false,
      1,
    ],
  ])('ensureThingGroup: %s', async (_name, arrange, created, createCalls) => {
    arrange();
    await expect(adapter.ensureThingGroup('fleet-lot-L1', { lot: 'L1' })).resolves.toBe(created);
    expect(mock.commandCalls(CreateThingGroupCommand)).toHaveLength(createCalls);
    if (createCalls > 0) {
      expect(mock.commandCalls(CreateThingGroupCommand)[0].args[0].input).toEqual({
        thingGroupName: 'fleet-lot-L1',
        thingGroupProperties: { attributePayload: { attributes: { lot: 'L1' }, merge: true } },
      });
    }
  });

  test('ensureThingGroup passes other errors on', async () => {
    mock.on(DescribeThingGroupCommand).rejects(named('AccessDeniedException'));
    await expect(adapter.ensureThingGroup('g', {})).rejects.toThrow('AccessDeniedException');
  });

  test.each([
    [undefined, 'UPDATED'],
    ['ResourceNotFoundException', 'NOT_FOUND'],
    ['CertificateStateException', 'STATE_CONFLICT'],
  ])('setCertificateStatus with %s -> %s', async (error, outcome) => {
    if (error) mock.on(UpdateCertificateCommand).rejects(named(error));
    else mock.on(UpdateCertificateCommand).resolves({});
    await expect(adapter.setCertificateStatus('id', 'REVOKED')).resolves.toBe(outcome);
    expect(mock.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({
      certificateId: 'id',
      newStatus: 'REVOKED',
    });
  });

  test('setCertificateStatus passes other errors on', async () => {
    mock.on(UpdateCertificateCommand).rejects(named('ThrottlingException'));
    await expect(adapter.setCertificateStatus('id', 'INACTIVE')).rejects.toThrow('ThrottlingException');
  });
});

describe('retireDeviceCertificate', () => {
  const iot = new IoTClient({ region: 'us-east-1' });
  const mock = mockClient(iot);
  const ARN = 'arn:aws:iot:us-east-1:123456789012:cert/id';
  const described = (status: CertificateStatus) => ({
    certificateDescription: { certificateArn: ARN, status },
  });
  beforeEach(() => mock.reset());

  test.each<CertificateStatus>(['ACTIVE', 'INACTIVE', 'PENDING_ACTIVATION'])(
    'a %s certificate is revoked, then detached from the thing',
    async (status) => {
      mock.on(DescribeCertificateCommand).resolves(described(status));
      mock.on(UpdateCertificateCommand).resolves({});
      mock.on(DetachThingPrincipalCommand).resolves({});
      await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).resolves.toBe('revoked');
      expect(mock.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({
        certificateId: 'id',
        newStatus: 'REVOKED',
      });
      expect(mock.commandCalls(DetachThingPrincipalCommand)[0].args[0].input).toEqual({
        thingName: 'fleet-SN-1',
        principal: ARN,
      });
    },
  );

  test('a REVOKED certificate is not updated, only detached; a missing thing is fine', async () => {
    mock.on(DescribeCertificateCommand).resolves(described('REVOKED'));
    mock.on(DetachThingPrincipalCommand).rejects(named('ResourceNotFoundException'));
    await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).resolves.toBe('already-revoked');
    expect(mock.commandCalls(UpdateCertificateCommand)).toHaveLength(0);
  });

  test('an unknown certificate is not-found, with no further call', async () => {
    mock.on(DescribeCertificateCommand).rejects(named('ResourceNotFoundException'));
    await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).resolves.toBe('not-found');
    expect(mock.calls()).toHaveLength(1);
  });

  test('revoked by someone else between the read and the update: already-revoked', async () => {
    mock.on(DescribeCertificateCommand).resolvesOnce(described('ACTIVE')).resolves(described('REVOKED'));
    mock.on(UpdateCertificateCommand).rejects(named('CertificateStateException'));
    mock.on(DetachThingPrincipalCommand).resolves({});
    await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).resolves.toBe('already-revoked');
    expect(mock.commandCalls(DetachThingPrincipalCommand)).toHaveLength(1);
  });

  test.each([
    [
      'DescribeCertificate refused',
      () => mock.on(DescribeCertificateCommand).rejects(named('AccessDeniedException')),
    ],
    [
      'UpdateCertificate refused',
      () => {
        mock.on(DescribeCertificateCommand).resolves(described('ACTIVE'));
        mock.on(UpdateCertificateCommand).rejects(named('AccessDeniedException'));
      },
    ],
    [
      'the state conflict is not a revocation',
      () => {
        mock.on(DescribeCertificateCommand).resolves(described('PENDING_TRANSFER'));
        mock.on(UpdateCertificateCommand).rejects(named('CertificateStateException'));
      },
    ],
    [
      'DetachThingPrincipal refused',
      () => {
        mock.on(DescribeCertificateCommand).resolves(described('ACTIVE'));
        mock.on(UpdateCertificateCommand).resolves({});
        mock.on(DetachThingPrincipalCommand).rejects(named('AccessDeniedException'));
      },
    ],
  ])('%s: the error is passed on', async (_name, arrange) => {
    arrange();
    await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).rejects.toThrow(
      /AccessDeniedException|CertificateStateException/,
    );
  });

  test('a DescribeCertificate answer without the ARN is an error', async () => {
    mock.on(DescribeCertificateCommand).resolves({ certificateDescription: { status: 'ACTIVE' } });
    await expect(retireDeviceCertificate(iot, 'id', 'fleet-SN-1')).rejects.toThrow(
      /DescribeCertificate answered without the ARN of certificate id/,
    );
  });
});

describe('RegistryAdmin batch retries', () => {
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
  const mock = mockClient(doc);
  const tables = { devices: 'Devices', lots: 'Lots', events: 'Events' };
  const sleeps: number[] = [];
  const admin = (maxAttempts = 5, concurrency = 1) =>
    new RegistryAdmin(doc, tables, {
      sleep: async (ms) => void sleeps.push(ms),
      maxAttempts,
      baseDelayMs: 10,
      maxDelayMs: 40,
      concurrency,
    });
  const device = (serial: string) =>
    ({ serial, lot: 'L1', hwRev: 'A', factoryFirmware: '1.0.0' }) as DeviceRecord;
  beforeEach(() => {
    mock.reset();
    sleeps.length = 0;
  });

  test('BatchWriteItem: chunks of 25, UnprocessedItems retried with growing backoff', async () => {
    const devices = Array.from({ length: 30 }, (_, i) => device(`SN-${i}`));
    const put = (d: DeviceRecord) => ({ PutRequest: { Item: d as unknown as Record<string, unknown> } });
    mock
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { Devices: [put(devices[3]), put(devices[4])] } })
      .resolvesOnce({ UnprocessedItems: { Devices: [put(devices[4])] } })
      .resolves({ UnprocessedItems: {} });
    const progress: number[] = [];
    await admin().batchPutDevices(devices, (n) => progress.push(n));
    const calls = mock
      .commandCalls(BatchWriteCommand)
      .map((c) => c.args[0].input.RequestItems?.Devices ?? []);
    expect(calls.map((c) => c.length)).toEqual([25, 2, 1, 5]);
    expect(calls[2][0].PutRequest?.Item?.serial).toBe('SN-4');
    expect(progress).toEqual([25, 30]);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(5);
    expect(sleeps[0]).toBeLessThanOrEqual(10);
    expect(sleeps[1]).toBeGreaterThanOrEqual(10);
    expect(sleeps[1]).toBeLessThanOrEqual(20);
  });

  test('BatchWriteItem: gives up with an actionable error when items stay unprocessed', async () => {
    mock
      .on(BatchWriteCommand)
      .resolves({ UnprocessedItems: { Devices: [{ PutRequest: { Item: { serial: 'SN-1' } } }] } });
    const err = await admin(3)
      .batchPutDevices([device('SN-1')])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchRetryExhaustedError);
    expect((err as Error).message).toMatch(
      /1 item\(s\) unprocessed after 3 attempts.*run the same command again/,
    );
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(3);
    expect(sleeps.every((s) => s <= 40)).toBe(true);
  });

  test('several batches in flight still write every item exactly once', async () => {
    mock.on(BatchWriteCommand).resolves({});
    const devices = Array.from({ length: 260 }, (_, i) => device(`SN-${i}`));
    const progress: number[] = [];
    await admin(5, 4).batchPutDevices(devices, (n) => progress.push(n));
    const written = mock
      .commandCalls(BatchWriteCommand)
      .flatMap((c) => (c.args[0].input.RequestItems?.Devices ?? []).map((r) => r.PutRequest?.Item?.serial));
    expect(written.sort()).toEqual(devices.map((d) => d.serial).sort());
    expect(progress.at(-1)).toBe(260);
  });

  test('BatchGetItem: chunks of 100, UnprocessedKeys retried, consistent reads', async () => {
    const serials = Array.from({ length: 120 }, (_, i) => `SN-${i}`);
    mock
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { Devices: [device('SN-1')] },
        UnprocessedKeys: { Devices: { Keys: [{ serial: 'SN-2' }] } },
      })
      .resolvesOnce({ Responses: { Devices: [device('SN-2')] } })
      .resolves({ Responses: { Devices: [device('SN-110')] } });
    const found = await admin().batchGetDevices([...serials, 'SN-1']);
    expect([...found.keys()].sort()).toEqual(['SN-1', 'SN-110', 'SN-2']);
    const calls = mock.commandCalls(BatchGetCommand).map((c) => c.args[0].input.RequestItems?.Devices);
    expect(calls.map((c) => c?.Keys?.length)).toEqual([100, 1, 20]);
    expect(calls.every((c) => c?.ConsistentRead === true)).toBe(true);
    expect(sleeps).toHaveLength(1);
  });
});

describe('utcDays', () => {
  test.each([
    ['2026-07-10T12:00:00.000Z', '2026-07-10T13:00:00.000Z', ['2026-07-10']],
    ['2026-07-09T23:00:00.000Z', '2026-07-10T00:00:00.000Z', ['2026-07-09']],
    ['2026-07-09T23:00:00.000Z', '2026-07-10T00:00:00.001Z', ['2026-07-09', '2026-07-10']],
    ['2026-02-27T00:00:00.000Z', '2026-03-01T10:00:00.000Z', ['2026-02-27', '2026-02-28', '2026-03-01']],
  ])('%s .. %s', (since, until, days) => {
    expect(utcDays(since, until)).toEqual(days);
  });
});
