/** storeThingIdentity keeps an issued identity inside its directory, whatever name it is given. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeThingIdentity, thingNameProblem } from '../../../device/thing-identity';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'thing-identity-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

const identity = (thingName: string) => ({
  thingName,
  certificateId: 'c0ffee',
  credentials: { certPem: 'CERT', keyPem: 'KEY' },
});

test.each([['../escape'], ['..'], ['sub/thing'], ['sub\\thing'], ['/etc/thing'], [''], ['x'.repeat(129)]])(
  'refuses the thing name %j and writes nothing',
  async (thingName) => {
    const dir = join(root, 'certs');
    await expect(storeThingIdentity(dir, 'SN-1', identity(thingName))).rejects.toThrow(
      `refusing to store the identity of SN-1: thing name ${JSON.stringify(thingName)}`,
    );
    expect(await readdir(root)).toEqual([]);
  },
);

test('stores a real thing name as three files in the directory', async () => {
  const dir = join(root, 'certs');
  await storeThingIdentity(dir, 'SN-1', identity('fleet-SN:1_a'));
  expect((await readdir(dir)).sort()).toEqual([
    'fleet-SN:1_a.cert.pem',
    'fleet-SN:1_a.json',
    'fleet-SN:1_a.private.key',
  ]);
});

test.each([
  ['fleet-SN000001', undefined],
  ['a:b_c-D9', undefined],
  ['x'.repeat(128), undefined],
  ['x'.repeat(129), 'is longer than 128 characters, so it is not an AWS IoT thing name'],
  ['../escape', 'is not an AWS IoT thing name (only A-Z a-z 0-9 : _ -, at most 128 characters)'],
  ['', 'is empty'],
])('thingNameProblem(%j) is %j', (name, problem) => {
  expect(thingNameProblem(name)).toBe(problem);
});
