/**
 * `fleet sim`: enroll simulated devices against an AWS IoT endpoint (or the local lab) with a
 * lot's claim certificate, through the real fleet provisioning MQTT API, and optionally stream
 * telemetry and health from the enrolled units (`--stream-seconds`). Wraps
 * `simulateAgainstEndpoint` (device/simulate.ts).
 *
 * The template (and its claim client id prefix), the topic prefix and the telemetry rule names
 * come from the stack, like every other contract value. Exit code 0 when every unit enrolled
 * (and, when streaming, every unit got at least one message acked), 1 otherwise; the summary
 * names the reason of each denial, the cause of each give-up and the error of each silent unit.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { FleetOtaOptions } from '../../device/fleet-stream';
import { parseIdentities, type FactoryIdentity } from '../../device/identity';
import { OTA_PROFILES, parseOtaProfiles } from '../../device/ota-profiles';
import { formatLedger, silentDevices, type LedgerReport } from '../../device/ledger';
import type { SimulateOptions, SimulateResult } from '../../device/simulate';
import { BEHAVIOUR_PROFILES, DEFAULT_PROFILE_SETTINGS, parseFirmwareProfiles } from '../../device/profiles';
import {
  DEFAULT_MQTT_VERSION,
  MQTT_VERSIONS,
  parseMqttVersion,
  type MqttVersion,
} from '../../device/mqtt-protocol';
import { TELEMETRY_LIMITS } from '../../core/telemetry';
import { tlsMaterialProblem, type TlsMaterialPart } from '../../device/tls-material';
import { detectFormat, formatIssue, parseManifest } from '../../core/manifest';
import { ENV } from '../../core/env';
import { DEFAULT_STACK_NAME, STACK_OUTPUTS, type TelemetryRulesOutput } from '../../core/stack-outputs';
import { CLI_ENV, CliContext, RESOURCE_SOURCES, requireResource, ResourceKey } from '../context';
import { CliError, EXIT_CODES, UsageError } from '../errors';
import { InputFile, readInputFile } from '../files';
import { collect, examples, positiveInt, RunCommand } from '../registration';
import { pickTemplate } from './claim';

export interface SimOptions {
  /** Data endpoint `host[:port]` (port 8883 by default). */
  endpoint: string;
  claimCert: string;
  claimKey: string;
  /** CA that signs the endpoint's server certificate (Amazon Root CA 1 for AWS IoT). */
  ca: string;
  /** Template name; optional when the stack has exactly one. */
  template?: string;
  /**
   * Client id prefix of the template's claim sessions. With `template`, the two stand for the
   * stack's ProvisioningTemplates output (no stack needed); alone, it overrides the template's.
   */
  claimClientIdPrefix?: string;
  /** Serials to enroll. */
  serials?: string[];
  /** A manufacturing manifest (CSV/JSON): enroll its units (without factory keys). */
  manifest?: string;
  /** An identities JSON file of the simulator (with factory private keys, for attestation). */
  identities?: string;
  /** Generated units when no serials, manifest or identities are given. @default 1 */
  devices?: number;
  /** Lot of generated units and of --serial units. */
  lot?: string;
  /** Hardware revision of generated and --serial units. */
  hwRev?: string;
  /** Firmware version of generated and --serial units. */
  firmware?: string;
  concurrency?: number;
  servername?: string;
  certDir?: string;
  /** Enrollment attempts per unit before it gives up (the first one included). @default 8 */
  maxAttempts?: number;
  json?: boolean;
  /** Stream telemetry and health from the enrolled units for this many seconds. Off when absent. */
  streamSeconds?: number;
  /** Seconds between two readings. @default 10 */
  telemetryIntervalS?: number;
  /** Readings per telemetry message (1 to 100). @default 6 */
  readingsPerMessage?: number;
  /** Seconds between two health reports (one more follows every connect). @default 300 */
  healthIntervalS?: number;
  /** Publish on `dt/<prefix>/<thing>/…` instead of Basic Ingest. */
  direct?: boolean;
  /** `<firmware>=<healthy|flaky|crash-looping>`, repeatable. */
  profiles?: string[];
  /** Seed of the simulation's random draws (same seed, same values and faults). */
  seed?: string;
  /** MQTT version of every session, as given (`3.1.1` or `5`). @default '3.1.1' */
  mqtt?: string;
  /** `<firmware>=<profile>[:<percent>]` of the OTA agent, repeatable (see ota-profiles.ts). */
  otaProfiles?: string[];
  /** Release public key (PEM file or text): with it every streaming unit runs firmware-update jobs. */
  releaseKey?: string;
  /** Step timer of the OTA agent's IN_PROGRESS reports, minutes. @default 10 */
  otaStepTimeoutMin?: number;
}

