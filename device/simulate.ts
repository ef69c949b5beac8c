/**
 * Entry point of `fleet sim`: run the simulator against a real AWS IoT endpoint (or the lab)
 * from files an operator has: the claim certificate and key of a lot, the CA that signs the
 * endpoint's server certificate (Amazon Root CA 1 for AWS IoT ATS endpoints) and the template name.
 *
 * Thing names come from the RegisterThing answer; the thing session's client id always equals
 * the thing name, which the device policy enforces.
 */
import { readFile } from 'node:fs/promises';
import type { BackoffOptions } from './backoff';
import type { AgentEvent, DeviceFaults, MqttVersion } from './agent';
import { runFleet, formatSummary, type DeviceSpec, type FleetResult, type ProgressEvent } from './fleet-sim';
import { streamFleet, type StreamFleetOptions } from './fleet-stream';
import { generateFactoryKey, parseIdentities, type FactoryIdentity } from './identity';
import { formatLedger, type LedgerReport } from './ledger';
import { checkStreamSettings } from './streaming-device';
import { tlsMaterialProblem, type TlsMaterialPart } from './tls-material';

export interface SimulateOptions {
  /** Data endpoint as `host[:port]` (also `mqtts://host:port`, `[v6]:port`). Port defaults to 8883. */
  endpoint: string;
  /** CA bundle trusted for the server: a PEM file path or PEM text (Amazon Root CA 1 for AWS). */
  ca: string;
  /** Claim certificate: PEM file path or PEM text. */
  claimCert: string;
  /** Claim private key: PEM file path or PEM text. */
  claimKey: string;
  /** Fleet provisioning template name. */
  template: string;
  /** TLS server name, when `endpoint` is an address that differs from the certificate's name. */
  servername?: string;
  /**
   * Identities to enroll: a JSON file path (array of FactoryIdentity, with factory keys for
   * attestation) or the identities themselves. When absent, `serials` or `devices` are used.
   */
  identities?: string | FactoryIdentity[];
  /** Serial numbers to enroll (must be on the manufacturing allowlist to be allowed). */
  serials?: string[];
  /** Number of generated serials `<serialPrefix><n>` when neither identities nor serials are given. @default 1 */
  devices?: number;
  /** @default 'SIM' */
  serialPrefix?: string;
  /** Lot of generated identities (the claim given belongs to it). @default 'LOT-A' */
  lot?: string;
  /** @default 'A' */
  hwRev?: string;
  /** @default '1.0.0' */
  firmware?: string;
  /** Generate factory keys for generated identities (their public keys are not on any manifest). @default false */
  withFactoryKeys?: boolean;
  /** Fault modes applied to every device (scenario testing). */
  faults?: DeviceFaults;
  /** @default 4 */
  concurrency?: number;
  backoff?: Partial<BackoffOptions>;
  /** Client id prefix of the claim sessions. @default DEFAULT_CLAIM_CLIENT_ID_PREFIX of core/model.ts */
  claimClientIdPrefix?: string;
  /** Topic prefix of the `dt/<prefix>/<thing>/…` topics. @default DEFAULT_TOPIC_PREFIX of core/model.ts */
  topicPrefix?: string;
  /** @default true */
  lastWill?: boolean;
  /** Write issued certificates and keys here (mode 0600). */
  certDir?: string;
  /** Per-device random delay before the first connect, in ms. @default 0 */
  startupJitterMs?: number;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** @default 15000 */
  responseTimeoutMs?: number;
  /** MQTT version of every session (claim and thing). @default '3.1.1' */
  mqttVersion?: MqttVersion;
  /** Progress bar on stdout: `'auto'` draws it only on a TTY. @default 'auto' */
  progressBar?: boolean | 'auto';
  onProgress?: (event: ProgressEvent) => void;
  onEvent?: (event: AgentEvent) => void;
  /**
   * After enrollment, stream telemetry and health from every enrolled unit for `durationMs`
   * (see streamFleet), then close the sessions. The thing sessions stay open from enrollment on.
   */
  stream?: Omit<StreamFleetOptions, 'agents' | 'durationMs'> & { durationMs: number };
  /** With `stream`: called with the enrollment summary once enrollment is done, before streaming. */
  onEnrolled?: (text: string, result: FleetResult) => void;
}

export interface SimulateResult extends FleetResult {
  /** Readable summary, as printed by `fleet sim`. */
  text: string;
  /** The publish ledger of the streaming phase (with `stream`). */
  ledger?: LedgerReport;
}

/** Parse `host[:port]`; the port defaults to 8883. */
export function parseEndpoint(value: string): { host: string; port: number } {
  const v = value
    .trim()
    .replace(/^(mqtts?|ssl|tls):\/\//, '')
    .replace(/\/.*$/, '');
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  const [host, portText] = v6 ? [v6[1], v6[2]] : (v.split(/:(?=\d+$)/) as [string, string | undefined]);
  if (!host || /[\s/]/.test(host)) throw new Error(`Invalid endpoint '${value}': expected host[:port]`);
  const port = portText === undefined ? 8883 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`Invalid port in endpoint '${value}'`);
  return { host, port };
}

