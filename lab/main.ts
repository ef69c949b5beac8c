/**
 * `npm run lab [-- options]`: start the local lab on the synthesized stack and run the
 * enrollment scenario (see lab/scenario/run.ts and docs/lab.md).
 *
 * Exit codes, as for `fleet`: 0 success; 1 a check failed (a scenario expectation, or the lab
 * or the scenario could not run); 2 bad usage (unknown option, bad value, unusable --lab-dir,
 * --config file or --report path, a fleet too small for the stack's templates, an assembly with
 * several fleet stacks and no --stack). Every failure is one line naming what failed and what to
 * do; details go to <lab-dir>/logs/lab.log.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  createWriteStream,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { EXIT_CODES, UsageError } from '../cli/errors';
import { assertWritableFile } from '../cli/files';
import { positiveInt } from '../cli/registration';
import { SynthError, startLabRuntime, type LabLog, type LabRuntime } from './runtime';
import { labCliEnvironment, LabStackError, labStackName } from './scenario/context';
import {
  DEFAULT_MQTT5_SHARE,
  MIN_DEVICES_WITH_BAD_CASES,
  mqtt5ShareProblem,
  PlanError,
} from './scenario/plan';
import { formatReport } from './scenario/report';
import { runScenario, type ScenarioReport } from './scenario/run';

/** Exit codes: the `fleet` CLI's convention. */
const EXIT = { ok: EXIT_CODES.ok, checkFailed: EXIT_CODES.failed, usage: EXIT_CODES.usage } as const;

/** A usage problem: one line naming it and the fix; exits 2. */
class LabUsageError extends Error {}

interface LabFlags {
  devices: number;
  report?: string;
  keepRunning?: boolean;
  registerTps?: number;
  concurrency?: number;
  quiet?: boolean;
  streamSeconds: number;
  outage: boolean;
  mqtt5Share: number;
  labDir: string;
  config?: string;
  stack?: string;
}

/** --devices: the CLI's positive whole number, and enough units for every case of the scenario. */
function deviceCount(value: string): number {
  const n = positiveInt(value);
  if (n < MIN_DEVICES_WITH_BAD_CASES)
    throw new InvalidArgumentError(
      `--devices must be a whole number of at least ${MIN_DEVICES_WITH_BAD_CASES} (a good unit per lot, every bad case and the recovery case); use --devices ${MIN_DEVICES_WITH_BAD_CASES} or more`,
    );
  return n;
}

/** --stream-seconds: 0 (no telemetry phase) or enough time for the outage and the health reports. */
function streamSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || (n !== 0 && n < 10) || n > 3600)
    throw new InvalidArgumentError(
      `--stream-seconds must be 0 (enrollment only) or a whole number from 10 to 3600 (the Kinesis outage starts 3 s in and lasts 6 s); use e.g. --stream-seconds 14`,
    );
  return n;
}

/** --mqtt5-share: a share of the fleet, 0 to 1. */
function mqtt5Share(value: string): number {
  const n = Number(value);
  if (!/^\s*\d*\.?\d+\s*$/.test(value) || mqtt5ShareProblem(n))
    throw new InvalidArgumentError(
      `--mqtt5-share must be a number from 0 (every unit on MQTT 3.1.1) to 1 (every unit on MQTT 5); use e.g. --mqtt5-share ${DEFAULT_MQTT5_SHARE}`,
    );
  return n;
}

function parseArgs(argv: string[]): LabFlags {
  const program = new Command('npm run lab --')
    .description('Run the fleet stack offline from cdk.out and drive the enrollment scenario through it.')
    .option('--devices <n>', 'simulated units, bad cases included', deviceCount, 200)
    .option('--report <path>', 'write the JSON report here')
    .option(
      '--keep-running',
      'leave the lab up after the scenario (Ctrl-C stops it) and print what to export',
    )
    .option('--register-tps <q>', 'enforce a RegisterThing quota of Q transactions per second', positiveInt)
    .option('--concurrency <c>', 'units enrolling at the same time (default 32)', positiveInt)
    .option('--quiet', 'print only the start-up line and the summary')
    .option(
      '--stream-seconds <s>',
      'seconds every ACTIVE unit streams telemetry and health after enrollment: 10 to 3600, or 0 for enrollment only',
      streamSeconds,
      14,
    )
    .option('--no-outage', 'stream without stopping the Kinesis emulator in the middle')
    .option(
      '--mqtt5-share <s>',
      'share of the units that run on MQTT 5, the rest on MQTT 3.1.1: 0 to 1',
      mqtt5Share,
      DEFAULT_MQTT5_SHARE,
    )
    .option('--lab-dir <dir>', 'working directory (claims, manifest, logs, CA)', '.lab')
    .option(
      '--config <file>',
      'FleetConfig JSON file to synthesize the stack with (CDK context config=<file>); default: the defaults',
    )
    .option(
      '--stack <name>',
      'run only this stack of the assembly (default: every stack; the scenario drives the fleet stack)',
    )
    .showHelpAfterError('(npm run lab -- --help lists every option)')
    .exitOverride();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // --help and --version end with 0; every parse error is a usage error (commander printed it).
    process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  return program.opts<LabFlags>();
}

