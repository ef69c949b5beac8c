/**
 * A fleet provisioning request that fails in an unexpected way never takes the lab down: a
 * template segment that is not valid URI encoding is answered with a rejection, and a failure
 * of the provisioning service itself is logged at the broker, which keeps serving.
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore } from '../../../lab/iot';
import { IotBroker } from '../../../lab/iot/broker';
import { LabCa } from '../../../lab/iot/ca';
import {
  ProvisioningApi,
  type ProvisioningResponse,
  type RequestContext,
} from '../../../lab/iot/provisioning';
import { IotRegistry } from '../../../lab/iot/state';
import {
  ACCOUNT,
  claimPolicy,
  connect,
  end,
  identity,
  publish,
  REGION,
  request,
  startCore,
  subscribe,
  type LogEntry,
} from './helpers';

const BAD_TEMPLATE_TOPIC = '$aws/provisioning-templates/%E0/provision/json';
const CREATE_TOPIC = '$aws/certificates/create/json';

describe('a template name that is not valid URI encoding', () => {
  let core: IotCore;
  let iot: IoTClient;
  let logs: LogEntry[];
  const open: MqttClient[] = [];

  beforeAll(async () => {
    ({ core, iot, logs } = await startCore());
    // A claim allowed to publish to every template's RegisterThing topic.
    core.registry.putPolicy('claim-any-template', claimPolicy('*'));
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => end(c)));
    iot.destroy();
    await core.stop();
  });

  test('is answered with a rejection, logged, and the lab keeps serving', async () => {
    const claim = await identity(iot, 'claim-any-template');
    const c = await connect(core, claim, 'prov-bad-template');
    open.push(c);

    const bad = await request(c, BAD_TEMPLATE_TOPIC, { certificateOwnershipToken: 'x' });
    expect(bad.outcome).toBe('rejected');
    expect(bad.payload).toEqual({
      statusCode: 400,
      errorCode: 'InvalidRequest',
      errorMessage: 'The provisioning template name in the topic (%E0) is not valid URI encoding',
    });
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'fleet provisioning provision rejected: InvalidRequest',
        clientId: 'prov-bad-template',
        topic: BAD_TEMPLATE_TOPIC,
      }),
    );
    expect(core.stats().registerThing.rejected).toBe(1);

    // Same connection, next request: the broker and the provisioning API are still up.
    const next = await request(c, CREATE_TOPIC, {});
    expect(next.outcome).toBe('accepted');
    expect(next.payload.certificateOwnershipToken).toEqual(expect.any(String));
  });
});

describe('a provisioning service failure', () => {
  /** Fails every request on one topic, as an unexpected bug in the service would. */
  class FailingProvisioning extends ProvisioningApi {
    override handle(
      topic: string,
      payload: Buffer,
      req: RequestContext,
    ): Promise<ProvisioningResponse | undefined> {
      if (topic === CREATE_TOPIC) return Promise.reject(new Error('provisioning service crashed'));
      return super.handle(topic, payload, req);
    }
  }

  let broker: IotBroker;
  let registry: IotRegistry;
  let ca: LabCa;
  const logs: LogEntry[] = [];
  const open: MqttClient[] = [];

  beforeAll(async () => {
    registry = new IotRegistry(REGION, ACCOUNT);
    ca = await LabCa.create();
    const log = (e: LogEntry): void => void logs.push(e);
    broker = new IotBroker({
      registry,
      ca,
      host: '127.0.0.1',
      provisioning: new FailingProvisioning({
        registry,
        ca,
        invokeLambda: async () => ({ allowProvisioning: true }),
        log,
      }),
      log,
      onMessage: () => undefined,
    });
    await broker.start();
    registry.putPolicy('claim', claimPolicy('tpl'));
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => end(c)));
    await broker.stop();
  });

  /** An ACTIVE certificate from the lab CA with the claim policy attached. */
  async function claimCertificate(): Promise<{ cert: string; key: string }> {
    const issued = await ca.issueWithNewKeys();
    const rec = registry.addCertificate({
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
      status: 'ACTIVE',
      caCertificateId: ca.caCertificateId,
    });
    registry.attachPolicy('claim', rec.certificateArn);
    return { cert: issued.certificatePem, key: issued.privateKeyPem };
  }

  test('is logged at the broker, which keeps serving the connection', async () => {
    const target = { mqtt: { host: '127.0.0.1', port: broker.port, caPem: ca.caPem } } as IotCore;
    const c = await connect(target, await claimCertificate(), 'prov-crash');
    open.push(c);
    await subscribe(c, [`${CREATE_TOPIC}/accepted`, `${CREATE_TOPIC}/rejected`]);
    await publish(c, CREATE_TOPIC, '{}');

    // The failure is logged once the request has been handled; the CSR request on the same
    // connection is served afterwards.
    const csrTopic = '$aws/certificates/create-from-csr/json';
    const answer = await request(c, csrTopic, {});
    expect(answer).toMatchObject({ outcome: 'rejected', payload: { errorCode: 'InvalidPayload' } });
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'fleet provisioning request failed: provisioning service crashed',
        clientId: 'prov-crash',
        topic: CREATE_TOPIC,
      }),
    );
  });
});
