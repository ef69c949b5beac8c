import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  ListThingGroupsForThingCommand,
  UpdateCertificateCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore } from '../../../lab/iot';
import '../../../lab/iot/ca';
import {
  claimPolicy,
  closed,
  connect,
  csr,
  devicePolicy,
  end,
  endAll,
  identity,
  nextMessage,
  publish,
  request,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
} from './helpers';

const TEMPLATE = 'fleet-tpl';
const HOOK = 'arn:aws:lambda:us-east-1:123456789012:function:hook';
const templateBody = JSON.stringify({
  Parameters: {
    SerialNumber: { Type: 'String' },
    ThingName: { Type: 'String' },
    Ring: { Type: 'String' },
    'AWS::IoT::Certificate::Id': { Type: 'String' },
  },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: {
        ThingName: { Ref: 'ThingName' },
        AttributePayload: { serial: { Ref: 'SerialNumber' } },
        ThingGroups: [{ 'Fn::Join': ['', ['fleet-ring-', { Ref: 'Ring' }]] }],
      },
      OverrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'REPLACE' },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
    },
    policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'fleet-device' } },
  },
  DeviceConfiguration: { telemetryTopic: { 'Fn::Sub': 'dt/fleet/${ThingName}/telemetry' } },
});

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
const hookCalls: Array<Record<string, unknown>> = [];
const messages: Array<{ topic: string; payload: Buffer; clientId?: string; principal?: string }> = [];
const open: MqttClient[] = [];
let claim: { cert: string; key: string; id: string };

async function hook(_arn: string, event: unknown): Promise<unknown> {
  const e = event as { parameters: Record<string, string> };
  hookCalls.push(event as Record<string, unknown>);
  const serial = e.parameters.SerialNumber;
  if (serial === 'DENY') return { allowProvisioning: false };
  if (serial === 'THROW') throw new Error('hook crashed');
  return { allowProvisioning: true, parameterOverrides: { ThingName: `fleet-${serial}`, Ring: 'canary' } };
}

async function conn(creds: { cert: string; key: string }, clientId: string): Promise<MqttClient> {
  const c = await connect(core, creds, clientId);
  open.push(c);
  return c;
}

beforeAll(async () => {
  ({ core, iot, logs } = await startCore({ invokeLambda: hook }));
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
  core.registry.putThingGroup('fleet-ring-canary');
  core.registry.putProvisioningTemplate({ name: TEMPLATE, body: templateBody, enabled: true, hookArn: HOOK });
  claim = await identity(iot, 'fleet-claim');
});

afterEach(() => endAll(open));

afterAll(() => stopCore(core, iot));

describe('policy enforcement', () => {
  test('a device connected as thing X cannot publish or subscribe to thing Y topics', async () => {
    const x = await identity(iot, 'fleet-device', 'fleet-X');
    const c = await conn(x, 'fleet-X');
    await publish(c, 'dt/fleet/fleet-X/telemetry', '{"t":1}');
    expect(await subscribe(c, 'cmd/fleet/fleet-X/+')).toEqual([1]);
    expect(await subscribe(c, 'cmd/fleet/fleet-Y/reboot')).toEqual([128]);
    expect(await subscribe(c, 'cmd/fleet/+/reboot')).toEqual([128]);
    // receive: a server-side command to X arrives
    const got = nextMessage(c, (t) => t === 'cmd/fleet/fleet-X/reboot');
    await core.publish('cmd/fleet/fleet-X/reboot', '{"id":"1"}');
    expect((await got).payload.toString()).toBe('{"id":"1"}');
    // publish to Y's topic closes the connection (AWS MQTT 3.1.1 behaviour)
    const gone = closed(c);
    c.publish('dt/fleet/fleet-Y/telemetry', '{}', { qos: 1 });
    await gone;
    const tel = messages.find((m) => m.topic === 'dt/fleet/fleet-X/telemetry');
    expect(tel).toEqual(expect.objectContaining({ clientId: 'fleet-X', principal: x.id }));
    expect(messages.some((m) => m.topic === 'dt/fleet/fleet-Y/telemetry')).toBe(false);
    const denial = logs.find(
      (l) =>
        String(l.msg).includes('policy denied iot:Publish') &&
        String(l.resource).endsWith('dt/fleet/fleet-Y/telemetry'),
    );
    expect(denial).toEqual(expect.objectContaining({ reason: 'NO_MATCHING_ALLOW', clientId: 'fleet-X' }));
  });

  test('a device cannot connect with a client id other than its thing name', async () => {
    const x = await identity(iot, 'fleet-device', 'fleet-X2');
    await expect(connect(core, x, 'fleet-OTHER')).rejects.toThrow(/Not authorized/i);
    await expect(connect(core, x, 'prov-X2')).rejects.toThrow(/Not authorized/i);
    const ok = await conn(x, 'fleet-X2');
    expect(ok.connected).toBe(true);
  });

  test('a claim-certificate connection can do nothing but provision', async () => {
    const c = await conn(claim, 'prov-C1');
    expect(await subscribe(c, '$aws/certificates/create-from-csr/json/accepted')).toEqual([1]);
    expect(await subscribe(c, 'cmd/fleet/fleet-X/reboot')).toEqual([128]);
    expect(await subscribe(c, '$aws/things/fleet-X/jobs/notify-next')).toEqual([128]);
    expect(await subscribe(c, '#')).toEqual([128]);
    const gone = closed(c);
    c.publish('dt/fleet/fleet-X/telemetry', '{}', { qos: 1 });
    await gone;
    await expect(connect(core, claim, 'fleet-X')).rejects.toThrow(/Not authorized/i);
  });

  test('unknown, inactive and revoked certificates are refused; revoking disconnects', async () => {
    const r = await identity(iot, 'fleet-device', 'fleet-R');
    const c = await conn(r, 'fleet-R');
    const gone = closed(c);
    await iot.send(new UpdateCertificateCommand({ certificateId: r.id, newStatus: 'REVOKED' }));
    await gone;
    await expect(connect(core, r, 'fleet-R')).rejects.toThrow(/Not authorized/i);

    const i = await identity(iot, 'fleet-device', 'fleet-I');
    await iot.send(new UpdateCertificateCommand({ certificateId: i.id, newStatus: 'INACTIVE' }));
    await expect(connect(core, i, 'fleet-I')).rejects.toThrow(/Not authorized/i);

    // unknown: signed by the lab CA but no longer registered
    const u = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
    await iot.send(new DeleteCertificateCommand({ certificateId: u.certificateId }));
    await expect(
      connect(core, { cert: u.certificatePem as string, key: u.keyPair?.PrivateKey as string }, 'anything'),
    ).rejects.toThrow(/Not authorized/i);
    expect(logs.some((l) => l.msg === 'connect refused: certificate is not registered')).toBe(true);
  });

  test('a certificate from another CA is refused by TLS', async () => {
    const { LabCa } = await import('../../../lab/iot/ca');
    const other = await LabCa.create('other CA');
    const kc = await other.issueWithNewKeys();
    await expect(connect(core, { cert: kc.certificatePem, key: kc.privateKeyPem }, 'x')).rejects.toThrow();
  });
});

