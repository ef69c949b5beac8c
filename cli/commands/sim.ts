/**
 * `fleet sim`: enroll simulated devices against an AWS IoT endpoint (or the local lab) with a
 * lot's claim certificate, through the real fleet provisioning MQTT API. Wraps
 * `simulateAgainstEndpoint` (device/simulate.ts).
 *
 * The template (and its claim client id prefix) and the topic prefix come from the stack, like
 * every other contract value. Exit code 0 when every unit enrolled, 1 when any unit was denied
 * or gave up; the summary names the reason of each denial and the cause of each give-up.
 */
import { Command, Option } from 'commander';
import type { FactoryIdentity } from '../../device/identity';
import type { SimulateResult } from '../../device/simulate';
import { detectFormat, formatIssue, parseManifest } from '../../core/manifest';
import { CliContext, requireResource, ResourceKey } from '../context';
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
}

export type SimResult = Omit<SimulateResult, 'agents' | 'close'> & {
  /** 0 when every unit enrolled; 1 when any unit was denied or gave up. */
  exitCode: number;
};

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
  for (const [flag, value] of [
    ['--devices', opts.devices],
    ['--max-attempts', opts.maxAttempts],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new UsageError(`${flag} "${value}" must be a positive whole number`);
    }
  }
  const { templateName: template, claimClientIdPrefix } = pickTemplate(
    requireResource(ctx, 'provisioningTemplates'),
    opts.template,
  );
  const topicPrefix = requireResource(ctx, 'topicPrefix');
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
      progressBar: false,
    });
  } catch (err) {
    throw new CliError(
      `fleet sim could not start: ${(err as Error).message}; check the endpoint, files and template`,
    );
  }
  await result.close();
  const { agents: _agents, close: _close, ...rest } = result;
  const exitCode = rest.summary.enrolled === rest.summary.attempted ? EXIT_CODES.ok : EXIT_CODES.failed;
  if (opts.json) ctx.out.json(rest.summary);
  else for (const line of rest.text.split('\n')) ctx.out.info(line);
  return { ...rest, exitCode };
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
  ] as const) {
    const path = o[key];
    if (path && !path.includes('-----BEGIN')) files.push({ path, what, flag });
  }
  return files;
}

/** `fleet sim`. */
export function registerSim(program: Command, run: RunCommand): void {
  program
    .command('sim')
    .description(
      'enroll simulated devices against an AWS IoT endpoint or the local lab (fleet provisioning MQTT API)',
    )
    .requiredOption('--endpoint <host[:port]>', 'IoT data endpoint (port 8883 by default)')
    .requiredOption('--claim-cert <file>', 'claim certificate PEM (from fleet claim create)')
    .requiredOption('--claim-key <file>', 'claim private key PEM')
    .requiredOption('--ca <file>', 'CA of the server certificate (AmazonRootCA1.pem for AWS IoT)')
    .option('--template <name>', 'provisioning template (default: the only one of the stack)')
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
    .addOption(new Option('--json', 'print the summary as JSON'))
    .addHelpText(
      'after',
      `
The template (--template picks one of the stack's ProvisioningTemplates) and the topic prefix
(--topic-prefix, FLEET_TOPIC_PREFIX or the TopicPrefix output) come from the stack. Exit code 0
when every unit enrolled, 1 when any unit was denied or gave up (the summary gives each denial
reason and each give-up cause).
${examples([
  'fleet sim --endpoint xxxx-ats.iot.eu-west-1.amazonaws.com --ca AmazonRootCA1.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --serial SN-000001',
  'fleet sim --endpoint localhost:8883 --ca lab-ca.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --manifest units.csv',
])}`,
    )
    .action(async (o, cmd: Command) => {
      const needs: ResourceKey[] = ['provisioningTemplates', 'topicPrefix'];
      if (o.manifest) needs.push('serialPattern');
      return run(cmd, { needs, files: simFiles(o) }, (ctx) =>
        sim(
          {
            endpoint: o.endpoint,
            claimCert: o.claimCert,
            claimKey: o.claimKey,
            ca: o.ca,
            template: o.template,
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
          },
          ctx,
        ),
      );
    });
}
