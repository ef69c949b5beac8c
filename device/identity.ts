/**
 * Factory identities of simulated devices: what a unit knows when it leaves the line (serial,
 * lot, hardware revision, factory firmware and, optionally, a factory ECDSA P-256 key pair whose
 * public half is listed in the manufacturing manifest for attestation).
 */
import { generateKeyPairSync } from 'node:crypto';
import { z } from 'zod';

/** Factory attestation key pair (PEM). The private key is PKCS#8, the public key SPKI. */
export interface FactoryKey {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface FactoryIdentity {
  serial: string;
  lot: string;
  hwRev: string;
  /** Firmware version the unit runs (semantic version). */
  firmware: string;
  factoryKey?: FactoryKey;
}

/** One manifest line for an identity, as the manifest import expects it. */
export interface ManifestEntry {
  serial: string;
  lot: string;
  hwRev: string;
  firmware: string;
  /** Factory public key (PEM SPKI), present when the identity has a factory key. */
  publicKey?: string;
}

/** Generate a factory ECDSA P-256 key pair. */
export function generateFactoryKey(): FactoryKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

export interface GenerateIdentitiesOptions {
  /** Number of identities. */
  count: number;
  /** Lots to spread the units over, round robin. @default ['LOT-A'] */
  lots?: string[];
  /** Hardware revisions to spread the units over, round robin. @default ['A'] */
  hwRevs?: string[];
  /** Factory firmware. @default '1.0.0' */
  firmware?: string;
  /** Serial prefix; serials are `<prefix><zero-padded index>`. @default 'SN' */
  serialPrefix?: string;
  /** First index. @default 1 */
  startAt?: number;
  /** Generate a factory key per unit. @default true */
  withFactoryKey?: boolean;
}

/** Generate `count` factory identities with deterministic serials. */
export function generateIdentities(options: GenerateIdentitiesOptions): FactoryIdentity[] {
  const lots = options.lots?.length ? options.lots : ['LOT-A'];
  const hwRevs = options.hwRevs?.length ? options.hwRevs : ['A'];
  const prefix = options.serialPrefix ?? 'SN';
  const start = options.startAt ?? 1;
  const width = Math.max(6, String(start + options.count).length);
  const out: FactoryIdentity[] = [];
  for (let i = 0; i < options.count; i++) {
    const n = start + i;
    out.push({
      serial: `${prefix}${String(n).padStart(width, '0')}`,
      lot: lots[i % lots.length],
      // Offset by lot index so every lot sees every revision.
      hwRev: hwRevs[(i + Math.floor(i / lots.length)) % hwRevs.length],
      firmware: options.firmware ?? '1.0.0',
      factoryKey: options.withFactoryKey === false ? undefined : generateFactoryKey(),
    });
  }
  return out;
}

/** Manifest line for an identity (never includes the private key). */
export function toManifestEntry(identity: FactoryIdentity): ManifestEntry {
  return {
    serial: identity.serial,
    lot: identity.lot,
    hwRev: identity.hwRev,
    firmware: identity.firmware,
    ...(identity.factoryKey ? { publicKey: identity.factoryKey.publicKeyPem } : {}),
  };
}

const factoryKeySchema = z.object({ privateKeyPem: z.string().min(1), publicKeyPem: z.string().min(1) });
/** Schema of an identities file: a JSON array of {@link FactoryIdentity}. */
export const factoryIdentitiesSchema = z.array(
  z.object({
    serial: z.string().min(1),
    lot: z.string().min(1),
    hwRev: z.string().min(1),
    firmware: z.string().min(1),
    factoryKey: factoryKeySchema.optional(),
  }),
);

/** Parse and validate an identities document (e.g. the content of an identities JSON file). */
export function parseIdentities(json: string, source = 'identities'): FactoryIdentity[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new Error(`${source}: not JSON (${(err as Error).message})`);
  }
  const parsed = factoryIdentitiesSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: invalid identity at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