describe('fleet provisioning MQTT API', () => {
  test('CSR flow end to end: create-from-csr, RegisterThing with hook overrides, reconnect as the thing', async () => {
    const c = await conn(claim, 'prov-SN100');
    const { csrPem, keyPem } = await csr();
    const created = await request(c, '$aws/certificates/create-from-csr/json', {
      certificateSigningRequest: csrPem,
    });
    expect(created.outcome).toBe('accepted');
    const certificateId = created.payload.certificateId as string;
    const certificatePem = created.payload.certificatePem as string;
    expect(Object.keys(created.payload).sort()).toEqual([
      'certificateId',
      'certificateOwnershipToken',
      'certificatePem',
    ]);
    expect(
      (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status,
    ).toBe('PENDING_ACTIVATION');

    // pending activation: cannot connect yet
    await expect(connect(core, { cert: certificatePem, key: keyPem }, 'fleet-SN100')).rejects.toThrow(
      /Not authorized/i,
    );

    const reg = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
      certificateOwnershipToken: created.payload.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN100' },
    });
    expect(reg).toEqual({
      outcome: 'accepted',
      payload: {
        deviceConfiguration: { telemetryTopic: 'dt/fleet/fleet-SN100/telemetry' },
        thingName: 'fleet-SN100',
      },
    });
    expect(hookCalls.at(-1)).toEqual({
      claimCertificateId: claim.id,
      certificateId,
      certificatePem,
      templateArn: `arn:aws:iot:us-east-1:123456789012:provisioningtemplate/${TEMPLATE}`,
      clientId: 'prov-SN100',
      parameters: { SerialNumber: 'SN100' },
    });
    expect(
      (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status,
    ).toBe('ACTIVE');
    expect((await iot.send(new DescribeThingCommand({ thingName: 'fleet-SN100' }))).attributes).toEqual({
      serial: 'SN100',
    });
    expect(
      (await iot.send(new ListThingGroupsForThingCommand({ thingName: 'fleet-SN100' }))).thingGroups?.map(
        (g) => g.groupName,
      ),
    ).toEqual(['fleet-ring-canary']);

    // token is single use
    const again = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
      certificateOwnershipToken: created.payload.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN100' },
    });
    expect(again.payload.errorCode).toBe('InvalidCertificateOwnershipToken');

    const presence = new Promise<void>((resolve) =>
      core.onMessage((m) => m.topic === '$aws/events/presence/connected/fleet-SN100' && resolve()),
    );
    const device = await conn({ cert: certificatePem, key: keyPem }, 'fleet-SN100');
    await publish(device, 'dt/fleet/fleet-SN100/telemetry', '{"ok":true}');
    await presence;
    const evt = JSON.parse(
      messages.find((m) => m.topic === '$aws/events/presence/connected/fleet-SN100')?.payload.toString() ??
        '{}',
    );
    expect(evt).toEqual({
      clientId: 'fleet-SN100',
      timestamp: expect.any(Number),
      eventType: 'connected',
      sessionIdentifier: expect.stringMatching(/^[0-9a-f-]{36}$/),
      principalIdentifier: certificateId,
      ipAddress: '127.0.0.1',
      versionNumber: 1,
    });
    const disc = new Promise<Buffer>((resolve) =>
      core.onMessage(
        (m) => m.topic === '$aws/events/presence/disconnected/fleet-SN100' && resolve(m.payload),
      ),
    );
    await end(device);
    expect(JSON.parse((await disc).toString())).toEqual(
      expect.objectContaining({
        eventType: 'disconnected',
        clientInitiatedDisconnect: true,
        disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
        versionNumber: 1,
      }),
    );
  });

  test('CreateKeysAndCertificate over MQTT returns a key, a pending certificate and a token', async () => {
    const c = await conn(claim, 'prov-K1');
    const r = await request(c, '$aws/certificates/create/json', {});
    expect(r.outcome).toBe('accepted');
    expect(Object.keys(r.payload).sort()).toEqual([
      'certificateId',
      'certificateOwnershipToken',
      'certificatePem',
      'privateKey',
    ]);
    expect(r.payload.privateKey).toContain('PRIVATE KEY');
  });

  test.each([
    ['DENY', 403, 'AccessDenied'],
    ['THROW', 403, 'AccessDenied'],
  ])('hook outcome %s is rejected %s %s', async (serial, statusCode, errorCode) => {
    const c = await conn(claim, `prov-${serial}`);
    const { csrPem } = await csr();
    const created = await request(c, '$aws/certificates/create-from-csr/json', {
      certificateSigningRequest: csrPem,
    });
    const before = core.stats().registerThing.rejected;
    const r = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
      certificateOwnershipToken: created.payload.certificateOwnershipToken,
      parameters: { SerialNumber: serial },
    });
    expect(r.outcome).toBe('rejected');
    expect(r.payload).toEqual({ statusCode, errorCode, errorMessage: expect.any(String) });
    expect(core.stats().registerThing.rejected).toBe(before + 1);
  });

  test.each([
    ['empty token', { parameters: {} }, 400, 'InvalidCertificateOwnershipToken'],
    ['unknown token', { certificateOwnershipToken: 'nope' }, 400, 'InvalidCertificateOwnershipToken'],
  ])('RegisterThing with %s is rejected', async (_n, body, statusCode, errorCode) => {
    const c = await conn(claim, 'prov-T1');
    const r = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, body);
    expect(r.payload).toEqual(expect.objectContaining({ statusCode, errorCode }));
  });

  test('an invalid CSR is rejected', async () => {
    const c = await conn(claim, 'prov-BADCSR');
    const r = await request(c, '$aws/certificates/create-from-csr/json', {
      certificateSigningRequest: 'not a csr',
    });
    expect(r.outcome).toBe('rejected');
    expect(r.payload).toEqual(expect.objectContaining({ statusCode: 400 }));
  });

  test('responses go only to the requesting connection', async () => {
    const a = await conn(claim, 'prov-A');
    const b = await conn(claim, 'prov-B');
    await subscribe(b, ['$aws/certificates/create/json/accepted', '$aws/certificates/create/json/rejected']);
    let bGot = 0;
    b.on('message', () => (bGot += 1));
    await request(a, '$aws/certificates/create/json', {});
    // a round trip on b after a's response proves nothing was queued for b
    await request(b, '$aws/certificates/create/json', {});
    expect(bGot).toBe(1);
  });
});