/** Default of --ota-step-timeout, minutes. */
export const SIM_OTA_STEP_TIMEOUT_MIN = 10;
/** Largest stepTimeoutInMinutes AWS IoT Jobs accepts (7 days). */
const MAX_STEP_TIMEOUT_MIN = 10_080;

export type SimResult = Omit<SimulateResult, 'agents' | 'close'> & {
  /** 0 when every unit enrolled (and, streaming, every unit got a message acked); 1 otherwise. */
  exitCode: number;
};

/** Streaming defaults of `fleet sim`, in seconds. */
export const SIM_STREAM_DEFAULTS = { telemetryIntervalS: 10, readingsPerMessage: 6, healthIntervalS: 300 };

/** The flags that only mean something with --stream-seconds. */
const STREAM_FLAGS = [
  ['--telemetry-interval', 'telemetryIntervalS'],
  ['--readings-per-message', 'readingsPerMessage'],
  ['--health-interval', 'healthIntervalS'],
  ['--direct', 'direct'],
  ['--profile', 'profiles'],
  ['--seed', 'seed'],
  ['--release-key', 'releaseKey'],
  ['--ota-profile', 'otaProfiles'],
  ['--ota-step-timeout', 'otaStepTimeoutMin'],
] as const;

/** Check the streaming flags (no AWS, no connection). Throws a UsageError naming the flag and the fix. */
export function checkStreamFlags(opts: SimOptions): void {
  if (opts.streamSeconds === undefined) {
    const given = STREAM_FLAGS.filter(([, key]) => {
      const v = opts[key];
      return v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0);
    }).map(([flag]) => flag);
    if (given.length > 0)
      throw new UsageError(
        `${given.join(', ')} only apply when streaming; add --stream-seconds N (e.g. --stream-seconds 60)`,
      );
    return;
  }
  if (!Number.isInteger(opts.streamSeconds) || opts.streamSeconds < 1)
    throw new UsageError(`--stream-seconds "${opts.streamSeconds}" must be a positive whole number, e.g. 60`);
  for (const [flag, value] of [
    ['--telemetry-interval', opts.telemetryIntervalS],
    ['--health-interval', opts.healthIntervalS],
  ] as const) {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0.001))
      throw new UsageError(`${flag} "${value}" must be a number of seconds ≥ 0.001, e.g. ${flag} 5`);
  }
  const k = opts.readingsPerMessage;
  if (k !== undefined && (!Number.isInteger(k) || k < 1 || k > TELEMETRY_LIMITS.maxReadingsPerMessage))
    throw new UsageError(
      `--readings-per-message "${k}" must be a whole number from 1 to ${TELEMETRY_LIMITS.maxReadingsPerMessage}, e.g. 6`,
    );
  try {
    parseFirmwareProfiles(opts.profiles ?? []);
  } catch (err) {
    throw new UsageError(`--profile ${(err as Error).message}`);
  }
  checkOtaFlags(opts);
}

/** Check the OTA flags (no file read). Throws a UsageError naming the flag and the fix. */
export function checkOtaFlags(
  opts: Pick<SimOptions, 'otaProfiles' | 'releaseKey' | 'otaStepTimeoutMin'>,
): void {
  const given = [
    opts.otaProfiles?.length ? '--ota-profile' : undefined,
    opts.otaStepTimeoutMin !== undefined ? '--ota-step-timeout' : undefined,
  ].filter(Boolean);
  if (!opts.releaseKey && given.length > 0)
    throw new UsageError(
      `${given.join(', ')} only apply to firmware updates; add --release-key FILE (the release public key PEM devices verify images with)`,
    );
  try {
    parseOtaProfiles(opts.otaProfiles ?? []);
  } catch (err) {
    throw new UsageError(`--ota-profile ${(err as Error).message}`);
  }
  const t = opts.otaStepTimeoutMin;
  if (t !== undefined && (!Number.isInteger(t) || t < 1 || t > MAX_STEP_TIMEOUT_MIN))
    throw new UsageError(
      `--ota-step-timeout "${t}" must be a whole number of minutes from 1 to ${MAX_STEP_TIMEOUT_MIN}, e.g. --ota-step-timeout ${SIM_OTA_STEP_TIMEOUT_MIN}`,
    );
}

