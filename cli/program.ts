/**
 * The `fleet` command tree (commander). Parses arguments, resolves the context and calls the
 * command functions of cli/commands; nothing else. bin/fleet.ts runs {@link main}.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ENV } from '../core/env';
import { claimCreate, claimRevoke } from './commands/claim';
import { deviceReset, deviceShow } from './commands/device';
import { enrollmentList } from './commands/enrollment';
import { lotCreate, lotHold, lotList, lotRelease } from './commands/lot';
import { manifestImport } from './commands/manifest-import';
import { sim } from './commands/sim';
import { CLI_ENV, CliContext, contextFromFlags, GlobalFlags, ResourceKey } from './context';
import { CliError } from './errors';

const TABLES: ResourceKey[] = ['devicesTable', 'lotsTable', 'eventsTable'];

/** Context factory; tests inject one that builds a local context. */
export type ContextFactory = (
  flags: GlobalFlags,
  needs: readonly ResourceKey[],
  wants: readonly ResourceKey[],
) => Promise<CliContext>;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('use a positive whole number, e.g. 50');
  }
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

const examples = (lines: string[]): string => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

export function buildProgram(
  makeContext: ContextFactory = contextFromFlags,
  state: { exitCode: number } = { exitCode: 0 },
): Command {
  const program = new Command('fleet');
  program.exitOverride();
  program.showHelpAfterError('(run the command with --help for usage)');
  program
    .description(
      'Operator CLI of the IoT fleet stack: manifests, lots, claim certificates, enrollments, devices.',
    )
    .option(
      '--stack <name>',
      `CloudFormation stack to read resource names from (env ${CLI_ENV.stackName})`,
      undefined,
    )
    .option('--region <region>', 'AWS region (default: the AWS SDK chain, e.g. AWS_REGION)')
    .option('--devices-table <name>', `Devices table (env ${ENV.devicesTable}, output DevicesTableName)`)
    .option('--lots-table <name>', `Lots table (env ${ENV.lotsTable}, output LotsTableName)`)
    .option('--events-table <name>', `Events table (env ${ENV.eventsTable}, output EventsTableName)`)
    .option(
      '--thing-prefix <prefix>',
      `thing name prefix (env ${ENV.thingNamePrefix}, output ThingNamePrefix)`,
    )
    .option(
      '--device-policy <name>',
      `device IoT policy (env ${CLI_ENV.devicePolicy}, output DevicePolicyName)`,
    )
    .option(
      '--templates <json>',
      `provisioning templates JSON (env ${CLI_ENV.provisioningTemplates}, output ProvisioningTemplates)`,
    )
    .option('--serial-pattern <regex>', `serial number pattern (env ${ENV.serialPattern})`)
    .option('--ring-shares <canary:early>', `ring shares in percent, e.g. 2:18 (env ${ENV.ringShares})`)
    .option(
      '--actor <name>',
      `operator recorded on holds, releases and resets (env ${CLI_ENV.actor}, default: OS user)`,
    )
    .addHelpText(
      'after',
      `
Resource names resolve per name: flag > environment variable > outputs of the stack (--stack,
default IotFleetStack, read with DescribeStacks only when something is missing). The AWS SDK
honours AWS_REGION, AWS_PROFILE and AWS_ENDPOINT_URL_* (e.g. the local lab's endpoints).
Exit codes: 0 ok, 1 failure, 2 usage error.
${examples([
  'fleet manifest import units.csv --dry-run',
  'fleet claim create --lot L2026-07 --out ./claims/L2026-07',
  'fleet enrollment list --denied --since 24h',
  'FLEET_DEVICES_TABLE=Devices FLEET_LOTS_TABLE=Lots FLEET_EVENTS_TABLE=Events fleet lot list',
])}`,
    );

  const run = async (
    cmd: Command,
    needs: readonly ResourceKey[],
    fn: (ctx: CliContext) => Promise<unknown>,
    wants: readonly ResourceKey[] = [],
  ): Promise<void> => {
    const ctx = await makeContext(cmd.optsWithGlobals() as GlobalFlags, needs, wants);
    const result = (await fn(ctx)) as { exitCode?: number } | undefined;
    if (result && typeof result === 'object' && typeof result.exitCode === 'number')
      state.exitCode = result.exitCode;
  };

  // manifest ---------------------------------------------------------------------------------
  const manifest = program.command('manifest').description('manufacturing manifests (the allowlist)');
  manifest
    .command('import')
    .description(
      'validate a manifest and add its units to the registry (idempotent; conflicts are never overwritten)',
    )
    .argument('<file>', 'manifest: .csv (header serial,lot,hwRev,factoryFirmware[,publicKey]) or .json')
    .option('--skip-invalid', 'import the valid rows even when some rows are invalid')
    .option('--dry-run', 'validate and compare with the registry, write nothing')
    .option(
      '--require-attestation',
      'every row needs a publicKey; lots created by this import require attestation',
    )
    .option('--trail', 'also append a MANUFACTURED event per new unit to the trail (doubles the writes)')
    .addHelpText(
      'after',
      `
Every row is validated (serial pattern, lot, hwRev, firmware, P-256 publicKey as PEM or base64
SPKI DER, duplicates) and every problem is reported with its line number and the fix. Any
invalid row means nothing is imported unless --skip-invalid. Exit code 1 on invalid rows or
conflicts.
${examples([
  'fleet manifest import units.csv',
  'fleet manifest import units.json --dry-run',
  'fleet manifest import units.csv --skip-invalid --require-attestation',
])}
CSV example:
  serial,lot,hwRev,factoryFirmware,publicKey
  SN-000001,L2026-07,A,1.4.0,MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...
  SN-000002,L2026-07,A,1.4.0,
`,
    )
    .action(async (file: string, o, cmd: Command) =>
      run(cmd, TABLES, (ctx) =>
        manifestImport(
          {
            file,
            skipInvalid: o.skipInvalid,
            dryRun: o.dryRun,
            requireAttestation: o.requireAttestation,
            trail: o.trail,
          },
          ctx,
        ),
      ),
    );

  // lot --------------------------------------------------------------------------------------
  const lot = program.command('lot').description('manufacturing lots: create, hold, release, list');
  lot
    .command('create')
    .description('create a lot (status OK); no-op when it exists')
    .argument('<lot>', 'lot id (1-48 of A-Z a-z 0-9 _ -)')
    .option('--require-attestation', 'units must sign their new certificate id with their factory key')
    .addHelpText(
      'after',
      examples(['fleet lot create L2026-07', 'fleet lot create L2026-08 --require-attestation']),
    )
    .action(async (name: string, o, cmd: Command) =>
      run(cmd, ['lotsTable'], (ctx) =>
        lotCreate({ lot: name, requireAttestation: o.requireAttestation }, ctx),
      ),
    );
  lot
    .command('hold')
    .description('put a lot on HOLD: its remaining units cannot enroll, and it is excluded from rollouts')
    .argument('<lot>', 'lot id')
    .requiredOption('--reason <text>', 'why (recorded on the lot)')
    .addHelpText('after', examples(['fleet lot hold L2026-07 --reason "RMA-1234: cracked enclosures"']))
    .action(async (name: string, o, cmd: Command) =>
      run(cmd, ['lotsTable'], (ctx) => lotHold({ lot: name, reason: o.reason }, ctx)),
    );
  lot
    .command('release')
    .description('release a lot from HOLD')
    .argument('<lot>', 'lot id')
    .requiredOption('--reason <text>', 'why (recorded on the lot)')
    .addHelpText('after', examples(['fleet lot release L2026-07 --reason "supplier fix verified"']))
    .action(async (name: string, o, cmd: Command) =>
      run(cmd, ['lotsTable'], (ctx) => lotRelease({ lot: name, reason: o.reason }, ctx)),
    );
  lot
    .command('list')
    .description('list lots: status, units, claim certificates, attestation, hold reason')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['fleet lot list', 'fleet lot list --json']))
    .action(async (o, cmd: Command) => run(cmd, ['lotsTable'], (ctx) => lotList({ json: o.json }, ctx)));

  // claim ------------------------------------------------------------------------------------
  const claim = program.command('claim').description('per-lot claim certificates for fleet provisioning');
  claim
    .command('create')
    .description(
      "create a lot's claim certificate, attach the claim policy, record it on the lot, write the key pair",
    )
    .requiredOption('--lot <lot>', 'lot the claim is for')
    .requiredOption(
      '--out <dir>',
      `directory for claim.cert.pem, claim.private.key (mode 0600) and claim.json`,
    )
    .option('--template <name>', 'provisioning template (needed when the stack has several)')
    .option('--force', 'overwrite existing claim files in --out')
    .option('--require-attestation', 'when the lot does not exist yet, create it requiring attestation')
    .addHelpText(
      'after',
      `
The lot's thing group is created first if missing (the template adds devices to it). The
private key exists only in the CreateKeysAndCertificate answer: keep the files safe.
${examples(['fleet claim create --lot L2026-07 --out ./claims/L2026-07', 'fleet claim create --lot L2026-07 --out ./c --template sensor-v2'])}`,
    )
    .action(async (o, cmd: Command) =>
      run(cmd, ['lotsTable', 'thingPrefix', 'provisioningTemplates'], (ctx) =>
        claimCreate(
          {
            lot: o.lot,
            out: o.out,
            template: o.template,
            force: o.force,
            requireAttestation: o.requireAttestation,
          },
          ctx,
        ),
      ),
    );
  claim
    .command('revoke')
    .description("kill switch: revoke (or deactivate) a lot's claim certificates")
    .requiredOption('--lot <lot>', 'lot whose claims to revoke')
    .option('--certificate-id <id>', 'only this claim certificate of the lot')
    .option('--deactivate', 'set INACTIVE (reversible) instead of REVOKED; the ids stay on the lot')
    .addHelpText(
      'after',
      examples([
        'fleet claim revoke --lot L2026-07',
        'fleet claim revoke --lot L2026-07 --certificate-id 3f2a...',
        'fleet claim revoke --lot L2026-07 --deactivate',
      ]),
    )
    .action(async (o, cmd: Command) =>
      run(cmd, ['lotsTable'], (ctx) =>
        claimRevoke({ lot: o.lot, certificateId: o.certificateId, deactivate: o.deactivate }, ctx),
      ),
    );

  // enrollment -------------------------------------------------------------------------------
  const enrollment = program
    .command('enrollment')
    .description('onboarding attempts (pre-provisioning decisions)');
  enrollment
    .command('list')
    .description(
      'quarantine view: recent attempts (serial, lot, decision, reason, time) and the first-time success rate',
    )
    .option('--denied', 'only denied attempts')
    .option('--since <time>', 'window start: ISO time, date, or 30m/24h/7d before now', '24h')
    .option('--until <time>', 'window end (exclusive), same forms', 'now')
    .option('--reason <code>', 'only this reason code, e.g. NOT_ON_ALLOWLIST')
    .option('--lot <lot>', 'only this lot')
    .option('--limit <n>', 'show at most n attempts, newest first', positiveInt, 50)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Queries the sparse byEnrollmentDay index one UTC day at a time (never a scan). The success
