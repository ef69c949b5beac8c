/**
 * `fleet sim`: enroll simulated devices against an AWS IoT endpoint (or the local lab) with a
 * lot's claim certificate, through the real fleet provisioning MQTT API. Wraps
 * `simulateAgainstEndpoint` (device/simulate.ts).
 */
import { readFile } from 'node:fs/promises';
import type { FactoryIdentity } from '../../device/identity';
import type { SimulateResult } from '../../device/simulate';
import { detectFormat, formatIssue, parseManifest } from '../../core/manifest';
import { CliContext } from '../context';
import { CliError, UsageError } from '../errors';
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
  /** Topic prefix of the stack. @default 'fleet' */
  topicPrefix?: string;
  json?: boolean;
}

export type SimResult = Omit<SimulateResult, 'agents' | 'close'>;

export async function sim(opts: SimOptions, ctx: CliContext): Promise<SimResult> {
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
  if (opts.devices !== undefined && (!Number.isInteger(opts.devices) || opts.devices < 1)) {
    throw new UsageError(`--devices "${opts.devices}" must be a positive whole number`);
  }
  let template = opts.template;
  let claimClientIdPrefix: string | undefined;
  if (ctx.resources.provisioningTemplates) {
    const t = pickTemplate(ctx.resources.provisioningTemplates, opts.template);
    template = t.templateName;
    claimClientIdPrefix = t.claimClientIdPrefix;
  }
  if (!template) {
    throw new UsageError(
      'fleet sim needs --template NAME (or the ProvisioningTemplates output, FLEET_PROVISIONING_TEMPLATES)',
    );
  }
  let identities: string | FactoryIdentity[] | undefined = opts.identities;
  if (opts.manifest) identities = await identitiesFromManifest(opts.manifest, ctx);
  let result: SimulateResult;
  try {
    // Loaded on demand: the MQTT/X.509 stack is only needed by this command.
    const { simulateAgainstEndpoint } = await import('../../device/simulate');
    result = await simulateAgainstEndpoint({
      endpoint: opts.endpoint,
      ca: opts.ca,
      claimCert: opts.claimCert,
      claimKey: opts.claimKey,
      template,
      ...(claimClientIdPrefix ? { claimClientIdPrefix } : {}),
      ...(identities ? { identities } : {}),
      ...(opts.serials?.length ? { serials: opts.serials } : {}),
      ...(opts.devices ? { devices: opts.devices } : {}),
      ...(opts.lot ? { lot: opts.lot } : {}),
      ...(opts.hwRev ? { hwRev: opts.hwRev } : {}),
      ...(opts.firmware ? { firmware: opts.firmware } : {}),
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
      ...(opts.certDir ? { certDir: opts.certDir } : {}),
      ...(opts.topicPrefix ? { topicPrefix: opts.topicPrefix } : {}),
      progressBar: false,
    });
  } catch (err) {
    throw new CliError(
      `fleet sim could not start: ${(err as Error).message}; check the endpoint, files and template`,
    );
  }
  await result.close();
  const { agents: _agents, close: _close, ...rest } = result;
  if (opts.json) ctx.out.json(rest.summary);
  else for (const line of rest.text.split('\n')) ctx.out.info(line);
  return rest;
}

async function identitiesFromManifest(file: string, ctx: CliContext): Promise<FactoryIdentity[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read manifest ${file}: ${(err as Error).message}; check --manifest`);
  }
  const parsed = parseManifest(text, detectFormat(file, text), { serialPattern: ctx.serialPattern });
  if (parsed.issues.length > 0) {
    for (const issue of parsed.issues) ctx.out.warn(formatIssue(issue));
    throw new UsageError(`manifest ${file} has ${parsed.issues.length} problem(s); fix them (see above)`);
  }
  return parsed.rows.map((r) => ({
    serial: r.serial,
    lot: r.lot,
    hwRev: r.hwRev,
    firmware: r.factoryFirmware,
  }));
}
