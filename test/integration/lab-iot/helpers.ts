import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import mqtt, { type MqttClient } from 'mqtt';
import { startIotCore, type IotCore, type IotCoreOptions } from '../../../lab/iot';

export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';

export interface LogEntry {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export async function startCore(
  over: Partial<IotCoreOptions> = {},
): Promise<{ core: IotCore; iot: IoTClient; logs: LogEntry[] }> {
  const logs: LogEntry[] = [];
  const core = await startIotCore({
    region: REGION,
    accountId: ACCOUNT,
    invokeLambda: async () => ({ allowProvisioning: true }),
    log: (e) => logs.push(e),
    ...over,
  });
  const iot = new IoTClient({
    region: REGION,
    endpoint: core.controlPlaneUrl,
    credentials: { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-test-secret' },
    maxAttempts: 1,
  });
  return { core, iot, logs };
}

/** Connect with mTLS; resolves with the client or rejects with the reason (connect timeout guards TLS refusals). */
export function connect(
  core: IotCore,
  creds: { cert: string; key: string },
  clientId: string,
  extra: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({
      protocol: 'mqtts',
      host: core.mqtt.host,
      port: core.mqtt.port,
      ca: core.mqtt.caPem,
      cert: creds.cert,
      key: creds.key,
      clientId,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...extra,
    });
    const fail = (err: Error): void => {
      c.end(true);
      reject(err);
    };
    c.once('connect', () => resolve(c));
    c.once('error', fail);
    c.once('close', () => fail(new Error('connection closed before CONNACK')));
  });
}

export function end(c: MqttClient | undefined): Promise<void> {
  return new Promise((resolve) => (c ? c.end(false, {}, () => resolve()) : resolve()));
}

/** Ends every connection in `open` and empties it (a test file's afterEach). */
export async function endAll(open: MqttClient[]): Promise<void> {
  await Promise.all(open.splice(0).map((c) => end(c)));
}

/** Destroys the control-plane client and stops the core (a test file's afterAll). */
export async function stopCore(core: IotCore, iot: IoTClient): Promise<void> {
  iot.destroy();
  await core.stop();
}

/** Resolve with the first message on a topic (filter match done by mqtt.js subscription). */
export function nextMessage(
  c: MqttClient,
  predicate: (topic: string) => boolean,
): Promise<{ topic: string; payload: Buffer }> {
  return new Promise((resolve) => {
    const on = (topic: string, payload: Buffer): void => {
      if (!predicate(topic)) return;
      c.off('message', on);
      resolve({ topic, payload });
    };
    c.on('message', on);
  });
}

export function subscribe(c: MqttClient, filter: string | string[], qos: 0 | 1 = 1): Promise<number[]> {
  return new Promise((resolve, reject) =>
    c.subscribe(filter, { qos }, (err, granted) => {
      // mqtt.js reports a SUBACK failure (0x80) as an error carrying the SUBACK packet
      const suback = (err as { packet?: { granted?: Array<number | { qos: number }> } } | null)?.packet
        ?.granted;
      if (err && suback) return resolve(suback.map((g) => (typeof g === 'number' ? g : g.qos)));
      if (err) return reject(err);
      resolve((granted ?? []).map((g) => g.qos));
    }),
  );
}

export function publish(c: MqttClient, topic: string, payload: string, qos: 0 | 1 = 1): Promise<void> {
  return new Promise((resolve, reject) =>
    c.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve())),
  );
}

/** Resolves when the connection closes. */
export function closed(c: MqttClient): Promise<void> {
  return new Promise((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));
}

export const arn = (resource: string): string => `arn:aws:iot:${REGION}:${ACCOUNT}:${resource}`;

/** The policy variable of the connected thing's name. */
export const THING_NAME = '${iot:Connection.Thing.ThingName}';

/** Allows connecting with the attached thing's name as client id; `condition` adds to IsAttached. */
export function connectAsThing(condition: Record<string, unknown> = {}): unknown {
  return {
    Effect: 'Allow',
    Action: 'iot:Connect',
    Resource: arn(`client/${THING_NAME}`),
    Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' }, ...condition },
  };
}

