/**
 * Fixtures for the hook's integration tests and benchmark: real X.509 certificates (ECDSA
 * P-256) issued by a throw-away CA, a loopback AWS IoT stand-in for DescribeCertificate, and
 * registry seeding.
 */
import 'reflect-metadata';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { certificateIdOf, publicKeyFingerprintOfCertificate } from '../../../core/attestation';
import { ENV } from '../../../core/env';
import { DEFAULT_SERIAL_PATTERN, DeviceRecord, LotRecord } from '../../../core/model';
import type { RegistryTableNames } from '../../../lambda/shared/registry';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export const HOOK_ENTRY = 'lambda/provisioning/pre-provisioning-hook.handler.ts';
export const PRESENCE_ENTRY = 'lambda/provisioning/presence.handler.ts';
export const TEMPLATE = 'FleetTemplate';
/** This stack's template ARN prefix (account, partition and region of the tests). */
/** What the hook answers AWS IoT. */
export type HookResult = { allowProvisioning: boolean; parameterOverrides: Record<string, string> };
/** The bundled hook's handler. */
export type Hook = (event: unknown) => Promise<HookResult>;

export const TEMPLATE_ARN_PREFIX = 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/';
export const TEMPLATE_ARN = `${TEMPLATE_ARN_PREFIX}${TEMPLATE}`;
/** Retention of unlisted serials' trail entries the tests configure. */
export const UNLISTED_RETENTION_DAYS = 30;

export interface IssuedCertificate {
  pem: string;
  certificateId: string;
  fingerprint: string;
}

export interface DeviceKey {
  /** Issue a new certificate for this key (a new certificate id, the same public key). */
  issue(): Promise<IssuedCertificate>;
}

export interface TestCa {
  newDeviceKey(): Promise<DeviceKey>;
}

let serialCounter = 1;

export async function createTestCa(): Promise<TestCa> {
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const caName = 'CN=Fleet Test CA';
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  return {
    async newDeviceKey(): Promise<DeviceKey> {
      const keys = (await webcrypto.subtle.generateKey(ALG, true, [
        'sign',
        'verify',
      ])) as webcrypto.CryptoKeyPair;
      return {
        async issue(): Promise<IssuedCertificate> {
          const cert = await x509.X509CertificateGenerator.create({
            serialNumber: (serialCounter++).toString(16).padStart(8, '0'),
            subject: 'CN=AWS IoT Certificate',
            issuer: caName,
            notBefore,
            notAfter,
            signingAlgorithm: ALG,
            publicKey: keys.publicKey,
            signingKey: caKeys.privateKey,
          });
          const pem = cert.toString('pem');
          return {
            pem,
            certificateId: certificateIdOf(pem),
            fingerprint: publicKeyFingerprintOfCertificate(pem),
          };
        },
      };
    },
  };
}

export type CertificateStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_ACTIVATION';

/**
 * Loopback stand-in for the AWS IoT control plane: answers DescribeCertificate
 * (GET /certificates/{certificateId}) in AWS IoT's REST-JSON, 404 ResourceNotFoundException for
 * unknown ids. `failWith500` makes every call fail.
 */
export interface FakeIot {
  endpoint: string;
  certificates: Map<string, CertificateStatus>;
  calls: string[];
  failWith500: boolean;
  stop(): Promise<void>;
}

export async function startFakeIot(): Promise<FakeIot> {
  const state = {
    certificates: new Map<string, CertificateStatus>(),
    calls: [] as string[],
    failWith500: false,
  };
  const server: Server = createServer((req, res) => {
    const m = /^\/certificates\/([^/?]+)/.exec(req.url ?? '');
    req.resume();
    state.calls.push(`${req.method} ${req.url}`);
    const json = (status: number, body: unknown, errorType?: string): void => {
      res.writeHead(status, {
        'content-type': 'application/json',
        ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
      });
      res.end(JSON.stringify(body));
    };
    if (state.failWith500) return json(500, { message: 'injected failure' }, 'InternalFailureException');
    if (req.method !== 'GET' || !m) return json(400, { message: 'unsupported' }, 'InvalidRequestException');
    const id = decodeURIComponent(m[1]);
    const status = state.certificates.get(id);
    if (!status) return json(404, { message: `certificate ${id} not found` }, 'ResourceNotFoundException');
    return json(200, {
      certificateDescription: {
        certificateId: id,
        certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${id}`,
        status,
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

export function hookEnv(
  tables: RegistryTableNames,
  dynamoEndpoint: string,
  iotEndpoint: string,
  budgetMs = 3000,
): Record<string, string> {
  return {
    [ENV.devicesTable]: tables.devices,
    [ENV.lotsTable]: tables.lots,
    [ENV.eventsTable]: tables.events,
    [ENV.thingNamePrefix]: 'fleet',
    [ENV.serialPattern]: DEFAULT_SERIAL_PATTERN,
    [ENV.templateNames]: `${TEMPLATE},OtherLine`,
    [ENV.ringShares]: '2:18',
    [ENV.hookBudgetMs]: String(budgetMs),
    [ENV.templateArnPrefix]: TEMPLATE_ARN_PREFIX,
    [ENV.unlistedTrailRetentionDays]: String(UNLISTED_RETENTION_DAYS),
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_ENDPOINT_URL_IOT: iotEndpoint,
    AWS_REGION: 'us-east-1',
  };
}

export function lotRecord(lot: string, over: Partial<LotRecord> = {}): LotRecord {
  return {
    lot,
    status: 'OK',
    claimCertificateIds: [`claim-${lot}`],
    requireAttestation: false,
    unitCount: 100,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

export function deviceRecord(serial: string, lot: string, over: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    serial,
    lot,
    hwRev: 'A',
    factoryFirmware: '1.0.0',
    currentFirmware: '1.0.0',
    status: 'MANUFACTURED',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    revision: 0,
    ...over,
  };
}

export async function putLot(
  doc: DynamoDBDocumentClient,
  tables: RegistryTableNames,
  lot: LotRecord,
): Promise<void> {
  // The Lots table stores claim certificate ids as a string set.
  const item = { ...lot, claimCertificateIds: new Set(lot.claimCertificateIds) };
  await doc.send(new PutCommand({ TableName: tables.lots, Item: item }));
}

export async function putDevice(
  doc: DynamoDBDocumentClient,
  tables: RegistryTableNames,
  device: DeviceRecord,
): Promise<void> {
  await doc.send(new PutCommand({ TableName: tables.devices, Item: device }));
}

export interface HookEventInput {
  serial?: string;
  cert: IssuedCertificate;
  claimCertificateId: string;
  hwRev?: string;
  firmware?: string;
  proof?: string;
  templateArn?: string;
  clientId?: string;
}

export function hookEvent(i: HookEventInput): Record<string, unknown> {
  const parameters: Record<string, string> = {
    HardwareRevision: i.hwRev ?? 'A',
    FirmwareVersion: i.firmware ?? '1.0.1',
  };
  if (i.serial !== undefined) parameters.SerialNumber = i.serial;
  if (i.proof !== undefined) parameters.DeviceProof = i.proof;
  return {
    claimCertificateId: i.claimCertificateId,
    certificateId: i.cert.certificateId,
    certificatePem: i.cert.pem,
    templateArn: i.templateArn ?? TEMPLATE_ARN,
    clientId: i.clientId ?? `prov-${Math.random().toString(16).slice(2)}`,
    parameters,
  };
}