describe('RegisterThing throttling', () => {
  let tcore: IotCore;
  let tiot: IoTClient;
  afterAll(async () => {
    tiot?.destroy();
    await tcore?.stop();
  });

  test('requests over the TPS quota get the throttling rejection', async () => {
    ({ core: tcore, iot: tiot } = await startCore({ invokeLambda: hook, registerThingTps: 0.001 }));
    tcore.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
    tcore.registry.putPolicy('fleet-device', devicePolicy());
    tcore.registry.putThingGroup('fleet-ring-canary');
    tcore.registry.putProvisioningTemplate({
      name: TEMPLATE,
      body: templateBody,
      enabled: true,
      hookArn: HOOK,
    });
    const k = await tiot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await tiot.send(new AttachPolicyCommand({ policyName: 'fleet-claim', target: k.certificateArn }));
    const c = await connect(
      tcore,
      { cert: k.certificatePem as string, key: k.keyPair?.PrivateKey as string },
      'prov-TH',
    );
    try {
      const results: string[] = [];
      for (const serial of ['TH1', 'TH2']) {
        const created = await request(c, '$aws/certificates/create/json', {});
        const r = await request(c, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
          certificateOwnershipToken: created.payload.certificateOwnershipToken,
          parameters: { SerialNumber: serial },
        });
        results.push(
          r.outcome === 'accepted' ? 'accepted' : `${r.payload.statusCode}/${r.payload.errorCode}`,
        );
      }
      expect(results).toEqual(['accepted', '429/ThrottlingException']);
      expect(tcore.stats()).toEqual({ registerThing: { accepted: 1, throttled: 1, rejected: 0 } });
    } finally {
      await end(c);
    }
  });
});