rate is the share of serials whose first attempt in the window was allowed.
${examples([
  'fleet enrollment list --denied --since 24h',
  'fleet enrollment list --reason CLAIM_LOT_MISMATCH --since 7d --limit 200',
  'fleet enrollment list --since 2026-07-01 --until 2026-07-02 --json',
])}`,
    )
    .action(async (o, cmd: Command) =>
      run(cmd, ['eventsTable'], (ctx) =>
        enrollmentList(
          {
            denied: o.denied,
            since: o.since,
            until: o.until,
            reason: o.reason,
            lot: o.lot,
            limit: o.limit,
            json: o.json,
          },
          ctx,
        ),
      ),
    );

  // device -----------------------------------------------------------------------------------
  const device = program.command('device').description('one unit: record, trail, reset');
  device
    .command('show')
    .description('registry record and recent trail of a unit')
    .argument('<serial>', 'serial number')
    .option('--events <n>', 'trail events to show', positiveInt, 20)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      examples(['fleet device show SN-000123', 'fleet device show SN-000123 --events 100 --json']),
    )
    .action(async (serial: string, o, cmd: Command) =>
      run(cmd, ['devicesTable', 'eventsTable'], (ctx) =>
        deviceShow({ serial, events: o.events, json: o.json }, ctx),
      ),
    );
  device
    .command('reset')
    .description('reset a unit stuck in PROVISIONING to MANUFACTURED so it can enroll again')
    .argument('<serial>', 'serial number')
    .requiredOption('--reason <text>', 'why (recorded on the trail)')
    .addHelpText(
      'after',
      `
