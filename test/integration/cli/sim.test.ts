/**
 * `fleet sim` exit codes and summary against an mTLS MQTT responder on loopback (in-process),
 * and the real entry point against a closed loopback port: it gives up, prints the cause, exits
 * with code 1 on its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, type FleetResources } from '../../../cli/context';
import { EXIT_CODES } from '../../../cli/errors';
import { memorySink, type MemorySink } from '../../../cli/output';
import { ContextFactory, main } from '../../../cli/program';
import { healthReportSchema, LAST_WILL_PAYLOAD, telemetryPayloadSchema } from '../../../core/telemetry';
import { closedLoopbackPort } from '../device/support/ports';
import { ScriptedIot } from '../device/support/responder';

const root = join(__dirname, '..', '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

let iot: ScriptedIot;
let dir: string;
let files: { ca: string; cert: string; key: string };

beforeAll(async () => {
  iot = await ScriptedIot.start();
  dir = await mkdtemp(join(tmpdir(), 'fleet-sim-cli-'));
  const claim = await iot.claim('LOT-A');
  files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'claim.pem'), key: join(dir, 'claim.key') };
  await writeFile(files.ca, iot.serverCaPem);
  await writeFile(files.cert, claim.certPem);
  await writeFile(files.key, claim.keyPem);
});
afterAll(async () => {
  await iot.stop();
  await rm(dir, { recursive: true, force: true });
});

const templates = () => [
  {
    templateName: iot.templateName,
    claimPolicyName: 'ClaimPolicy',
    thingTypeName: 'Sensor',
    claimClientIdPrefix: 'claim-',
  },
];

/** `sim` against 127.0.0.1:`port` with the CA and claim files `pem` (those beforeAll wrote unless given). */
function simCommand(
  port: number = iot.port,
  pem: { ca: string; cert: string; key: string } = files,
): string[] {
  return [
    'sim',
    '--endpoint',
    `127.0.0.1:${port}`,
    '--ca',
    pem.ca,
    '--claim-cert',
    pem.cert,
    '--claim-key',
    pem.key,
  ];
}

/** Waits for `child` to end: its exit code and everything it wrote. */
async function outcome(
  child: ChildProcess,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c) => (stdout += String(c)));
  child.stderr?.on('data', (c) => (stderr += String(c)));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

function harness(extra: FleetResources = {}): {
  run: (args: string[]) => Promise<number>;
  out: MemorySink;
  stderr: string[];
} {
  const out = memorySink();
  const stderr: string[] = [];
  const factory: ContextFactory = async () =>
    createContext({
      resources: { provisioningTemplates: templates(), topicPrefix: 'plant7', ...extra },
      out,
    });
  return {
    out,
    stderr,
    run: (args) => main([...simCommand(), ...args], factory, { stderr: (t) => void stderr.push(t), env: {} }),
  };
}

test('every unit enrolled: exit 0; the template, client id prefix and topic prefix come from the stack', async () => {
  iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
  const h = harness();
  expect(await h.run(['--serial', 'OK-0001,OK-0002'])).toBe(EXIT_CODES.ok);
  expect(h.out.lines[0]).toMatch(/^Enrollment: 2\/2 enrolled, 0 denied, 0 gave up/);
  expect(h.out.lines.join('\n')).not.toMatch(/gave up:/);
  expect(iot.connections.filter((c) => c.clientId === 'claim-OK-0001')).not.toHaveLength(0);
  expect(iot.connections.find((c) => c.clientId === 'fleet-OK-0001')?.will?.topic).toBe(
    'dt/plant7/fleet-OK-0001/health',
  );
});

test('a denied unit: exit 1, and the summary names the reason (also in --json)', async () => {
  iot.onRegister = (call) =>
    call.parameters.SerialNumber === 'DENY-0002'
      ? { reject: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: '[LOT_ON_HOLD] lot on hold' } }
      : { accept: { thingName: `fleet-${call.parameters.SerialNumber}` } };
  const h = harness();
  expect(await h.run(['--serial', 'DENY-0001,DENY-0002'])).toBe(EXIT_CODES.failed);
  expect(h.out.lines[0]).toMatch(/^Enrollment: 1\/2 enrolled, 1 denied, 0 gave up/);
  expect(h.out.lines.join('\n')).toMatch(/denied by reason:\n\s+LOT_ON_HOLD\s+1/);

  const json = harness();
  expect(await json.run(['--serial', 'DENY-0003,DENY-0002', '--json'])).toBe(EXIT_CODES.failed);
  expect(json.out.values[0]).toMatchObject({
    attempted: 2,
    enrolled: 1,
    deniedByReason: { LOT_ON_HOLD: 1 },
    gaveUp: 0,
    gaveUpByCause: {},
  });
});

