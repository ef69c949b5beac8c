/**
 * `npm run lab [-- options]`: start the local lab on the synthesized stack and run the
 * enrollment scenario (see lab/scenario/run.ts and docs/lab.md). Exits non-zero, naming what
 * failed, when an expectation of the scenario fails.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { createWriteStream, mkdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { startLabRuntime, type LabLog, type LabRuntime } from './runtime';
import { MIN_DEVICES_WITH_BAD_CASES } from './scenario/plan';
import { formatReport } from './scenario/report';
import { runScenario, type ScenarioReport } from './scenario/run';

interface LabFlags {
  devices: number;
  report?: string;
  keepRunning?: boolean;
  registerTps?: number;
  concurrency?: number;
  quiet?: boolean;
  labDir: string;
}

function positiveInt(flag: string, min = 1, why = '') {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(
        min === 1
          ? `${flag} must be a positive whole number`
          : `${flag} must be a whole number of at least ${min}${why}; use ${flag} ${min} or more`,
      );
    return n;
  };
}

function parseArgs(argv: string[]): LabFlags {
  const program = new Command('npm run lab --')
    .description('Run the fleet stack offline from cdk.out and drive the enrollment scenario through it.')
    .option(
      '--devices <n>',
      'simulated units, bad cases included',
      positiveInt(
        '--devices',
        MIN_DEVICES_WITH_BAD_CASES,
        ' (a good unit per lot, every bad case and the recovery case)',
      ),
      200,
    )
    .option('--report <path>', 'write the JSON report here')
    .option(
      '--keep-running',
      'leave the lab up after the scenario (Ctrl-C stops it) and print what to export',
    )
    .option(
      '--register-tps <q>',
      'enforce a RegisterThing quota of Q transactions per second',
      positiveInt('--register-tps'),
    )
    .option(
      '--concurrency <c>',
      'units enrolling at the same time (default 32)',
      positiveInt('--concurrency'),
    )
    .option('--quiet', 'print only the summary')
    .option('--lab-dir <dir>', 'working directory (claims, manifest, logs, CA)', '.lab')
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode));
  program.parse(argv, { from: 'user' });
  return program.opts<LabFlags>();
}

function exportLines(lab: LabRuntime, caFile: string, labDir: string): string[] {
  const env = {
    ...lab.env,
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

async function main(): Promise<number> {
  const flags = parseArgs(process.argv.slice(2));
  const projectDir = process.cwd();
  const labDir = resolve(projectDir, flags.labDir);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const progress = (line: string): void => {
    if (!flags.quiet) say(`· ${line}`);
  };
  const errors: string[] = [];
  // Every entry of the lab itself (policy decisions, provisioning, rules) goes to lab.log as a
  // JSON line; warnings (e.g. a policy denial and why) and errors are also shown here.
  const labLogFile = join(labDir, 'logs', 'lab.log');
  mkdirSync(dirname(labLogFile), { recursive: true });
  const labLog = createWriteStream(labLogFile, { flags: 'w' });
  // Sessions closing while the lab stops produce expected noise; it stays in lab.log only.
  let stopping = false;
  const log: LabLog = (e) => {
    labLog.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    if (e.level === 'error') errors.push(e.msg);
    if (e.level !== 'info' && !flags.quiet && !stopping)
      process.stderr.write(
        `lab ${e.level}: ${e.msg} ${JSON.stringify({ ...e, level: undefined, msg: undefined })}\n`,
      );
  };

  progress('starting the lab (synthesizes cdk.out first when it is stale)');
  const started = Date.now();
  let lab: LabRuntime;
  try {
    lab = await startLabRuntime({ projectDir, labDir, registerThingTps: flags.registerTps, log });
  } catch (err) {
    process.stderr.write(`lab: could not start: ${(err as Error).message}\n`);
    return 2;
  }
  const startupMs = Date.now() - started;
  if (!flags.quiet) for (const line of lab.summary()) say(line);
  say(
    `Lab started in ${(startupMs / 1000).toFixed(1)} s (synth ${(lab.timings.synthMs / 1000).toFixed(1)} s); ${lab.topology.unsupported.length} UNSUPPORTED resource type(s)`,
  );

  let report: ScenarioReport | undefined;
  let code = 0;
  try {
    report = await runScenario(lab, {
      devices: flags.devices,
      concurrency: flags.concurrency,
      registerThingTps: flags.registerTps,
      labDir,
      progressBar: flags.quiet ? false : 'auto',
      log: progress,
    });
  } catch (err) {
    process.stderr.write(`lab: the scenario could not run: ${(err as Error).stack ?? String(err)}\n`);
    code = 1;
  }
  if (report) {
    for (const line of formatReport(report)) say(line);
    const totalMs = Date.now() - started;
    say(`Total: ${(totalMs / 1000).toFixed(1)} s from start to report.`);
    if (flags.report) {
      const path = resolve(projectDir, flags.report);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(
        path,
        `${JSON.stringify({ ...report, timings: { ...report.timings, totalMs }, labErrors: errors }, null, 2)}\n`,
      );
      say(`Report written to ${path}`);
    }
    if (!report.ok) {
      process.stderr.write(
        `\nlab: the scenario failed:\n${report.failures.map((f) => `  - ${f}`).join('\n')}\n`,
      );
      code = 1;
    }
  }

  if (flags.keepRunning) {
    const caFile = join(labDir, 'ca.pem');
    await mkdir(labDir, { recursive: true });
    await writeFile(caFile, lab.endpoints.mqtt.caPem);
    for (const line of exportLines(lab, caFile, labDir)) say(line);
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    say('\nstopping the lab');
  }
  stopping = true;
  await lab.stop();
  say(`Lab log (policy decisions, provisioning, rules): ${labLogFile}`);
  await new Promise<void>((done) => labLog.end(done));
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`lab: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
