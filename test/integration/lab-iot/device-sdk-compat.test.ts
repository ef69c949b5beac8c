/**
 * SDK compatibility: an unmodified aws-iot-device-sdk-v2 client (MQTT 3.1.1, mTLS builder,
 * IotIdentityClient) completes CreateCertificateFromCsr + RegisterThing against the lab broker.
 */
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  DescribeThingCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { iot, iotidentity, mqtt } from 'aws-iot-device-sdk-v2';
import type { IotCore } from '../../../lab/iot';
import '../../../lab/iot/ca';
import { claimPolicy, connect, csr, devicePolicy, end, FLEET_THING_RESOURCES, startCore } from './helpers';

const TEMPLATE = 'fleet-tpl';
const body = JSON.stringify({
  Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: FLEET_THING_RESOURCES,
  DeviceConfiguration: { fw: '1.0.0' },
});

let core: IotCore;
let iotClient: IoTClient;

beforeAll(async () => {
  ({ core, iot: iotClient } = await startCore({ invokeLambda: async () => ({ allowProvisioning: true }) }));
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
  core.registry.putProvisioningTemplate({
    name: TEMPLATE,
    body,
    enabled: true,
    hookArn: 'arn:aws:lambda:us-east-1:123456789012:function:hook',
  });
});
afterAll(async () => {
  iotClient.destroy();
  await core.stop();
});

function once<T>(subscribe: (cb: (error?: unknown, response?: T) => void) => Promise<unknown>): {
  ready: Promise<unknown>;
  value: Promise<T>;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const value = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const ready = subscribe((error, response) => (error ? reject(error) : resolve(response as T)));
  return { ready, value };
}

test('aws-iot-device-sdk-v2 IotIdentityClient: CreateCertificateFromCsr + RegisterThing', async () => {
  const claim = await iotClient.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  await iotClient.send(new AttachPolicyCommand({ policyName: 'fleet-claim', target: claim.certificateArn }));

  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(
    claim.certificatePem as string,
    claim.keyPair?.PrivateKey as string,
  )
    .with_certificate_authority(core.mqtt.caPem)
    .with_endpoint(core.mqtt.host)
    .with_port(core.mqtt.port)
    .with_client_id('prov-SDK1')
    .with_clean_session(true)
    .build();
  const client = new mqtt.MqttClient();
  const connection = client.new_connection(config);
  await connection.connect();
  try {
    const identity = new iotidentity.IotIdentityClient(connection);
    const QOS = mqtt.QoS.AtLeastOnce;

    const { csrPem, keyPem } = await csr('CN=sdk-device');

    const csrAccepted = once<iotidentity.model.CreateCertificateFromCsrResponse>((cb) =>
      identity.subscribeToCreateCertificateFromCsrAccepted({}, QOS, cb),
    );
    const csrRejected = once<iotidentity.model.ErrorResponse>((cb) =>
      identity.subscribeToCreateCertificateFromCsrRejected({}, QOS, cb),
    );
    await Promise.all([csrAccepted.ready, csrRejected.ready]);
    await identity.publishCreateCertificateFromCsr({ certificateSigningRequest: csrPem }, QOS);
    const created = await Promise.race([
      csrAccepted.value,
      csrRejected.value.then((r) => Promise.reject(new Error(JSON.stringify(r)))),
    ]);
    expect(created.certificateId).toMatch(/^[0-9a-f]{64}$/);

    const regAccepted = once<iotidentity.model.RegisterThingResponse>((cb) =>
      identity.subscribeToRegisterThingAccepted({ templateName: TEMPLATE }, QOS, cb),
    );
    const regRejected = once<iotidentity.model.ErrorResponse>((cb) =>
      identity.subscribeToRegisterThingRejected({ templateName: TEMPLATE }, QOS, cb),
    );
    await Promise.all([regAccepted.ready, regRejected.ready]);
    await identity.publishRegisterThing(
      {
        templateName: TEMPLATE,
        certificateOwnershipToken: created.certificateOwnershipToken,
        parameters: { SerialNumber: 'SDK1' },
      },
      QOS,
    );
    const registered = await Promise.race([
      regAccepted.value,
      regRejected.value.then((r) => Promise.reject(new Error(JSON.stringify(r)))),
    ]);
    expect(registered).toEqual(
      expect.objectContaining({ thingName: 'fleet-SDK1', deviceConfiguration: { fw: '1.0.0' } }),
    );
    expect((await iotClient.send(new DescribeThingCommand({ thingName: 'fleet-SDK1' }))).thingName).toBe(
      'fleet-SDK1',
    );

    // the issued certificate works for the device's own connection
    const device = await connect(core, { cert: created.certificatePem as string, key: keyPem }, 'fleet-SDK1');
    await end(device);
  } finally {
    await connection.disconnect();
  }
});