test('units that give up: exit 1, the cause grouped in the summary and in --json', async () => {
  iot.onCreate = () => ({ statusCode: 503, errorCode: 'ServiceUnavailable', errorMessage: 'busy' });
  try {
    const h = harness();
    expect(await h.run(['--serial', 'BUSY-0001,BUSY-0002', '--max-attempts', '1'])).toBe(EXIT_CODES.failed);
    expect(h.out.lines).toContain('  gave up: 2 (CreateCertificateFromCsr 503 ServiceUnavailable)');

    const json = harness();
    expect(await json.run(['--serial', 'BUSY-0003', '--max-attempts', '1', '--json'])).toBe(
      EXIT_CODES.failed,
    );
    expect(json.out.values[0]).toMatchObject({
      attempted: 1,
      enrolled: 0,
      gaveUp: 1,
      gaveUpByCause: { 'CreateCertificateFromCsr 503 ServiceUnavailable': 1 },
    });
  } finally {
    iot.onCreate = undefined;
  }
});

test('--mqtt 5: every session of the run on MQTT 5, said in the summary and in --json', async () => {
  iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
  const h = harness();
  expect(await h.run(['--serial', 'V5-0001,V5-0002', '--mqtt', '5'])).toBe(EXIT_CODES.ok);
  expect(h.out.lines[0]).toMatch(/^Enrollment: 2\/2 enrolled, 0 denied, 0 gave up/);
  expect(h.out.lines[1]).toMatch(/; MQTT 5$/);
  const json = harness();
  expect(await json.run(['--serial', 'V5-0003', '--mqtt', '5', '--json'])).toBe(EXIT_CODES.ok);
  expect(json.out.values[0]).toMatchObject({ enrolled: 1, mqttVersions: { '5': 1 } });
  // A bad version is bad usage (exit 2), before any connection.
  const bad = harness();
  const connections = iot.connections.length;
  expect(await bad.run(['--serial', 'V5-0002', '--mqtt', '4'])).toBe(EXIT_CODES.usage);
  expect(bad.stderr.join('')).toContain(
    '--mqtt "4" is not an MQTT version the simulator speaks; use --mqtt 3.1.1 or --mqtt 5',
  );
  expect(iot.connections).toHaveLength(connections);
});

test('the real CLI against a closed port gives up, prints the cause and exits 1 on its own', async () => {
  const port = await closedLoopbackPort();
  const r = await outcome(
    spawn(
      tsx,
      [
        join(root, 'bin', 'fleet.ts'),
        ...simCommand(port),
        '--serial',
        'GONE-0001,GONE-0002',
        '--max-attempts',
        '2',
        '--templates',
        JSON.stringify(templates()),
        '--topic-prefix',
        'fleet',
      ],
      {
        cwd: root,
        // FLEET_DEBUG=1: were anything still open a second after the command finished, the entry
        // point would name it on stderr (and the process would not end).
        env: { ...process.env, FLEET_DEBUG: '1', FLEET_PROVISIONING_TEMPLATES: '', FLEET_TOPIC_PREFIX: '' },
      },
    ),
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT_CODES.failed);
  expect(r.stdout).toMatch(/^Enrollment: 0\/2 enrolled, 0 denied, 2 gave up, 2 retries$/m);
  expect(r.stdout).toContain(`  gave up: 2 (ECONNREFUSED 127.0.0.1:${port})`);
}, 120_000);

/** The real entry point, with no AWS region, profile or stack contract in the environment. */
async function fleetOffline(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
  };
  for (const name of [
    'AWS_REGION',
    'AWS_DEFAULT_REGION',
    'AWS_PROFILE',
    'FLEET_PROVISIONING_TEMPLATES',
    'FLEET_TOPIC_PREFIX',
  ])
    delete env[name];
  return outcome(spawn(tsx, [join(root, 'bin', 'fleet.ts'), ...args], { cwd: root, env }));
}

describe('the real CLI checks the PEM files before connecting: a local mistake is bad usage, never a denial', () => {
  const simArgs = (ca: string, cert: string, key: string) => [
    ...simCommand(iot.port, { ca, cert, key }),
    '--serial',
    'PEM-0001',
    '--template',
    iot.templateName,
    '--claim-client-id-prefix',
    'claim-',
    '--topic-prefix',
    'fleet',
  ];

  test('swapped --claim-cert and --claim-key: exit 2, one line, no connection', async () => {
    const before = iot.connections.length;
    const r = await fleetOffline(simArgs(files.ca, files.key, files.cert));
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toBe(
      `error: --claim-cert ${files.key} holds a private key and --claim-key ${files.cert} a certificate: they are swapped; pass --claim-cert ${files.cert} --claim-key ${files.key}\n`,
    );
    expect(r.stdout).toBe('');
    expect(iot.connections.length).toBe(before);
  }, 60_000);

  test('a --ca that is not PEM: exit 2 like a missing file, naming the file and the fix', async () => {
    const text = join(dir, 'hostname');
    await writeFile(text, 'my-host\n');
    const r = await fleetOffline(simArgs(text, files.cert, files.key));
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toBe(
      `error: --ca ${text} holds no PEM block, not a CA certificate; give the CA that signs the endpoint's server certificate (AmazonRootCA1.pem for AWS IoT, the lab's ca.pem for the lab)\n`,
    );
  }, 60_000);
});

