/**
 * The `fleet` command tree (commander). Declares the global options, composes the commands
 * (each module under cli/commands registers its own, with options, help and action) and keeps
 * what they share: the run wrapper (input files, resource resolution, exit code, closing the SDK
 * clients), the listing of every command in `fleet --help`, {@link main} and {@link explain}.
 * bin/fleet.ts runs {@link main}.
 */
import { Command, CommanderError } from 'commander';
import { ENV } from '../core/env';
import { registerClaim } from './commands/claim';
import { registerDevice } from './commands/device';
import { registerEnrollment } from './commands/enrollment';
import { registerFirmware } from './commands/firmware';
import { registerLot } from './commands/lot';
import { registerManifestImport } from './commands/manifest-import';
import { registerManifestValidate } from './commands/manifest-validate';
import { registerSim } from './commands/sim';
import { registerTelemetry } from './commands/telemetry';
import {
  CLI_ENV,
  CliContext,
  contextFromFlags,
  destroyContext,
  GlobalFlags,
  RESOURCE_SOURCES,
  ResourceKey,
} from './context';
import { awsSetupProblem, CliError, describeExitCodes, EXIT_CODES } from './errors';
import { assertReadable } from './files';
import { examples, RunCommand } from './registration';

/**
 * Context factory; tests inject one that builds a local context. The run wrapper owns what it
 * returns: it closes the context's SDK clients ({@link destroyContext}) once the command is done.
 */
export type ContextFactory = (
  flags: GlobalFlags,
  needs: readonly ResourceKey[],
  wants: readonly ResourceKey[],
) => Promise<CliContext>;