/**
 * One lab per directory: a second run would overwrite the first one's CA, claims and buckets
 * under it. `<labDir>/lab.pid` names the running lab; a file left by a lab that is gone is taken over.
 */
function claimLabDir(labDir: string): void {
  const pidFile = join(labDir, 'lab.pid');
  let other: number | undefined;
  try {
    other = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    other = undefined;
  }
  if (other && other !== process.pid && isAlive(other))
    throw new LabUsageError(
      `a lab is already running from ${labDir} (pid ${other}); stop it (Ctrl-C in its shell) or give this run its own directory, e.g. --lab-dir ${labDir}-2`,
    );
  try {
    mkdirSync(labDir, { recursive: true });
    writeFileSync(pidFile, `${process.pid}\n`);
    process.once('exit', () => {
      try {
        if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile);
      } catch {
        // Already gone.
      }
    });
  } catch {
    // An unwritable directory is reported by prepareLabDir with its fix.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lab directory, created and writable, or a usage error naming the path and the fix. */
function prepareLabDir(labDir: string): string {
  claimLabDir(labDir);
  const logs = join(labDir, 'logs');
  try {
    mkdirSync(logs, { recursive: true });
    accessSync(labDir, constants.W_OK);
    accessSync(logs, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why =
      code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a part of the path is a file, not a directory'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? 'it is not writable'
          : (err as Error).message;
    throw new LabUsageError(
      `--lab-dir ${labDir} cannot be used (${code}: ${why}); pass a writable directory, e.g. --lab-dir .lab`,
    );
  }
  return logs;
}

interface ConfigChoice {
  /** Absolute path of the config file, or undefined for the defaults. */
  file?: string;
  /** Assembly directory, relative to the project: cdk.out for the defaults. */
  cdkOut: string;
}

/**
 * The config to synthesize with. A config file gets its own assembly directory in the lab
 * directory (`cdk.out-<name>-<hash of its path>`), so switching configs does not re-synthesize
 * each time; cdk.out stays the defaults' (as `cdk synth` writes it).
 */
function chooseConfig(projectDir: string, labDir: string, config?: string): ConfigChoice {
  if (config === undefined) return { cdkOut: 'cdk.out' };
  const file = resolve(projectDir, config);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile)
    throw new LabUsageError(
      `--config ${config}: no such file (${file}); give the path of a FleetConfig JSON file, e.g. --config examples/fleet.config.json`,
    );
  const tag = createHash('sha256').update(file).digest('hex').slice(0, 8);
  const name = basename(file)
    .replace(/\.json$/i, '')
    .replace(/[^A-Za-z0-9_.-]/g, '_');
  return { file, cdkOut: join(labDir, `cdk.out-${name}-${tag}`) };
}

/** One line: what the lab runs (config, stage, stack, templates). */
function describeStack(lab: LabRuntime, stackName: string, projectDir: string, config: ConfigChoice): string {
  const stack = lab.assembly.stacks.find((s) => s.stackName === stackName);
  const templates = Object.values(lab.topology.provisioningTemplates);
  return [
    `config ${config.file ? config.file.replace(`${projectDir}/`, '') : 'defaults'}`,
    `stage ${stack?.tags.stage ?? 'unknown'}`,
    `stack ${stackName}`,
    `template${templates.length === 1 ? '' : 's'} ${templates.join(', ') || 'none'}`,
    `assembly ${lab.assembly.dir.replace(`${projectDir}/`, '')}`,
  ].join(', ');
}

function exportLines(lab: LabRuntime, caFile: string, labDir: string): string[] {
  const env = {
    ...labCliEnvironment(lab),
    FLEET_LAB_MQTT_ENDPOINT: `${lab.endpoints.mqtt.host}:${lab.endpoints.mqtt.port}`,
    FLEET_LAB_CA: caFile,
  };
  const quote = (v: string): string => `'${v.replace(/'/g, `'\\''`)}'`;
  return [
    '',
    'The lab stays up (Ctrl-C stops it). Endpoints:',
    `  DynamoDB       ${lab.endpoints.dynamodb}`,
    `  Kinesis        ${lab.endpoints.kinesis}`,
    `  IoT (control)  ${lab.endpoints.iot}`,
    `  S3             ${lab.endpoints.s3}`,
    `  SQS            ${lab.endpoints.sqs}`,
    `  MQTT (mTLS)    ${lab.endpoints.mqtt.host}:${lab.endpoints.mqtt.port}   CA ${caFile}`,
    '',
    'In another shell, paste:',
    ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
    '',
    'then, for example:',
    '  npm run fleet -- enrollment list --since 1h --denied',
    '  npm run fleet -- lot list',
    `  tail -f ${join(labDir, 'logs', 'lab.log')}   # policy decisions (why a connect/publish/subscribe was denied)`,
    `  npm run fleet -- sim --endpoint "$FLEET_LAB_MQTT_ENDPOINT" --ca "$FLEET_LAB_CA" \\`,
    `      --claim-cert ${join(labDir, 'claims/LAB-A/claim.cert.pem')} --claim-key ${join(labDir, 'claims/LAB-A/claim.private.key')} --serial LABX999999`,
  ];
}