describe('offline fleet sim: --template with --claim-client-id-prefix and --topic-prefix stand for the stack', () => {
  test('enrolls with no AWS region and no --templates JSON', async () => {
    iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
    const r = await fleetOffline([
      ...simCommand(),
      '--serial',
      'OFF-0001',
      '--template',
      iot.templateName,
      '--claim-client-id-prefix',
      'offline-',
      '--topic-prefix',
      'plant9',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT_CODES.ok);
    expect(r.stdout).toMatch(/^Enrollment: 1\/1 enrolled, 0 denied, 0 gave up/m);
    expect(iot.connections.some((c) => c.clientId === 'offline-OFF-0001')).toBe(true);
    expect(iot.connections.find((c) => c.clientId === 'fleet-OFF-0001')?.will?.topic).toBe(
      'dt/plant9/fleet-OFF-0001/health',
    );
  }, 60_000);

  test('--template alone still needs the templates, and the error says which flags to pass offline', async () => {
    const r = await fleetOffline([
      ...simCommand(),
      '--template',
      iot.templateName,
      '--topic-prefix',
      'fleet',
    ]);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^error: no AWS region: .*provisioningTemplates/);
    expect(r.stderr).toContain(
      'Without a stack to read, give the contract values as flags: --template NAME --claim-client-id-prefix PREFIX --topic-prefix PREFIX, e.g.\n  fleet sim --endpoint localhost:8883',
    );
  }, 60_000);
});

