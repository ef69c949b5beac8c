/**
 * Issue 8, item 5: a fleet provisioning enrollment over MQTT 5 (mqtt.js, protocol version 5):
 * CreateCertificateFromCsr and RegisterThing with the claim certificate, then the device
 * reconnects as its thing on MQTT 5 with the issued certificate.
 */
import { DescribeCertificateCommand, DescribeThingCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore, IotMessage } from '../../../lab/iot';
import '../../../lab/iot/ca';
import {
  claimPolicy,
  connect5,
  csr,
  devicePolicy,
  endAll,
  FLEET_THING_RESOURCES,
  identity,
  pubackCode,
  request,
  startCore,
  stopCore,
  subscribe,
} from './helpers';

const TEMPLATE = 'fleet-tpl';
const body = JSON.stringify({
  Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: FLEET_THING_RESOURCES,
  DeviceConfiguration: { fw: '1.0.0' },
});

let core: IotCore;
let iot: IoTClient;
let claim: { cert: string; key: string; id: string };
const messages: IotMessage[] = [];
const open: MqttClient[] = [];

beforeAll(async () => {
  ({ core, iot } = await startCore({ invokeLambda: async () => ({ allowProvisioning: true }) }));
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
  core.registry.putProvisioningTemplate({
    name: TEMPLATE,
    body,
    enabled: true,
    hookArn: 'arn:aws:lambda:us-east-1:123456789012:function:hook',
  });
  claim = await identity(iot, 'fleet-claim');
});
afterEach(() => endAll(open));
afterAll(() => stopCore(core, iot));

async function conn5(creds: { cert: string; key: string }, clientId: string): Promise<MqttClient> {
  const { client } = await connect5(core, creds, clientId);
  open.push(client);
  return client;
}

test('MQTT 5 enrollment: CreateCertificateFromCsr, RegisterThing, reconnect as the thing on MQTT 5', async () => {
  const c = await conn5(claim, 'prov-M5-1');
  const { csrPem, keyPem } = await csr('CN=mqtt5-device');
  const created = await request(c, '$aws/certificates/create-from-csr/json', {
    certificateSigningRequest: csrPem,
  });
  expect(created.outcome).toBe('accepted');
  expect(Object.keys(created.payload).sort()).toEqual([
    'certificateId',
    'certificateOwnershipToken',
    'certificatePem',
  ]);
  const certificateId = created.payload.certificateId as string;
  const certificatePem = created.payload.certificatePem as string;
  expect(
    (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status,
  ).toBe('PENDING_ACTIVATION');

  const reg = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
    certificateOwnershipToken: created.payload.certificateOwnershipToken,
    parameters: { SerialNumber: 'M5-1' },
  });
  expect(reg).toEqual({
    outcome: 'accepted',
    payload: { deviceConfiguration: { fw: '1.0.0' }, thingName: 'fleet-M5-1' },
  });
  expect((await iot.send(new DescribeThingCommand({ thingName: 'fleet-M5-1' }))).thingName).toBe(
    'fleet-M5-1',
  );
  expect(
    (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status,
  ).toBe('ACTIVE');

  // the device reconnects as its thing, on MQTT 5, with the issued certificate
  const device = await connect5(core, { cert: certificatePem, key: keyPem }, 'fleet-M5-1');
  open.push(device.client);
  expect(device.connack.reasonCode).toBe(0);
  expect(await pubackCode(device.client, 'dt/fleet/fleet-M5-1/telemetry', '{"ok":true}')).toBe(0);
  expect(messages.find((m) => m.topic === 'dt/fleet/fleet-M5-1/telemetry')).toEqual(
    expect.objectContaining({ clientId: 'fleet-M5-1', principal: certificateId }),
  );
  expect(await subscribe(device.client, 'cmd/fleet/fleet-M5-1/+')).toEqual([1]);
  // and is held to its own topics on MQTT 5 too
  expect(await pubackCode(device.client, 'dt/fleet/fleet-OTHER/telemetry', '{}')).toBe(0x87);
});

test('MQTT 5: a RegisterThing with an unknown token is answered on the rejected topic', async () => {
  const c = await conn5(claim, 'prov-M5-2');
  const r = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
    certificateOwnershipToken: 'nope',
    parameters: { SerialNumber: 'M5-2' },
  });
  expect(r.outcome).toBe('rejected');
  expect(r.payload).toEqual(
    expect.objectContaining({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' }),
  );
});

test('MQTT 5: the claim certificate can do nothing but provision (SUBACK and PUBACK 0x87)', async () => {
  const c = await conn5(claim, 'prov-M5-3');
  expect(await subscribe(c, 'cmd/fleet/fleet-M5-1/reboot')).toEqual([0x87]);
  expect(await pubackCode(c, 'dt/fleet/fleet-M5-1/telemetry', '{}')).toBe(0x87);
  await expect(connect5(core, claim, 'fleet-M5-1')).rejects.toThrow(/Not authorized/i);
});
