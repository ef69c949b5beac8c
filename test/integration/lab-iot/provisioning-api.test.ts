/** ProvisioningApi with an injected clock: ownership-token lifetime and the RegisterThing token bucket. */
import { LabCa } from '../../../lab/iot/ca';
import { OWNERSHIP_TOKEN_TTL_MS, ProvisioningApi, TokenBucket } from '../../../lab/iot/provisioning';
import { IotRegistry } from '../../../lab/iot/state';

const body = JSON.stringify({
  Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: { ThingName: { Ref: 'SerialNumber' }, ThingGroups: ['missing-group'] },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } },
    },
  },
});

let ca: LabCa;
beforeAll(async () => {
  ca = await LabCa.create();
});

function setup(): { api: ProvisioningApi; reg: IotRegistry; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const reg = new IotRegistry('us-east-1', '123456789012');
  reg.putProvisioningTemplate({ name: 'tpl', body, enabled: true });
  const api = new ProvisioningApi({
    registry: reg,
    ca,
    invokeLambda: async () => ({ allowProvisioning: true }),
    now: () => clock.t,
  });
  return { api, reg, clock };
}

const req = { clientId: 'prov-1', certificateId: 'claim' };
const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));

test('an ownership token older than 1 hour is rejected and its unactivated certificate deleted', async () => {
  const { api, reg, clock } = setup();
  const created = await api.handle('$aws/certificates/create/json', Buffer.alloc(0), req);
  const token = created?.payload.certificateOwnershipToken as string;
  const certificateId = created?.payload.certificateId as string;
  clock.t += OWNERSHIP_TOKEN_TTL_MS + 1;
  const r = await api.handle(
    '$aws/provisioning-templates/tpl/provision/json',
    json({ certificateOwnershipToken: token, parameters: { SerialNumber: 'S1' } }),
    req,
  );
  expect(r?.topic).toBe('$aws/provisioning-templates/tpl/provision/json/rejected');
  expect(r?.payload).toEqual({
    statusCode: 400,
    errorCode: 'InvalidCertificateOwnershipToken',
    errorMessage: 'Certificate ownership token has expired.',
  });
  expect(reg.certificates.has(certificateId)).toBe(false);
});

test('a missing thing group rejects the request and leaves no partial state', async () => {
  const { api, reg } = setup();
  const created = await api.handle('$aws/certificates/create/json', Buffer.alloc(0), req);
  const rec = reg.getCertificate(created?.payload.certificateId as string);
  const r = await api.handle(
    '$aws/provisioning-templates/tpl/provision/json',
    json({
      certificateOwnershipToken: created?.payload.certificateOwnershipToken,
      parameters: { SerialNumber: 'S2' },
    }),
    req,
  );
  expect(r?.payload).toEqual(expect.objectContaining({ statusCode: 404, errorCode: 'ResourceNotFound' }));
  expect(reg.things.size).toBe(0);
  expect(rec.status).toBe('PENDING_ACTIVATION');
});

test.each([
  ['unknown template', '$aws/provisioning-templates/nope/provision/json', 404, 'ResourceNotFound'],
  ['cbor format', '$aws/certificates/create/cbor', 400, 'InvalidPayload'],
])('%s is rejected', async (_n, topic, statusCode, errorCode) => {
  const { api } = setup();
  const r = await api.handle(topic, json({ certificateOwnershipToken: 'x' }), req);
  expect(r?.payload).toEqual(expect.objectContaining({ statusCode, errorCode }));
});

test('token bucket: burst of max(1, tps), refills at tps', () => {
  const clock = { t: 0 };
  const b = new TokenBucket(2, () => clock.t);
  expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
  clock.t += 500;
  expect([b.take(), b.take()]).toEqual([true, false]);
  clock.t += 10_000;
  expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
});