/** The release public key of --release-key: an ECDSA P-256 public key, or a UsageError naming the fix. */
export async function simReleaseKey(value: string): Promise<KeyObject> {
  const { pem, name } = await simPem(value, 'release public key', '--release-key');
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new UsageError(
      `${name} is not a public key in PEM; give the release public key (openssl ec -in release.key -pubout -out release.pub.pem)`,
    );
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new UsageError(
      `${name} is not an ECDSA P-256 key; releases are signed with P-256 (fleet firmware publish --signing-key), give its public half`,
    );
  return key;
}

/**
 * The OTA options of the streaming units for `opts` (after checkSimOptions), or undefined without
 * --release-key. Hardware revisions come from the units' identities, else --hw-rev (default A).
 */
export async function simOta(
  opts: SimOptions,
  identities: string | FactoryIdentity[] | undefined,
): Promise<FleetOtaOptions | undefined> {
  if (!opts.releaseKey || opts.streamSeconds === undefined) return undefined;
  const list =
    typeof identities === 'string'
      ? parseIdentities(
          await readInputFile({ path: identities, what: 'identities file', flag: '--identities' }),
          identities,
        )
      : identities;
  const hwRevs = new Map((list ?? []).map((id) => [id.serial, id.hwRev]));
  const fallback = opts.hwRev ?? 'A';
  return {
    publicKey: await simReleaseKey(opts.releaseKey),
    hwRevOf: (serial) => hwRevs.get(serial) ?? fallback,
    profiles: parseOtaProfiles(opts.otaProfiles ?? []),
    stepTimeoutInMinutes: opts.otaStepTimeoutMin ?? SIM_OTA_STEP_TIMEOUT_MIN,
    ...(opts.seed ? { seed: opts.seed } : {}),
  };
}

/** The MQTT version `--mqtt` names, or a UsageError naming the flag and the fix. */
export function simMqttVersion(opts: Pick<SimOptions, 'mqtt'>): MqttVersion {
  if (opts.mqtt === undefined) return DEFAULT_MQTT_VERSION;
  try {
    return parseMqttVersion(opts.mqtt);
  } catch {
    throw new UsageError(
      `--mqtt "${opts.mqtt}" is not an MQTT version the simulator speaks; use ${MQTT_VERSIONS.map((v) => `--mqtt ${v}`).join(' or ')}`,
    );
  }
}

/** Seconds → milliseconds, whole. */
const ms = (s: number): number => Math.round(s * 1000);

/** The streaming options of simulateAgainstEndpoint for `opts` (after checkStreamFlags). */
export function simStream(opts: SimOptions, ctx: CliContext): SimulateOptions['stream'] {
  if (opts.streamSeconds === undefined) return undefined;
  let rules: TelemetryRulesOutput | undefined;
  if (!opts.direct) {
    if (!ctx.resources.telemetryRules) {
      const s = RESOURCE_SOURCES.telemetryRules;
      throw new UsageError(
        `streaming over Basic Ingest needs the telemetry rule names: pass ${s.flag} '{"telemetry":"fleet_telemetry","health":"fleet_health"}', ` +
          `set ${s.env}, deploy the stack with output ${s.output}, or publish to the direct topics with --direct`,
      );
    }
    rules = ctx.resources.telemetryRules;
  }
  return {
    durationMs: ms(opts.streamSeconds),
    readingIntervalMs: ms(opts.telemetryIntervalS ?? SIM_STREAM_DEFAULTS.telemetryIntervalS),
    readingsPerMessage: opts.readingsPerMessage ?? SIM_STREAM_DEFAULTS.readingsPerMessage,
    healthIntervalMs: ms(opts.healthIntervalS ?? SIM_STREAM_DEFAULTS.healthIntervalS),
    delivery: opts.direct ? 'direct' : 'basicIngest',
    ...(rules ? { rules } : {}),
    profiles: parseFirmwareProfiles(opts.profiles ?? []),
    ...(opts.seed ? { seed: opts.seed } : {}),
  };
}

/**
 * Profiles that cannot show within the run: a crash-looping unit first crashes
 * `crashLooping.crashEveryMs` after its boot, a flaky link first drops after at least half of
 * `flaky.dropEveryMs`. Said before streaming starts, so a quiet run is not mistaken for a healthy one.
 */