/** One run of the lab: its flags, where it works, and how it reports. */
interface LabRun {
  flags: LabFlags;
  projectDir: string;
  labDir: string;
  config: ConfigChoice;
  labLogFile: string;
  /** Error entries of the lab's log, in the JSON report. */
  errors: string[];
  log: LabLog;
  say(line: string): void;
  progress(line: string): void;
  /** Sessions closing while the lab stops produce expected noise: from now on it stays in lab.log. */
  quietenForStop(): void;
  started: number;
}

/**
 * --report, checked before anything starts: a file that can be written (not a directory, in a
 * directory that can be created or written), or a usage error naming the path and the fix. Without
 * this check the whole scenario would run before the write fails.
 */
function checkReportPath(report: string | undefined): void {
  if (report === undefined) return;
  try {
    assertWritableFile({ path: report, flag: '--report', example: 'lab-report.json' });
  } catch (err) {
    if (err instanceof UsageError) throw new LabUsageError(err.message);
    throw err;
  }
}

function prepareRun(flags: LabFlags): LabRun {
  const projectDir = process.cwd();
  checkReportPath(flags.report);
  const labDir = resolve(projectDir, flags.labDir);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const logsDir = prepareLabDir(labDir);
  const config = chooseConfig(projectDir, labDir, flags.config);
  const errors: string[] = [];
  // Every entry of the lab itself (policy decisions, provisioning, rules) goes to lab.log as a
  // JSON line; warnings (e.g. a policy denial and why) and errors are also shown here.
  const labLogFile = join(logsDir, 'lab.log');
  labLog = createWriteStream(labLogFile, { flags: 'w' });
  let stopping = false;
  // A deliberate outage makes hundreds of identical warnings: the first of each kind is shown,
  // then one line saying where the rest are.
  const seen = new Map<string, number>();
  const log: LabLog = (e) => {
    labLog?.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    if (e.level === 'error') errors.push(e.msg);
    if (e.level === 'info' || flags.quiet || stopping) return;
    const n = (seen.get(e.msg) ?? 0) + 1;
    seen.set(e.msg, n);
    if (n === 1)
      process.stderr.write(
        `lab ${e.level}: ${e.msg} ${JSON.stringify({ ...e, level: undefined, msg: undefined })}\n`,
      );
    else if (n === 2) process.stderr.write(`lab ${e.level}: more "${e.msg}" go to ${labLogFile} only\n`);
  };
  return {
    flags,
    projectDir,
    labDir,
    config,
    labLogFile,
    errors,
    log,
    say,
    progress: (line) => {
      if (!flags.quiet) say(`· ${line}`);
    },
    quietenForStop: () => {
      stopping = true;
    },
    started: Date.now(),
  };
}

/** The running lab and the stack the scenario drives, or the exit code of a failed start. */
async function startLab(run: LabRun): Promise<{ lab: LabRuntime; stackName: string } | number> {
  const { flags, config } = run;
  run.progress(
    `starting the lab with ${config.file ? `config ${config.file}` : 'the default config'} (synthesizes first when the assembly is stale or the config changed)`,
  );
  let lab: LabRuntime;
  try {
    lab = await startLabRuntime({
      projectDir: run.projectDir,
      labDir: run.labDir,
      cdkOut: config.cdkOut,
      synthContext: config.file ? { config: config.file } : {},
      synthInputFiles: config.file ? [config.file] : [],
      registerThingTps: flags.registerTps,
      stacks: flags.stack === undefined ? undefined : [flags.stack],
      // The consumer's 5-second batching window is a cost setting; the lab shortens it to 1 s.
      maxBatchingWindowMs: 1_000,
      log: run.log,
    });
  } catch (err) {
    run.log({ level: 'info', msg: 'lab start failed', error: (err as Error).stack ?? String(err) });
    const fix =
      err instanceof SynthError
        ? `fix ${config.file ? `the config ${config.file}` : 'the app'} and run again`
        : `see ${run.labLogFile} for details`;
    process.stderr.write(`lab: could not start: ${firstLine(err)}; ${fix}\n`);
    return EXIT.checkFailed;
  }
  try {
    return { lab, stackName: labStackName(lab) };
  } catch (err) {
    if (!(err instanceof LabStackError)) throw err;
    run.quietenForStop();
    await lab.stop();
    process.stderr.write(`lab: ${err.message}\n`);
    return EXIT.usage;
  }
}

