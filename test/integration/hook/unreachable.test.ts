/**
 * Fail closed: a bundled hook that cannot reach DynamoDB (connection refused, or a server that
 * accepts and never answers) denies with INTERNAL_ERROR within its budget instead of hanging.
 */
import { createServer, Server, Socket } from 'node:net';
import { AddressInfo } from 'node:net';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createTestCa, HOOK_ENTRY, hookEnv, hookEvent, IssuedCertificate } from './fixtures';

type Hook = (
  event: unknown,
) => Promise<{ allowProvisioning: boolean; parameterOverrides: Record<string, string> }>;

const tables = { devices: 'Devices', lots: 'Lots', events: 'Events' };
let blackhole: Server;
const sockets: Socket[] = [];
let cert: IssuedCertificate;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  cert = await (await (await createTestCa()).newDeviceKey()).issue();
  blackhole = createServer((s) => sockets.push(s));
});

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  cleanBundles();
});

test('connection refused: INTERNAL_ERROR deny', async () => {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const hook = loadBundledHandler<Hook>(
    HOOK_ENTRY,
    hookEnv(tables, `http://127.0.0.1:${port}`, 'http://127.0.0.1:9', 1500),
  );
  const res = await hook(hookEvent({ serial: 'SN-DOWN-0001', cert, claimCertificateId: 'claim-LOT-A' }));
  expect(res).toEqual({ allowProvisioning: false, parameterOverrides: {} });
});

test('a server that never answers: INTERNAL_ERROR deny at the budget', async () => {
  const port = await listen(blackhole);
  const hook = loadBundledHandler<Hook>(
    HOOK_ENTRY,
    hookEnv(tables, `http://127.0.0.1:${port}`, 'http://127.0.0.1:9', 400),
  );
  const res = await hook(hookEvent({ serial: 'SN-DOWN-0002', cert, claimCertificateId: 'claim-LOT-A' }));
  expect(res).toEqual({ allowProvisioning: false, parameterOverrides: {} });
});