export function profileWarnings(profiles: Readonly<Record<string, string>>, streamSeconds: number): string[] {
  const runMs = streamSeconds * 1000;
  const out: string[] = [];
  for (const [fw, profile] of Object.entries(profiles)) {
    const firstMs =
      profile === 'crash-looping'
        ? DEFAULT_PROFILE_SETTINGS.crashLooping.crashEveryMs
        : profile === 'flaky'
          ? DEFAULT_PROFILE_SETTINGS.flaky.dropEveryMs / 2
          : undefined;
    if (firstMs !== undefined && runMs <= firstMs)
      out.push(
        `--profile ${fw}=${profile}: nothing will show in ${streamSeconds} s (the first ${profile === 'flaky' ? 'link drop' : 'crash'} comes about ${Math.round(firstMs / 1000)} s after a boot); use --stream-seconds ${Math.ceil((firstMs * 3) / 1000)} or more`,
      );
  }
  return out;
}

/**
 * Check what `fleet sim` is given, without AWS and before any connection: the required flags, the
 * unit sources, the endpoint, and the PEM files (the claim certificate, its key, that they belong
 * together, and the CA). Throws a {@link UsageError} of one line naming the flag, the file and the fix.
 */
export async function checkSimOptions(opts: SimOptions): Promise<void> {
  for (const [flag, value] of [
    ['--endpoint', opts.endpoint],
    ['--claim-cert', opts.claimCert],
    ['--claim-key', opts.claimKey],
    ['--ca', opts.ca],
  ] as const) {
    if (!value) throw new UsageError(`fleet sim needs ${flag}; see fleet sim --help`);
  }
  const sources = [opts.serials?.length ? 1 : 0, opts.manifest ? 1 : 0, opts.identities ? 1 : 0].reduce(
    (a, b) => a + b,
    0,
  );
  if (sources > 1) throw new UsageError('give only one of --serial, --manifest and --identities');
  for (const [flag, value] of [
    ['--devices', opts.devices],
    ['--max-attempts', opts.maxAttempts],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new UsageError(`${flag} "${value}" must be a positive whole number`);
    }
  }
  checkStreamFlags(opts);
  simMqttVersion(opts);
  // Loaded on demand: the MQTT/X.509 stack is only needed by this command.
  const { parseEndpoint } = await import('../../device/simulate');
  try {
    parseEndpoint(opts.endpoint);
  } catch (err) {
    throw new UsageError(
      `--endpoint ${opts.endpoint}: ${(err as Error).message}; e.g. --endpoint xxxx-ats.iot.eu-west-1.amazonaws.com or --endpoint localhost:8883`,
    );
  }
  await checkSimPem(opts);
  if (opts.releaseKey) await simReleaseKey(opts.releaseKey);
}

/** One PEM input of `fleet sim`: its text, and how messages name it. */
async function simPem(value: string, what: string, flag: string): Promise<{ pem: string; name: string }> {
  if (value.includes('-----BEGIN')) return { pem: value, name: `${flag} (PEM text)` };
  return { pem: await readInputFile({ path: value, what, flag }), name: `${flag} ${value}` };
}

async function checkSimPem(opts: SimOptions): Promise<void> {
  const ca = await simPem(opts.ca, 'CA certificate', '--ca');
  const cert = await simPem(opts.claimCert, 'claim certificate', '--claim-cert');
  const key = await simPem(opts.claimKey, 'claim key', '--claim-key');
  const bad = tlsMaterialProblem({ caPem: ca.pem, certPem: cert.pem, keyPem: key.pem });
  if (!bad) return;
  const fromClaimCreate = 'written by "fleet claim create"';
  const message: Record<TlsMaterialPart, string> = {
    cert: `${cert.name} ${bad.problem}; give the claim certificate (claim.cert.pem ${fromClaimCreate})`,
    key: `${key.name} ${bad.problem}; give the claim private key (claim.private.key ${fromClaimCreate})`,
    swapped: `${cert.name} holds a private key and ${key.name} a certificate: they are swapped; pass --claim-cert ${opts.claimKey} --claim-key ${opts.claimCert}`,
    keyMismatch: `${key.name} is not the private key of ${cert.name}; give the claim.private.key ${fromClaimCreate} together with that certificate`,
    ca: `${ca.name} ${bad.problem}; give the CA that signs the endpoint's server certificate (AmazonRootCA1.pem for AWS IoT, the lab's ca.pem for the lab)`,
  };
  throw new UsageError(message[bad.part]);
}