/** The documented per-device policy (reference section 4.4), prefix `fleet`. */
export function devicePolicy(): unknown {
  const thing = THING_NAME;
  return {
    Version: '2012-10-17',
    Statement: [
      connectAsThing(),
      {
        Effect: 'Allow',
        Action: ['iot:Publish'],
        Resource: [arn(`topic/dt/fleet/${thing}/*`), arn(`topic/$aws/things/${thing}/jobs/*`)],
      },
      {
        Effect: 'Allow',
        Action: ['iot:Subscribe'],
        Resource: [arn(`topicfilter/$aws/things/${thing}/jobs/*`), arn(`topicfilter/cmd/fleet/${thing}/*`)],
      },
      {
        Effect: 'Allow',
        Action: ['iot:Receive'],
        Resource: [arn(`topic/$aws/things/${thing}/jobs/*`), arn(`topic/cmd/fleet/${thing}/*`)],
      },
    ],
  };
}

/** A least-privilege claim policy for template `tpl` (CSR and key flows). */
export function claimPolicy(template: string): unknown {
  const topics = [
    '$aws/certificates/create/*',
    '$aws/certificates/create-from-csr/*',
    `$aws/provisioning-templates/${template}/provision/*`,
  ];
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/prov-*') },
      {
        Effect: 'Allow',
        Action: ['iot:Publish', 'iot:Receive'],
        Resource: topics.map((t) => arn(`topic/${t}`)),
      },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: topics.map((t) => arn(`topicfilter/${t}`)) },
    ],
  };
}

/**
 * The resources of a provisioning template that names the thing `fleet-<SerialNumber>`,
 * activates the certificate and attaches the `fleet-device` policy.
 */
export const FLEET_THING_RESOURCES = {
  thing: {
    Type: 'AWS::IoT::Thing',
    Properties: { ThingName: { 'Fn::Join': ['-', ['fleet', { Ref: 'SerialNumber' }]] } },
  },
  certificate: {
    Type: 'AWS::IoT::Certificate',
    Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
  },
  policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'fleet-device' } },
};

/** A certificate from CreateKeysAndCertificate (ACTIVE) with `policy` attached, optionally attached to a new thing. */
export async function identity(
  iot: IoTClient,
  policy: string,
  thingName?: string,
): Promise<{ cert: string; key: string; id: string; arn: string }> {
  const c = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (thingName) {
    await iot.send(new CreateThingCommand({ thingName }));
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal: c.certificateArn }));
  }
  await iot.send(new AttachPolicyCommand({ policyName: policy, target: c.certificateArn }));
  return {
    cert: c.certificatePem as string,
    key: c.keyPair?.PrivateKey as string,
    id: c.certificateId as string,
    arn: c.certificateArn as string,
  };
}

/** Every message the client receives, in arrival order, with its RETAIN flag. */
export function collect(c: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  c.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  return got;
}

/**
 * Proves nothing is still on its way to `c`: a server-side publish on `topic` (which `c` is
 * subscribed to) goes through the broker after everything published before it, so once it
 * arrives, earlier messages for `c` have arrived too.
 */
export async function flush(core: IotCore, c: MqttClient, topic: string): Promise<void> {
  const marker = `marker-${Math.random().toString(16).slice(2)}`;
  const seen = new Promise<void>((resolve) => {
    const on = (t: string, p: Buffer): void => {
      if (t !== topic || p.toString() !== marker) return;
      c.off('message', on);
      resolve();
    };
    c.on('message', on);
  });
  await core.publish(topic, marker);
  await seen;
}

/** Connect, publish and subscribe to anything, no iot:RetainPublish: the widest policy short of retained messages. */
export function openPolicy(extraStatements: unknown[] = []): unknown {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: arn('topic/*') },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/*') },
      ...extraStatements,
    ],
  };
}

/** A fresh P-256 key and a certificate signing request for it with subject `name`, both PEM. */
export async function csr(name = 'CN=device'): Promise<{ csrPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    csrPem: req.toString('pem'),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`,
  };
}

/** Subscribe to accepted+rejected, publish the request, resolve with the response. */
export async function request(
  c: MqttClient,
  topic: string,
  body: unknown,
): Promise<{ outcome: string; payload: Record<string, unknown> }> {
  await subscribe(c, [`${topic}/accepted`, `${topic}/rejected`]);
  const msg = nextMessage(c, (t) => t === `${topic}/accepted` || t === `${topic}/rejected`);
  await publish(c, topic, JSON.stringify(body));
  const m = await msg;
  return {
    outcome: m.topic.slice(topic.length + 1),
    payload: JSON.parse(m.payload.toString()) as Record<string, unknown>,
  };
}