Only a PROVISIONING unit can be reset (see docs/operations.md). Check the trail first with
"fleet device show <serial>".
${examples(['fleet device reset SN-000123 --reason "lost RegisterThing answer, ticket OPS-42"'])}`,
    )
    .action(async (serial: string, o, cmd: Command) =>
      run(cmd, ['devicesTable', 'eventsTable'], (ctx) => deviceReset({ serial, reason: o.reason }, ctx)),
    );

  // sim --------------------------------------------------------------------------------------
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
    .option('--servername <name>', 'TLS server name when --endpoint is an address')
    .option('--cert-dir <dir>', 'write issued device certificates and keys here (mode 0600)')
    .option('--topic-prefix <prefix>', 'topic prefix of the stack (default fleet)')
    .addOption(new Option('--json', 'print the summary as JSON'))
    .addHelpText(
      'after',
      examples([
        'fleet sim --endpoint xxxx-ats.iot.eu-west-1.amazonaws.com --ca AmazonRootCA1.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --serial SN-000001',
        'fleet sim --endpoint localhost:8883 --ca lab-ca.pem --claim-cert c/claim.cert.pem --claim-key c/claim.private.key --manifest units.csv',
      ]),
    )
    .action(async (o, cmd: Command) =>
      run(
        cmd,
        [],
        (ctx) =>
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
              servername: o.servername,
              certDir: o.certDir,
              topicPrefix: o.topicPrefix,
              json: o.json,
            },
            ctx,
          ),
        o.template ? [] : ['provisioningTemplates'],
      ),
    );

  // `fleet --help` lists every command, including the subcommands of each group.
  program.addHelpText('after', () => {
    const lines: string[] = [];
    const walk = (cmd: Command, path: string): void => {
      for (const sub of cmd.commands) {
        const name = `${path} ${sub.name()}`.trim();
        if (sub.commands.length > 0) walk(sub, name);
        else
          lines.push(
            `  fleet ${`${name} ${sub.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ')}`.trim().padEnd(30)} ${sub.description()}`,
          );
      }
    };
    walk(program, '');
    return `\nAll commands (fleet <command> --help for details):\n${lines.join('\n')}\n`;
  });

  return program;
}

export interface MainIo {
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

/**
 * Run the CLI. Returns the exit code: 0 ok, 1 failure, 2 usage error. Expected errors print
 * their message only; FLEET_DEBUG=1 adds stack traces of unexpected ones.
 */
export async function main(
  argv: string[],
  makeContext?: ContextFactory,
  io: MainIo = { stderr: (t) => void process.stderr.write(t), env: process.env },
): Promise<number> {
  const state = { exitCode: 0 };
  const program = buildProgram(makeContext, state);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return state.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      return 2; // commander already printed the problem
    }
    if (err instanceof CliError) {
      io.stderr(`error: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`error: ${explain(err)}\n`);
    if (io.env.FLEET_DEBUG && err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
    return 1;
  }
}

/** A readable message for unexpected (mostly AWS SDK) errors, with the likely fix. */
export function explain(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const name = err.name;
  const msg = err.message;
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(msg)) {
    return `no AWS credentials found (${msg}); configure AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`;
  }
  if (/Region is missing/i.test(msg)) return 'no AWS region configured; pass --region or set AWS_REGION';
  if (name === 'ResourceNotFoundException') {
    return `${msg}; check the table names (--devices-table/--lots-table/--events-table, FLEET_*_TABLE or --stack) and the region`;
  }
  if (
    name === 'AccessDeniedException' ||
    name === 'UnrecognizedClientException' ||
    name === 'ExpiredTokenException'
  ) {
    return `${name}: ${msg}; check the AWS credentials and their permissions`;
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(msg) ||
    /ECONNREFUSED|ENOTFOUND/.test(String((err as { code?: string }).code))
  ) {
    return `cannot reach the AWS endpoint (${msg}); check the network and any AWS_ENDPOINT_URL_* variable`;
  }
  if (name === 'BatchRetryExhaustedError' || name === 'LotNotFoundError') return msg;
  return `${name}: ${msg} (set FLEET_DEBUG=1 for a stack trace)`;
}