/** How {@link simulateAgainstEndpoint}'s errors name each part of the TLS material. */
const MATERIAL_NAMES: Record<TlsMaterialPart, string> = {
  ca: 'CA',
  cert: 'claim certificate',
  key: 'claim key',
  swapped: 'claim certificate and claim key are swapped',
  keyMismatch: 'claim certificate and claim key',
};

/** PEM text as is, otherwise read the file. */
export async function readPem(value: string, what: string): Promise<string> {
  if (value.includes('-----BEGIN')) return value;
  try {
    const text = await readFile(value, 'utf8');
    if (!text.includes('-----BEGIN')) throw new Error('no PEM block');
    return text;
  } catch (err) {
    throw new Error(`${what}: cannot read PEM from '${value}' (${(err as Error).message})`);
  }
}

async function resolveIdentities(o: SimulateOptions): Promise<FactoryIdentity[]> {
  if (Array.isArray(o.identities)) return o.identities;
  if (typeof o.identities === 'string')
    return parseIdentities(await readFile(o.identities, 'utf8'), o.identities);
  const make = (serial: string): FactoryIdentity => ({
    serial,
    lot: o.lot ?? 'LOT-A',
    hwRev: o.hwRev ?? 'A',
    firmware: o.firmware ?? '1.0.0',
    ...(o.withFactoryKeys ? { factoryKey: generateFactoryKey() } : {}),
  });
  if (o.serials?.length) return o.serials.map(make);
  const n = o.devices ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`devices must be a positive integer, got ${n}`);
  const width = Math.max(6, String(n).length);
  return Array.from({ length: n }, (_, i) =>
    make(`${o.serialPrefix ?? 'SIM'}${String(i + 1).padStart(width, '0')}`),
  );
}

/**
 * Enroll devices against an AWS IoT endpoint (or the lab) with one claim certificate.
 * Every device uses the given claim, whatever its lot. Returns per-device results, the summary
 * and its readable form; with `keepConnected` unset the thing sessions are already closed.
 */
export async function simulateAgainstEndpoint(options: SimulateOptions): Promise<SimulateResult> {
  const { host, port } = parseEndpoint(options.endpoint);
  // Read all three, then report every unreadable one at once, in a fixed order.
  const read = await Promise.allSettled([
    readPem(options.ca, 'CA'),
    readPem(options.claimCert, 'claim certificate'),
    readPem(options.claimKey, 'claim key'),
  ]);
  const unreadable = read.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (unreadable.length > 0) throw new Error(unreadable.join('; '));
  const [caPem, certPem, keyPem] = read.map((r) => (r as PromiseFulfilledResult<string>).value);
  // Local mistakes stop here, before any device connects: never counted as denials or give-ups.
  const bad = tlsMaterialProblem({ caPem, certPem, keyPem });
  if (bad) throw new Error(`${MATERIAL_NAMES[bad.part]}: ${bad.problem}`);
  if (!options.template) throw new Error('template is required (the fleet provisioning template name)');
  if (options.stream) {
    checkStreamSettings(options.stream);
    const d = options.stream.durationMs;
    if (!Number.isFinite(d) || d < 0) throw new Error(`stream.durationMs must be a number ≥ 0, got ${d}`);
  }
  const identities = await resolveIdentities(options);
  const claim = { certPem, keyPem };
  const claims: Record<string, typeof claim> = {};
  for (const id of identities) claims[id.lot] = claim;
  if (options.faults?.wrongLotClaim) claims[options.faults.wrongLotClaim] = claim;
  const devices: DeviceSpec[] = identities.map((identity) => ({ identity, faults: options.faults }));
  const result = await runFleet({
    devices,
    endpoint: { host, port, caPem, servername: options.servername },
    claims,
    templateName: options.template,
    concurrency: options.concurrency ?? 4,
    backoff: options.backoff,
    claimClientIdPrefix: options.claimClientIdPrefix,
    topicPrefix: options.topicPrefix,
    lastWill: options.lastWill,
    certDir: options.certDir,
    keepConnected: options.stream !== undefined,
    connectTimeoutMs: options.connectTimeoutMs,
    responseTimeoutMs: options.responseTimeoutMs,
    mqttVersion: options.mqttVersion,
    startupJitterMs: options.startupJitterMs,
    progressBar: options.progressBar ?? 'auto',
    onProgress: options.onProgress,
    onEvent: options.onEvent,
  });
  const text = formatSummary(result.summary);
  if (!options.stream || result.agents.size === 0) return { ...result, text };
  options.onEnrolled?.(text, result);
  let ledger: LedgerReport;
  try {
    ledger = await streamFleet({ ...options.stream, agents: result.agents.values() }).done;
  } finally {
    await result.close();
  }
  return { ...result, ledger, text: `${text}\n${formatLedger(ledger)}` };
}
