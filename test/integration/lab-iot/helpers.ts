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
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import {
  generate,
  parser as createPacketParser,
  type IConnackPacket,
  type IConnectPacket,
  type IDisconnectPacket,
  type Packet,
} from 'mqtt-packet';
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
  return connectWithAck(core, creds, clientId, extra).then((r) => r.client);
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

// --- MQTT 5, reason codes and raw packets (issue 8) ----------------------------------------------

/**
 * Connect with mTLS (MQTT 3.1.1 unless `extra.protocolVersion` says 5) and resolve with the
 * client and its CONNACK; rejects with mqtt.js's error on a refusal (`code` is the CONNACK
 * reason code on 5, the return code on 3.1.1).
 */
export function connectWithAck(
  core: IotCore,
  creds: { cert: string; key: string },
  clientId: string,
  extra: mqtt.IClientOptions = {},
  /** Called with the client before it connects (to listen for messages sent right after the CONNACK). */
  onClient?: (c: MqttClient) => void,
): Promise<{ client: MqttClient; connack: IConnackPacket }> {
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
    onClient?.(c);
    c.once('connect', (connack) => resolve({ client: c, connack }));
    c.once('error', fail);
    c.once('close', () => fail(new Error('connection closed before CONNACK')));
  });
}

/** An MQTT 5 connection (mqtt.js), with its CONNACK. */
export function connect5(
  core: IotCore,
  creds: { cert: string; key: string },
  clientId: string,
  extra: mqtt.IClientOptions = {},
  onClient?: (c: MqttClient) => void,
): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  return connectWithAck(core, creds, clientId, { protocolVersion: 5, ...extra }, onClient);
}

/**
 * A QoS 1 publish's PUBACK reason code (0 on success; on MQTT 3.1.1 always 0 when acknowledged).
 * Rejects when the publish fails without a reason code (for example the connection closed).
 */
export function pubackCode(
  c: MqttClient,
  topic: string,
  payload: string | Buffer,
  opts: mqtt.IClientPublishOptions = {},
): Promise<number> {
  return new Promise((resolve, reject) =>
    c.publish(topic, payload, { qos: 1, ...opts }, (err) => {
      if (!err) return resolve(0);
      const code = (err as Error & { code?: unknown }).code;
      if (typeof code === 'number') return resolve(code);
      reject(err);
    }),
  );
}

/** How a connection ended: the server's DISCONNECT (MQTT 5) if one came before the close. */
export function ended(c: MqttClient): Promise<{ disconnect?: IDisconnectPacket }> {
  let disconnect: IDisconnectPacket | undefined;
  const onDisconnect = (p: IDisconnectPacket): void => void (disconnect = p);
  c.on('disconnect', onDisconnect);
  return new Promise((resolve) => {
    const done = (): void => {
      c.off('disconnect', onDisconnect);
      resolve({ disconnect });
    };
    if (!c.connected && c.disconnected) done();
    else c.once('close', done);
  });
}

/** Log entries whose message matches. */
export function logged(logs: LogEntry[], pattern: RegExp): LogEntry[] {
  return logs.filter((l) => pattern.test(String(l.msg)));
}

/** A client that writes and reads MQTT packets as they are, with no client-side checks. */
export interface RawMqtt {
  readonly version: 4 | 5;
  /** Every packet received, in order. */
  readonly packets: Packet[];
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void>;
  isClosed(): boolean;
  send(packet: Packet): void;
  /** Writes several packets in one TCP write (so that they reach the broker together). */
  sendAll(packets: Packet[]): void;
  /** The first received packet matching (earlier ones included), or undefined if the connection closes first. */
  waitFor(predicate: (p: Packet) => boolean): Promise<Packet | undefined>;
  /** Closes the network connection without a DISCONNECT. */
  destroy(): void;
  /** Sends DISCONNECT and waits for the close. */
  end(): Promise<void>;
}

/**
 * Opens an mTLS connection and sends a CONNECT built from `connect` (client id, clean start,
 * keep-alive 60 s by default). Resolves with the raw client and the CONNACK, or no CONNACK
 * when the broker closes the connection without one. A 10 s guard bounds a broker that answers
 * nothing.
 */