describe('fleet sim --stream-seconds: telemetry and health after enrollment', () => {
  const RULES = { telemetry: 'plant7_telemetry', health: 'plant7_health' };
  const streamArgs = ['--stream-seconds', '1', '--telemetry-interval', '0.05', '--readings-per-message', '4'];
  beforeEach(() => {
    iot.onRegister = (call) => ({ accept: { thingName: `fleet-${call.parameters.SerialNumber}` } });
  });
  const mine = (serials: string[]) =>
    iot.published.filter((p) => serials.some((s) => p.clientId === `fleet-${s}`));

  test('over Basic Ingest with the stack rule names: valid payloads, every acked message arrived once', async () => {
    const h = harness({ telemetryRules: RULES });
    const code = await h.run([
      '--serial',
      'STR-0001,STR-0002',
      ...streamArgs,
      '--health-interval',
      '0.5',
      '--seed',
      'cli',
      '--json',
    ]);
    expect(h.stderr).toEqual([]);
    expect(code).toBe(EXIT_CODES.ok);
    const summary = h.out.values[0] as {
      enrolled: number;
      stream: { devices: number; telemetry: { acked: number; pending: number }; health: { acked: number } };
    };
    expect(summary).toMatchObject({ enrolled: 2, stream: { devices: 2, telemetry: { pending: 0 } } });
    const got = mine(['STR-0001', 'STR-0002']);
    const telemetry = got.filter((p) => p.topic.endsWith('/telemetry'));
    const health = got.filter((p) => p.topic.endsWith('/health') && !p.payload.includes('connection'));
    expect(telemetry.length).toBe(summary.stream.telemetry.acked);
    expect(health.length).toBe(summary.stream.health.acked);
    expect(telemetry.length).toBeGreaterThan(0);
    expect(health.length).toBeGreaterThanOrEqual(2);
    for (const p of telemetry) {
      expect(p.topic).toBe(`$aws/rules/plant7_telemetry/dt/plant7/${p.clientId}/telemetry`);
      expect(() => telemetryPayloadSchema.parse(JSON.parse(p.payload))).not.toThrow();
    }
    for (const p of health) {
      expect(p.topic).toBe(`$aws/rules/plant7_health/dt/plant7/${p.clientId}/health`);
      expect(healthReportSchema.parse(JSON.parse(p.payload))).toMatchObject({ resetReason: 'POWER_ON' });
    }
    // Stopped with DISCONNECT: no Last Will.
    expect(got.filter((p) => p.payload === JSON.stringify(LAST_WILL_PAYLOAD))).toEqual([]);
  });

  test('--direct publishes on dt/<prefix>/<thing>/…, and the summary gives the ledger', async () => {
    const h = harness();
    expect(await h.run(['--serial', 'DIR-0001', ...streamArgs, '--direct'])).toBe(EXIT_CODES.ok);
    // The enrollment summary comes before streaming starts, the ledger after it ends.
    expect(h.out.lines[0]).toMatch(/^Enrollment: 1\/1 enrolled/);
    const started = h.out.lines.indexOf('streaming from 1 unit(s) for 1 s ...');
    expect(started).toBeGreaterThan(0);
    expect(h.out.lines.findIndex((l) => l.startsWith('Streaming: '))).toBeGreaterThan(started);
    const text = h.out.lines.join('\n');
    expect(text).toMatch(/^Streaming: 1 device\(s\); healthy 1$/m);
    expect(text).toMatch(/^ {2}telemetry: \d+ made, \d+ acked, 0 pending, 0 dropped/m);
    expect(text).toMatch(/^ {2}links: 1 connects, 0 failed, 0 cut \(Last Will\), 0 lost, 1 closed$/m);
    const topics = new Set(mine(['DIR-0001']).map((p) => p.topic));
    expect(topics).toEqual(
      new Set(['dt/plant7/fleet-DIR-0001/telemetry', 'dt/plant7/fleet-DIR-0001/health']),
    );
  });

  test('--profile gives a firmware its behaviour', async () => {
    const h = harness({ telemetryRules: RULES });
    const code = await h.run([
      '--serial',
      'PRF-0001',
      '--firmware',
      '1.1.0-rc1',
      ...streamArgs,
      '--profile',
      '1.1.0-rc1=flaky',
      '--profile',
      '1.0.0=healthy',
      '--json',
    ]);
    expect(code).toBe(EXIT_CODES.ok);
    const summary = h.out.values[0] as {
      stream: { byDevice: Record<string, { profile: string; firmware: string }> };
    };
    expect(summary.stream.byDevice['fleet-PRF-0001']).toMatchObject({
      profile: 'flaky',
      firmware: '1.1.0-rc1',
    });
  });

  test('without the rule names and without --direct: exit 2 naming the fix, before any device connects', async () => {
    const h = harness();
    const before = iot.connections.length;
    expect(await h.run(['--serial', 'NOR-0001', ...streamArgs])).toBe(EXIT_CODES.usage);
    expect(h.stderr.join('')).toContain(
      `error: streaming over Basic Ingest needs the telemetry rule names: pass --telemetry-rules '{"telemetry":"fleet_telemetry","health":"fleet_health"}', set FLEET_TELEMETRY_RULES, deploy the stack with output TelemetryRules, or publish to the direct topics with --direct`,
    );
    expect(iot.connections.length).toBe(before);
  });

  test.each([
    [['--stream-seconds', '0'], /option '--stream-seconds <n>' argument '0' is invalid/],
    [
      ['--stream-seconds', '5', '--telemetry-interval', 'fast'],
      /option '--telemetry-interval <s>' argument 'fast' is invalid/,
    ],
    [
      ['--stream-seconds', '5', '--health-interval', '0'],
      /option '--health-interval <s>' argument '0' is invalid/,
    ],
    [
      ['--stream-seconds', '5', '--readings-per-message', '101'],
      /--readings-per-message "101" must be a whole number from 1 to 100/,
    ],
    [
      ['--stream-seconds', '5', '--profile', '1.0.0'],
      /--profile "1.0.0" is not <firmware>=<profile>; e.g. 1.1.0-rc1=crash-looping/,
    ],
    [
      ['--stream-seconds', '5', '--profile', '1.0.0=wobbly'],
      /--profile "wobbly" is not a profile; use one of healthy, flaky, crash-looping/,
    ],
    [['--stream-seconds', '5', '--profile', 'v1=flaky'], /--profile "v1" is not a firmware version/],
    [
      ['--direct', '--readings-per-message', '3'],
      /--readings-per-message, --direct only apply when streaming; add --stream-seconds N/,
    ],
  ])('%j: bad usage naming the flag and the fix', async (args, message) => {
    const h = harness({ telemetryRules: RULES });
    const before = iot.connections.length;
    expect(await h.run(['--serial', 'BAD-0001', ...args])).toBe(EXIT_CODES.usage);
    expect(h.stderr.join('')).toMatch(message);
    expect(iot.connections.length).toBe(before);
  });

  test('the real CLI streams, then exits by itself with nothing left open', async () => {
    const r = await outcome(
      spawn(
        tsx,
        [
          join(root, 'bin', 'fleet.ts'),
          ...simCommand(),
          '--serial',
          'EXIT-0001',
          '--templates',
          JSON.stringify(templates()),
          '--topic-prefix',
          'fleet',
          '--telemetry-rules',
          JSON.stringify(RULES),
          ...streamArgs,
        ],
        { cwd: root, env: { ...process.env, FLEET_DEBUG: '1' } },
      ),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT_CODES.ok);
    expect(r.stdout).toMatch(/^Streaming: 1 device\(s\); healthy 1$/m);
  }, 120_000);
});