/** Where commander writes its own messages (usage errors, help); defaults to the process streams. */
export interface ProgramOutput {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

/** `<description> (env X, output Y)` for a resource flag. */
function sourced(key: ResourceKey, what: string): string {
  const s = RESOURCE_SOURCES[key];
  return `${what} (env ${s.env}, output ${s.output})`;
}

function globalOptions(program: Command): void {
  program
    .option(
      '--stack <name>',
      `CloudFormation stack to read resource names from (env ${CLI_ENV.stackName})`,
      undefined,
    )
    .option('--region <region>', 'AWS region (default: the AWS SDK chain, e.g. AWS_REGION)')
    .option('--devices-table <name>', sourced('devicesTable', 'Devices table'))
    .option('--lots-table <name>', sourced('lotsTable', 'Lots table'))
    .option('--events-table <name>', sourced('eventsTable', 'Events table'))
    .option('--thing-prefix <prefix>', sourced('thingPrefix', 'thing name prefix'))
    .option('--device-policy <name>', sourced('devicePolicy', 'device IoT policy'))
    .option('--templates <json>', sourced('provisioningTemplates', 'provisioning templates JSON'))
    .option('--serial-pattern <regex>', sourced('serialPattern', 'serial number pattern'))
    .option('--ring-shares <canary:early>', sourced('ringShares', 'ring shares in percent, e.g. 2:18'))
    .option('--topic-prefix <prefix>', sourced('topicPrefix', 'topic prefix'))
    .option(
      '--actor <name>',
      `operator recorded on holds, releases and resets (env ${CLI_ENV.actor}, default: OS user)`,
    );
}

export function buildProgram(
  makeContext: ContextFactory = contextFromFlags,
  state: { exitCode: number } = { exitCode: 0 },
  output: ProgramOutput = {},
): Command {
  const program = new Command('fleet');
  program.exitOverride();
  program.showHelpAfterError('(run the command with --help for usage)');
  program.configureOutput({
    ...(output.stdout ? { writeOut: output.stdout } : {}),
    ...(output.stderr ? { writeErr: output.stderr } : {}),
  });
  program.description(
    'Operator CLI of the IoT fleet stack: manifests, lots, claim certificates, enrollments, devices, telemetry replay.',
  );
  globalOptions(program);
  program.addHelpText(
    'after',
    `
Resource names resolve per name: flag > environment variable > outputs of the stack (--stack,
default IotFleetStack, read with DescribeStacks only when something is missing). The serial
pattern (${ENV.serialPattern}), ring shares (${ENV.ringShares}) and topic prefix are the stack's
own values and have no local default. The AWS SDK honours AWS_REGION, AWS_PROFILE and
AWS_ENDPOINT_URL_* (e.g. the local lab's endpoints).

${describeExitCodes()}
${examples([
  'fleet manifest validate units.csv',
  'fleet manifest import units.csv --dry-run',
  'fleet claim create --lot L2026-07 --out ./claims/L2026-07',
  'fleet enrollment list --denied --since 24h',
  'fleet telemetry replay --since 6h --dry-run',
  'FLEET_DEVICES_TABLE=Devices FLEET_LOTS_TABLE=Lots FLEET_EVENTS_TABLE=Events fleet lot list',
])}`,
  );

  const run: RunCommand = async (cmd, spec, fn) => {
    await assertReadable(spec.files ?? []);
    await spec.validate?.();
    let ctx: CliContext;
    try {
      ctx = await makeContext(cmd.optsWithGlobals() as GlobalFlags, spec.needs ?? [], spec.wants ?? []);
    } catch (err) {
      if (spec.hint && err instanceof CliError) err.message = `${err.message}\n${spec.hint}`;
      throw err;
    }
    try {
      const result = (await fn(ctx)) as { exitCode?: number } | undefined;
      if (result && typeof result === 'object' && typeof result.exitCode === 'number')
        state.exitCode = result.exitCode;
    } finally {
      destroyContext(ctx);
    }
  };

  const manifest = program.command('manifest').description('manufacturing manifests (the allowlist)');
  registerManifestValidate(manifest, run);
  registerManifestImport(manifest, run);
  registerLot(program, run);
  registerClaim(program, run);
  registerEnrollment(program, run);
  registerDevice(program, run);
  registerSim(program, run);
  registerTelemetry(program, run);
  registerFirmware(program, run);

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
  /** Where help goes; defaults to the process's stdout. */
  stdout?: (text: string) => void;
}

/**
 * Run the CLI and return its exit code ({@link EXIT_CODES}: 0 success, 1 a check failed or a
 * unit was denied or gave up, 2 bad usage). Expected errors print their message only;
 * FLEET_DEBUG=1 adds stack traces of unexpected ones.
 */
export async function main(
  argv: string[],
  makeContext?: ContextFactory,
  io: MainIo = { stderr: (t) => void process.stderr.write(t), env: process.env },
): Promise<number> {
  const state = { exitCode: EXIT_CODES.ok as number };
  const program = buildProgram(makeContext, state, { stderr: io.stderr, stdout: io.stdout });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return state.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help asked for (also `fleet help <command>`) is a success; every other commander error
      // (unknown option or command, missing argument, invalid value) is bad usage. Commander
      // has already printed the problem.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_CODES.ok;
      if (err.code === 'commander.help' && err.exitCode === 0) return EXIT_CODES.ok;
      return EXIT_CODES.usage;
    }
    if (err instanceof CliError) {
      io.stderr(`error: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`error: ${explain(err, io.env)}\n`);
    if (io.env.FLEET_DEBUG && err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
    return awsSetupProblem(err, io.env) ? EXIT_CODES.usage : EXIT_CODES.failed;
  }
}

/** A readable message for unexpected (mostly AWS SDK) errors; the fix comes first where known. */
export function explain(err: unknown, env: Record<string, string | undefined> = process.env): string {
  if (!(err instanceof Error)) return String(err);
  const name = err.name;
  const msg = err.message;
  const setup = awsSetupProblem(err, env);
  if (setup) return `${setup} (${name}: ${msg})`;
  if (name === 'ResourceNotFoundException') {
    return `${msg}; check the table names (--devices-table/--lots-table/--events-table, FLEET_*_TABLE or --stack) and the region`;
  }
  if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException') {
    return `the AWS credentials were refused: check AWS_PROFILE (or the access keys) and their IAM permissions (${name}: ${msg})`;
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(msg) ||
    /ECONNREFUSED|ENOTFOUND/.test(String((err as { code?: string }).code))
  ) {
    return `cannot reach the AWS endpoint: check the network and any AWS_ENDPOINT_URL_* variable (${msg})`;
  }
  if (name === 'BatchRetryExhaustedError' || name === 'LotNotFoundError') return msg;
  return `${name}: ${msg} (set FLEET_DEBUG=1 for a stack trace)`;
}