/** Run the scenario, print (and write) the report; returns the exit code. */
async function scenarioExitCode(run: LabRun, lab: LabRuntime): Promise<number> {
  const { flags } = run;
  let report: ScenarioReport;
  try {
    report = await runScenario(lab, {
      devices: flags.devices,
      concurrency: flags.concurrency,
      registerThingTps: flags.registerTps,
      mqtt5Share: flags.mqtt5Share,
      labDir: run.labDir,
      progressBar: flags.quiet ? false : 'auto',
      log: run.progress,
      telemetry:
        flags.streamSeconds === 0
          ? false
          : { durationMs: flags.streamSeconds * 1000, kinesisOutage: flags.outage },
    });
  } catch (err) {
    run.log({ level: 'info', msg: 'scenario failed', error: (err as Error).stack ?? String(err) });
    if (err instanceof PlanError) {
      process.stderr.write(`lab: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(
      `lab: the scenario could not run: ${firstLine(err)}; see ${run.labLogFile} for details\n`,
    );
    return EXIT.checkFailed;
  }
  for (const line of formatReport(report)) run.say(line);
  const totalMs = Date.now() - run.started;
  run.say(`Total: ${(totalMs / 1000).toFixed(1)} s from start to report.`);
  if (flags.report) {
    const path = resolve(run.projectDir, flags.report);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(
      path,
      `${JSON.stringify({ ...report, timings: { ...report.timings, totalMs }, labErrors: run.errors }, null, 2)}\n`,
    );
    run.say(`Report written to ${path}`);
  }
  if (report.ok) return EXIT.ok;
  process.stderr.write(`\nlab: the scenario failed:\n${report.failures.map((f) => `  - ${f}`).join('\n')}\n`);
  return EXIT.checkFailed;
}

/** --keep-running: print the endpoints and exports, then wait for Ctrl-C. */
async function keepRunning(run: LabRun, lab: LabRuntime): Promise<void> {
  const caFile = join(run.labDir, 'ca.pem');
  await writeFile(caFile, lab.endpoints.mqtt.caPem);
  for (const line of exportLines(lab, caFile, run.labDir)) run.say(line);
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  run.say('\nstopping the lab');
}

async function main(): Promise<number> {
  const run = prepareRun(parseArgs(process.argv.slice(2)));
  const started = await startLab(run);
  if (typeof started === 'number') {
    await closeLabLog();
    return started;
  }
  const { lab, stackName } = started;
  const startupMs = Date.now() - run.started;
  if (!run.flags.quiet) for (const line of lab.summary()) run.say(line);
  run.say(
    `Lab started in ${(startupMs / 1000).toFixed(1)} s (${lab.timings.synthMs ? `synth ${(lab.timings.synthMs / 1000).toFixed(1)} s: ${lab.assembly.synthReason ?? 'stale'}` : 'assembly up to date'}); ${describeStack(lab, stackName, run.projectDir, run.config)}; ${lab.topology.unsupported.length} UNSUPPORTED resource type(s)`,
  );
  const code = await scenarioExitCode(run, lab);
  if (run.flags.keepRunning) await keepRunning(run, lab);
  run.quietenForStop();
  await lab.stop();
  if (!run.flags.quiet) run.say(`Lab log (policy decisions, provisioning, rules): ${run.labLogFile}`);
  await closeLabLog();
  return code;
}

/** The lab log, once the lab directory is known to be usable. */
let labLog: WriteStream | undefined;

function closeLabLog(): Promise<void> {
  const stream = labLog;
  labLog = undefined;
  return new Promise((done) => (stream ? stream.end(done) : done()));
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    if (err instanceof LabUsageError) {
      process.stderr.write(`lab: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    labLog?.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'lab failed', error: (err as Error).stack })}\n`,
    );
    await closeLabLog();
    process.stderr.write(`lab: ${firstLine(err)}\n`);
    process.exit(EXIT.checkFailed);
  },
);