export function rawConnect(
  core: IotCore,
  creds: { cert: string; key: string },
  connect: Partial<IConnectPacket> & { clientId: string },
  version: 4 | 5 = 5,
): Promise<{ raw: RawMqtt; connack?: IConnackPacket }> {
  const packets: Packet[] = [];
  const waiters = new Set<() => void>();
  let isClosed = false;
  const socket = tlsConnect({
    host: core.mqtt.host,
    port: core.mqtt.port,
    ca: core.mqtt.caPem,
    cert: creds.cert,
    key: creds.key,
    noDelay: true,
  } as ConnectionOptions);
  const parser = createPacketParser({ protocolVersion: version });
  parser.on('packet', (p: Packet) => {
    packets.push(p);
    for (const w of [...waiters]) w();
  });
  parser.on('error', (e: Error) => socket.destroy(e));
  socket.on('data', (b: Buffer) => parser.parse(b));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      for (const w of [...waiters]) w();
      resolve();
    }),
  );
  const write = (p: Packet): void => {
    if (!isClosed) socket.write(generate(p, { protocolVersion: version }));
  };
  const raw: RawMqtt = {
    version,
    packets,
    closed,
    isClosed: () => isClosed,
    send: write,
    sendAll: (ps) => {
      if (!isClosed) socket.write(Buffer.concat(ps.map((p) => generate(p, { protocolVersion: version }))));
    },
    waitFor: (predicate) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = packets.find(predicate);
          if (!found && !isClosed) return;
          waiters.delete(check);
          clearTimeout(guard);
          resolve(found);
        };
        const guard = setTimeout(() => {
          waiters.delete(check);
          reject(new Error('no matching packet and no close within 10 s'));
        }, 10_000);
        waiters.add(check);
        check();
      }),
    destroy: () => void socket.destroy(),
    end: async () => {
      write({ cmd: 'disconnect' });
      socket.end();
      await closed;
    },
  };
  socket.once('secureConnect', () =>
    write({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: version,
      clean: true,
      keepalive: 60,
      ...connect,
    }),
  );
  return raw
    .waitFor((p) => p.cmd === 'connack')
    .then((connack) => ({
      raw,
      connack: connack as IConnackPacket | undefined,
    }));
}

/** Waits for the PUBACK of `messageId` on a raw connection (undefined when it closed first). */
export async function rawPuback(raw: RawMqtt, messageId: number): Promise<number | undefined> {
  const p = await raw.waitFor((x) => x.cmd === 'puback' && x.messageId === messageId);
  return p ? ((p as { reasonCode?: number }).reasonCode ?? 0) : undefined;
}

/** SUBSCRIBE on a raw connection; resolves with the SUBACK's codes (undefined when it closed first). */
export async function rawSubscribe(
  raw: RawMqtt,
  messageId: number,
  filters: string[],
  qos: 0 | 1 | 2 = 1,
  properties?: Record<string, unknown>,
): Promise<number[] | undefined> {
  raw.send({
    cmd: 'subscribe',
    messageId,
    subscriptions: filters.map((topic) => ({ topic, qos })),
    ...(properties ? { properties } : {}),
  } as Packet);
  const p = await raw.waitFor((x) => x.cmd === 'suback' && x.messageId === messageId);
  return p ? ((p as { granted: number[] }).granted as number[]) : undefined;
}

/** The server's DISCONNECT on a raw connection, once it has closed (undefined when none came). */
export async function rawServerDisconnect(raw: RawMqtt): Promise<IDisconnectPacket | undefined> {
  // waits for the close (rejects after the 10 s guard when the broker keeps the connection)
  await raw.waitFor(() => false);
  return raw.packets.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined;
}

// --- AWS IoT Jobs (issue 9) -------------------------------------------------------------------

/** A fake clock for the Jobs service: `now()` for the core, `advance(ms)` to move it. */
export function fakeClock(start = Date.UTC(2026, 0, 1)): {
  now: () => number;
  advance: (ms: number) => void;
} {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A new thing with a certificate carrying `policy`, connected with the thing name as client id. */
export async function jobsDevice(
  core: IotCore,
  iot: IoTClient,
  thingName: string,
  policy = 'fleet-device',
): Promise<MqttClient> {
  const creds = await identity(iot, policy, thingName);
  return connect(core, creds, thingName);
}

/** One Jobs API request of `thing` (`get`, `start-next`, `<jobId>/get`, `<jobId>/update`) and its answer. */
export function jobsRequest(
  c: MqttClient,
  thing: string,
  op: string,
  body: unknown = {},
): Promise<{ outcome: string; payload: Record<string, unknown> }> {
  return request(c, `$aws/things/${thing}/jobs/${op}`, body);
}
