/**
 * `fleet sim`'s OTA flags through `main`: a bad --release-key, --ota-profile or
 * --ota-step-timeout exits 2 with one line naming the flag and the fix, before any device
 * connects (the responder on loopback counts connections).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../../../cli/context';
import { EXIT_CODES } from '../../../cli/errors';
import { memorySink } from '../../../cli/output';
import { ContextFactory, main } from '../../../cli/program';
import { ScriptedIot } from '../device/support/responder';

let iot: ScriptedIot;
let dir: string;
let files: { ca: string; cert: string; key: string; releaseKey: string; p384: string };

beforeAll(async () => {
  iot = await ScriptedIot.start();
  dir = await mkdtemp(join(tmpdir(), 'fleet-sim-ota-'));
  const claim = await iot.claim('LOT-A');
  files = {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, 'claim.pem'),
    key: join(dir, 'claim.key'),
    releaseKey: join(dir, 'release.pub.pem'),
    p384: join(dir, 'p384.pub.pem'),
  };
  await writeFile(files.ca, iot.serverCaPem);
  await writeFile(files.cert, claim.certPem);
  await writeFile(files.key, claim.keyPem);
  const pub = (curve: string) =>
    generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({
      type: 'spki',
      format: 'pem',
    }) as string;
  await writeFile(files.releaseKey, pub('P-256'));
  await writeFile(files.p384, pub('P-384'));
});
afterAll(async () => {
  await iot.stop();
  await rm(dir, { recursive: true, force: true });
});

async function sim(args: string[]): Promise<{ code: number; stderr: string }> {
  const stderr: string[] = [];
  const factory: ContextFactory = async () =>
    createContext({
      resources: {
        provisioningTemplates: [
          {
            templateName: iot.templateName,
            claimPolicyName: 'ClaimPolicy',
            thingTypeName: 'Sensor',
            claimClientIdPrefix: 'claim-',
          },
        ],
        topicPrefix: 'plant7',
      },
      out: memorySink(),
    });
  const code = await main(
    [
      'sim',
      '--endpoint',
      `127.0.0.1:${iot.port}`,
      '--ca',
      files.ca,
      '--claim-cert',
      files.cert,
      '--claim-key',
      files.key,
      '--serial',
      'OTA-0001',
      '--direct',
      '--stream-seconds',
      '1',
      ...args,
    ],
    factory,
    { stderr: (t) => void stderr.push(t), env: {} },
  );
  return { code, stderr: stderr.join('') };
}

test.each<[string, () => string[], RegExp]>([
  [
    'profiles without a key',
    () => ['--ota-profile', '3.0.0=good'],
    /--ota-profile only apply .* add --release-key FILE/,
  ],
  [
    'a key of another curve',
    () => ['--release-key', files.p384],
    /--release-key .*p384\.pub\.pem is not an ECDSA P-256 key/,
  ],
  ['a missing key file', () => ['--release-key', join(dir, 'none.pem')], /--release-key/],
  [
    'an unknown OTA profile',
    () => ['--release-key', files.releaseKey, '--ota-profile', '3.0.0=bricks'],
    /--ota-profile "bricks" is not an OTA profile/,
  ],
  [
    'a step timeout over 7 days',
    () => ['--release-key', files.releaseKey, '--ota-step-timeout', '20000'],
    /--ota-step-timeout "20000" must be a whole number of minutes from 1 to 10080/,
  ],
])('%s: exit 2 naming the flag and the fix, no connection', async (_name, args, message) => {
  const before = iot.connections.length;
  const r = await sim(args());
  expect(r.code).toBe(EXIT_CODES.usage);
  expect(r.stderr).toMatch(message);
  expect(iot.connections.length).toBe(before);
});

test('fleet sim --help lists the OTA flags', async () => {
  const out: string[] = [];
  await main(['sim', '--help'], async () => createContext({ resources: {}, out: memorySink() }), {
    stdout: (t) => void out.push(t),
    stderr: (t) => void out.push(t),
    env: {},
  });
  const help = out.join('');
  for (const flag of ['--release-key <file>', '--ota-profile <fw=profile>', '--ota-step-timeout <minutes>'])
    expect(help).toContain(flag);
  expect(help).toContain('Firmware updates (--release-key FILE, with --stream-seconds)');
});
