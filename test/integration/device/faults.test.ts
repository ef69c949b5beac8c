import { faultAgentOptions, proofSigningKey } from '../../../device/faults';
import { generateFactoryKey, type FactoryIdentity } from '../../../device/identity';

test.each([
  [undefined, { method: 'csr', badAttestation: false }],
  [{}, { method: 'csr', badAttestation: false }],
  [{ useCreateKeys: true }, { method: 'createKeys', badAttestation: false }],
  [
    { badAttestation: true, cloneOf: 'SN1' },
    { method: 'csr', badAttestation: true },
  ],
])('faultAgentOptions(%j) → %j', (faults, options) => {
  expect(faultAgentOptions(faults)).toEqual(options);
});

test('the DeviceProof key: the factory key, none without one, and a stranger under badAttestation', () => {
  const factoryKey = generateFactoryKey();
  const id: FactoryIdentity = { serial: 'SN1', lot: 'L', hwRev: 'A', firmware: '1.0.0', factoryKey };
  expect(proofSigningKey(id, false)).toBe(factoryKey.privateKeyPem);
  expect(proofSigningKey({ ...id, factoryKey: undefined }, false)).toBeUndefined();
  const wrong = proofSigningKey({ ...id, factoryKey: undefined }, true);
  expect(wrong).toMatch(/BEGIN PRIVATE KEY/);
  expect(wrong).not.toBe(factoryKey.privateKeyPem);
});