/** The template and claim client id prefix: both flags, or the stack's templates (flag overrides). */
function simTemplate(
  opts: SimOptions,
  ctx: CliContext,
): { templateName: string; claimClientIdPrefix: string } {
  if (opts.template && opts.claimClientIdPrefix)
    return { templateName: opts.template, claimClientIdPrefix: opts.claimClientIdPrefix };
  const picked = pickTemplate(requireResource(ctx, 'provisioningTemplates'), opts.template);
  return {
    templateName: picked.templateName,
    claimClientIdPrefix: opts.claimClientIdPrefix ?? picked.claimClientIdPrefix,
  };
}

/** Whether `fleet sim` needs the stack's ProvisioningTemplates (not when both flags stand for it). */
export function simNeeds(o: {
  template?: string;
  claimClientIdPrefix?: string;
  manifest?: string;
  streamSeconds?: number;
  direct?: boolean;
}): ResourceKey[] {
  const needs: ResourceKey[] = ['topicPrefix'];
  if (!(o.template && o.claimClientIdPrefix)) needs.unshift('provisioningTemplates');
  if (o.manifest) needs.push('serialPattern');
  if (o.streamSeconds !== undefined && !o.direct) needs.push('telemetryRules');
  return needs;
}

export async function sim(opts: SimOptions, ctx: CliContext): Promise<SimResult> {
  await checkSimOptions(opts);
  const { templateName: template, claimClientIdPrefix } = simTemplate(opts, ctx);
  const topicPrefix = requireResource(ctx, 'topicPrefix');
  const stream = simStream(opts, ctx);
  if (stream)
    for (const line of profileWarnings(stream.profiles ?? {}, opts.streamSeconds ?? 0)) ctx.out.warn(line);
  const mqttVersion = simMqttVersion(opts);
  let identities: string | FactoryIdentity[] | undefined = opts.identities;
  if (opts.manifest) identities = await identitiesFromManifest(opts.manifest, ctx);
  const ota = stream ? await simOta(opts, identities) : undefined;
  let result: SimulateResult;
  let enrollmentPrinted = false;
  try {
    const { simulateAgainstEndpoint } = await import('../../device/simulate');
    result = await simulateAgainstEndpoint({
      endpoint: opts.endpoint,
      ca: opts.ca,
      claimCert: opts.claimCert,
      claimKey: opts.claimKey,
      template,
      claimClientIdPrefix,
      topicPrefix,
      ...(identities ? { identities } : {}),
      ...(opts.serials?.length ? { serials: opts.serials } : {}),
      ...(opts.devices ? { devices: opts.devices } : {}),
      ...(opts.lot ? { lot: opts.lot } : {}),
      ...(opts.hwRev ? { hwRev: opts.hwRev } : {}),
      ...(opts.firmware ? { firmware: opts.firmware } : {}),
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
      ...(opts.certDir ? { certDir: opts.certDir } : {}),
      ...(opts.maxAttempts ? { backoff: { maxAttempts: opts.maxAttempts } } : {}),
      mqttVersion,
      ...(stream ? { stream: { ...stream, ...(ota ? { ota } : {}) } } : {}),
      // Streaming takes a while: say how enrollment went before it starts.
      ...(stream && !opts.json
        ? {
            onEnrolled: (text: string, r: { agents: Map<string, unknown> }) => {
              for (const line of text.split('\n')) ctx.out.info(line);
              ctx.out.info(`streaming from ${r.agents.size} unit(s) for ${opts.streamSeconds} s ...`);
              enrollmentPrinted = true;
            },
          }
        : {}),
      progressBar: false,
    });
  } catch (err) {
    throw new CliError(
      `fleet sim could not start: ${(err as Error).message}; check the endpoint, files and template`,
    );
  }
  await result.close();
  const { agents: _agents, close: _close, ...rest } = result;
  const allEnrolled = rest.summary.enrolled === rest.summary.attempted;
  const silent = rest.ledger ? silentDevices(rest.ledger).length : 0;
  const exitCode = allEnrolled && silent === 0 ? EXIT_CODES.ok : EXIT_CODES.failed;
  if (opts.json)
    ctx.out.json(rest.ledger ? { ...rest.summary, stream: ledgerTotals(rest.ledger) } : rest.summary);
  else {
    const text = enrollmentPrinted && rest.ledger ? formatLedger(rest.ledger) : rest.text;
    for (const line of text.split('\n')) ctx.out.info(line);
  }
  return { ...rest, exitCode };
}

/** The ledger's counts without its keys (which `--json` does not print: one per message). */
function ledgerTotals(l: LedgerReport): Omit<ReturnType<LedgerReport['toJSON']>, 'keys'> {
  return {
    devices: l.devices,
    telemetry: l.telemetry,
    health: l.health,
    links: l.links,
    byDevice: l.byDevice,
  };
}

async function identitiesFromManifest(file: string, ctx: CliContext): Promise<FactoryIdentity[]> {
  const text = await readInputFile({ path: file, what: 'manifest', flag: '--manifest' });
  const parsed = parseManifest(text, detectFormat(file, text), {
    serialPattern: requireResource(ctx, 'serialPattern'),
  });
  if (parsed.issues.length > 0) {
    for (const issue of parsed.issues) ctx.out.warn(formatIssue(issue));
    throw new UsageError(`manifest ${file} has ${parsed.issues.length} problem(s); fix them (see above)`);
  }
  if (parsed.rows.length === 0)
    throw new UsageError(`manifest ${file} lists no units; give a manifest with at least one row`);
  return parsed.rows.map((r) => ({
    serial: r.serial,
    lot: r.lot,
    hwRev: r.hwRev,
    firmware: r.factoryFirmware,
  }));
}

/** The files `fleet sim` reads (PEM text given in-process is not a file). */
function simFiles(o: Record<string, string | undefined>): InputFile[] {
  const files: InputFile[] = [];
  for (const [key, what, flag] of [
    ['ca', 'CA certificate', '--ca'],
    ['claimCert', 'claim certificate', '--claim-cert'],
    ['claimKey', 'claim key', '--claim-key'],
    ['manifest', 'manifest', '--manifest'],
    ['identities', 'identities file', '--identities'],
    ['releaseKey', 'release public key', '--release-key'],
  ] as const) {
    const path = o[key];
    if (path && !path.includes('-----BEGIN')) files.push({ path, what, flag });
  }
  return files;
}

/** Commander parser for a number of seconds (fractions allowed, at least 1 ms). */
function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!/^\s*\d*\.?\d+\s*$/.test(value) || !(n >= 0.001))
    throw new InvalidArgumentError('use a number of seconds of at least 0.001, e.g. 5 or 0.5');
  return n;
}

/** The example of `fleet sim` without a stack to read (the contract values given as flags). */
const OFFLINE_EXAMPLE =
  'fleet sim --endpoint localhost:8883 --ca lab-ca.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key ' +
  '--template fleet-default --claim-client-id-prefix prov- --topic-prefix fleet --serial SN-000001';

/** `fleet sim`. */
export function registerSim(program: Command, run: RunCommand): void {
  program
    .command('sim')
    .description(
      'enroll simulated devices against an AWS IoT endpoint or the local lab (fleet provisioning MQTT API), then optionally stream telemetry and health',
    )
    .requiredOption('--endpoint <host[:port]>', 'IoT data endpoint (port 8883 by default)')
    .requiredOption('--claim-cert <file>', 'claim certificate PEM (from fleet claim create)')
    .requiredOption('--claim-key <file>', 'claim private key PEM')
    .requiredOption('--ca <file>', 'CA of the server certificate (AmazonRootCA1.pem for AWS IoT)')
    .option('--template <name>', 'provisioning template (default: the only one of the stack)')
    .option(
      '--claim-client-id-prefix <prefix>',
      "client id prefix of the template's claim sessions (with --template: no stack needed)",
    )
    .option('--serial <serial>', 'serial to enroll (repeatable, or comma-separated)', collect)
    .option('--manifest <file>', "enroll a manifest's units (no factory keys)")
    .option('--identities <file>', 'simulator identities JSON (with factory keys, for attestation)')
    .option('--devices <n>', 'generated units when no serials are given', positiveInt)
    .option('--lot <lot>', 'lot of --serial and generated units')
    .option('--hw-rev <rev>', 'hardware revision of --serial and generated units (default A)')
    .option('--firmware <version>', 'firmware of --serial and generated units (default 1.0.0)')
    .option('--concurrency <n>', 'devices enrolling at once', positiveInt)
    .option('--max-attempts <n>', 'enrollment attempts per unit before it gives up (default 8)', positiveInt)
    .option('--servername <name>', 'TLS server name when --endpoint is an address')
    .option('--cert-dir <dir>', 'write issued device certificates and keys here (mode 0600)')
    .option(
      '--stream-seconds <n>',
      'after enrollment, stream telemetry and health for n seconds',
      positiveInt,
    )
    .option(
      '--telemetry-interval <s>',
      `seconds between readings (default ${SIM_STREAM_DEFAULTS.telemetryIntervalS})`,
      positiveSeconds,
    )
    .option(
      '--readings-per-message <k>',
      `readings per telemetry message, 1 to ${TELEMETRY_LIMITS.maxReadingsPerMessage} (default ${SIM_STREAM_DEFAULTS.readingsPerMessage})`,
      positiveInt,
    )
    .option(
      '--health-interval <s>',
      `seconds between health reports (default ${SIM_STREAM_DEFAULTS.healthIntervalS}; one more after every connect)`,
      positiveSeconds,
    )
    .option('--direct', 'publish on dt/<prefix>/<thing>/... instead of Basic Ingest (charged as messaging)')
    .option(
      '--profile <fw=profile>',
      `behaviour of a firmware version: ${BEHAVIOUR_PROFILES.join(', ')} (repeatable; default healthy)`,
      collect,
    )
    .option('--seed <text>', 'seed of the random draws: the same seed replays the same values and faults')
    .option(
      '--release-key <file>',
      'release public key (ECDSA P-256 PEM): every streaming unit runs the firmware-update jobs AWS IoT Jobs sends it',
    )
    .option(
      '--ota-profile <fw=profile>',
      `what a firmware version does when installed: ${OTA_PROFILES.join(', ')}; install-failure takes a percent (3.0.0=install-failure:30) (repeatable; default good)`,
      collect,
    )
    .option(
      '--ota-step-timeout <minutes>',
      `step timer of each IN_PROGRESS report (default ${SIM_OTA_STEP_TIMEOUT_MIN})`,
      positiveInt,
    )
    .option(
      '--mqtt <version>',
      `MQTT version of every session, claim and thing: ${MQTT_VERSIONS.join(' or ')} (default ${DEFAULT_MQTT_VERSION})`,
    )
    .option(
      '--telemetry-rules <json>',
      `rule name per record type, {"telemetry":"…","health":"…"} (env ${CLI_ENV.telemetryRules}, output ${STACK_OUTPUTS.telemetryRules})`,
    )
    .addOption(new Option('--json', 'print the summary as JSON'))
    .addHelpText(
      'after',
      `
Stack contract: each value comes from the outputs of the stack (--stack NAME or
${CLI_ENV.stackName}, default ${DEFAULT_STACK_NAME}, in --region) unless a flag or variable gives it.
Options marked (global) are fleet's global options; they may come before or after "sim".
  --template NAME --claim-client-id-prefix PREFIX
                          the template and its claim client id prefix; together they need no stack
  --templates JSON        (global) the templates, as the ${STACK_OUTPUTS.provisioningTemplates} output
                          (${CLI_ENV.provisioningTemplates})
  --topic-prefix PREFIX   (global) the dt/<prefix>/<thing>/... topic prefix (${CLI_ENV.topicPrefix},
                          output ${STACK_OUTPUTS.topicPrefix})
  --serial-pattern RE     (global) with --manifest: the hook's serial pattern (${ENV.serialPattern},
                          output ${STACK_OUTPUTS.serialPattern})
  --telemetry-rules JSON  with --stream-seconds and without --direct: the Basic Ingest rule names
                          (${CLI_ENV.telemetryRules}, output ${STACK_OUTPUTS.telemetryRules})

Streaming (--stream-seconds N): every enrolled unit keeps its thing session, takes a reading every
--telemetry-interval seconds, publishes them --readings-per-message at a time and a health report
every --health-interval seconds and after every connect, at QoS 1, over Basic Ingest
($aws/rules/<rule>/dt/<prefix>/<thing>/...: no messaging charge) unless --direct. The Last Will
stays on the direct health topic. --profile 1.1.0-rc1=crash-looping gives that firmware a
behaviour: flaky (the link drops, the broker publishes the Last Will, buffered readings are
re-sent after the reconnect) or crash-looping (reboots every 20 s with reset reason WATCHDOG).
The summary adds what was made, acked, buffered, dropped and re-sent.

Firmware updates (--release-key FILE, with --stream-seconds): every streaming unit also runs an
OTA agent on its own thing session (one connection per unit): it takes the firmware-update jobs
of AWS IoT Jobs (notify-next, start-next), downloads the image through the presigned URL,
verifies size, sha256 and the release signature with the key, reboots into the new version on
trial, self-tests, then reports SUCCEEDED, or FAILED and reverts. Each IN_PROGRESS report renews
a step timer of --ota-step-timeout minutes. --ota-profile 3.0.0=install-failure:30 makes 30 % of
the units fail that version's install; never-answers stops answering (the job times out);
crash-after-success reports SUCCEEDED, then crash-loops (the crash-looping profile);
silent-after-success reports SUCCEEDED, then sends nothing more. The device policy must let the
thing publish, subscribe to and receive its own $aws/things/<thing>/jobs/* topics.

MQTT version (--mqtt 3.1.1, the default, or --mqtt 5): every session of every unit, the claim
session of enrollment and the thing session, speaks it. On MQTT 5 a session starts clean with no
session expiry (as a 3.1.1 clean session), and a refusal names the broker's reason code: a give-up
cause such as "CONNACK refused: 0x87 Not authorized", a publish refused with "PUBACK 0x87 Not
authorized" (dropped, not re-sent), a session ended by "DISCONNECT 0x8e Session taken over".

The claim certificate, its key (they must belong together) and the CA are checked before any
connection; a problem with them is bad usage (exit 2). Exit code 0 when every unit enrolled, 1
when any unit was denied (by the service) or gave up (the summary gives each denial reason and
each give-up cause), or, streaming, when a unit got no message acked (the summary gives its error).
${examples([
  'fleet sim --endpoint xxxx-ats.iot.eu-west-1.amazonaws.com --ca AmazonRootCA1.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --serial SN-000001',
  'fleet sim --endpoint localhost:8883 --ca lab-ca.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --manifest units.csv',
  OFFLINE_EXAMPLE,
  'fleet sim --endpoint localhost:8883 --ca lab-ca.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --devices 20 --firmware 1.1.0-rc1 --stream-seconds 120 --telemetry-interval 5 --profile 1.1.0-rc1=crash-looping',
  'fleet sim --endpoint xxxx-ats.iot.eu-west-1.amazonaws.com --ca AmazonRootCA1.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --devices 5 --mqtt 5',
])}`,
    )
    .action(async (o, cmd: Command) => {
      const opts: SimOptions = {
        endpoint: o.endpoint,
        claimCert: o.claimCert,
        claimKey: o.claimKey,
        ca: o.ca,
        template: o.template,
        claimClientIdPrefix: o.claimClientIdPrefix,
        serials: o.serial,
        manifest: o.manifest,
        identities: o.identities,
        devices: o.devices,
        lot: o.lot,
        hwRev: o.hwRev,
        firmware: o.firmware,
        concurrency: o.concurrency,
        maxAttempts: o.maxAttempts,
        servername: o.servername,
        certDir: o.certDir,
        json: o.json,
        streamSeconds: o.streamSeconds,
        telemetryIntervalS: o.telemetryInterval,
        readingsPerMessage: o.readingsPerMessage,
        healthIntervalS: o.healthInterval,
        direct: o.direct,
        profiles: o.profile,
        seed: o.seed,
        mqtt: o.mqtt,
        releaseKey: o.releaseKey,
        otaProfiles: o.otaProfile,
        otaStepTimeoutMin: o.otaStepTimeout,
      };
      return run(
        cmd,
        {
          needs: simNeeds(opts),
          files: simFiles(o),
          validate: () => checkSimOptions(opts),
          hint:
            'Without a stack to read, give the contract values as flags: --template NAME ' +
            `--claim-client-id-prefix PREFIX --topic-prefix PREFIX, e.g.\n  ${OFFLINE_EXAMPLE}` +
            (simNeeds(opts).includes('telemetryRules')
              ? `\nStreaming over Basic Ingest also needs the rule names: --telemetry-rules '{"telemetry":"fleet_telemetry","health":"fleet_health"}', or --direct`
              : ''),
        },
        (ctx) => sim(opts, ctx),
      );
    });
}
