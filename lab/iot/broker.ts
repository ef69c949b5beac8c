/**
 * The lab's AWS IoT Core message broker: MQTT 3.1.1 and MQTT 5 on one mutual-TLS port
 * (`mqtt/server.ts` speaks MQTT; this file is AWS IoT's identity and authorization on top).
 *
 * TLS: a client certificate that does not chain to the lab CA fails the handshake with a fatal
 * `unknown_ca` alert (see `client-certificate-gate.ts`; TLS 1.2, as the gate must read the
 * certificate). A connection without a client certificate gets the TLS server's own alert.
 *
 * Connect: the client certificate is looked up by its certificate id (SHA-256 of the DER);
 * unknown, INACTIVE, REVOKED and PENDING_ACTIVATION certificates are refused. Then every policy
 * attached to the certificate is evaluated for iot:Connect on `client/<clientId>` with the
 * connect attributes (`PersistentConnect`, `LastWill`, `MQTTv5`); a Will message needs
 * iot:Publish (and iot:RetainPublish when retained) on its topic at CONNECT. Later: iot:Publish
 * (`topic/…`), iot:RetainPublish as well for a RETAIN publish, iot:Subscribe
 * (`topicfilter/<filter>` as sent, `$share/<name>/…` included, MQTT wildcards literal) and
 * iot:Receive (`topic/…`, per message, retained and queued messages included).
 *
 * The same decisions on both protocol versions, answered as AWS IoT Core answers each: an
 * unauthorized PUBLISH closes an MQTT 3.1.1 connection (disconnectReason AUTH_ERROR) and gets
 * PUBACK 0x87 on MQTT 5 (a QoS 0 one is dropped); an unauthorized SUBSCRIBE gets SUBACK 0x80
 * (3.1.1) or 0x87 (5); a message the subscriber may not receive is dropped. Every denial is
 * logged with the decision (action, resource, reason, deciding statement).
 *
 * Reserved topics (`reserved-topics.ts`): Basic Ingest (`$aws/rules/…`) and fleet provisioning
 * requests are consumed by the service (rules engine, provisioning API) and never delivered to
 * a subscriber; subscribing to Basic Ingest or to a provisioning request topic is refused;
 * publishing to lifecycle events or provisioning answers closes the connection (both versions).
 *
 * Presence events `$aws/events/presence/connected|disconnected/<clientId>` are published through
 * the broker itself, so subscribers and `onMessage` listeners (the rules engine) see them.
 *
 * Jobs device API requests (`$aws/things/<thing>/jobs/get|start-next|<jobId>/get|<jobId>/update`)
 * go to the Jobs service (`jobs/device-api.ts`); its `…/accepted|rejected` answers go to the
 * requesting connection alone, like provisioning answers. `notify`/`notify-next` and job events
 * are server-side publishes (normal, policy-checked delivery).
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { AddressInfo, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import { createSecureContext, SecureContext, TLSSocket } from 'node:tls';
import type { IConnectPacket } from 'mqtt-packet';
import type { MqttBrokerLimits } from './mqtt/limits';
import { certificateIdOfDer, type LabCa } from './ca';
import { ClientCertificateGate } from './client-certificate-gate';
import { isJobsRequestTopic, type JobsDeviceApi } from './jobs/device-api';
import { RC } from './mqtt/reason-codes';
import {
  MqttServer,
  type Connection,
  type Denial,
  type Message,
  type PublishProperties,
} from './mqtt/server';
import { evaluatePolicies, iotArn, type IotAction, type PolicyContext } from './policy-evaluator';
import {
  isProvisioningRequestTopic,
  isProvisioningTopic,
  type Log,
  type ProvisioningApi,
} from './provisioning';
import { isServiceConsumedTopic, reservedPublishRefusal, reservedSubscribeRefusal } from './reserved-topics';
import type { IotRegistry } from './state';

export interface BrokerMessage {
  topic: string;
  payload: Buffer;
  clientId?: string;
  principal?: string;
  /** MQTT version of the publishing connection (none for the service's own messages). */
  mqttVersion?: '3.1.1' | '5';
  /** MQTT 5 properties of the PUBLISH (user properties, content type, response topic, …). */
  properties?: PublishProperties;
}

export interface BrokerOptions {
  registry: IotRegistry;
  ca: LabCa;
  host: string;
  provisioning: ProvisioningApi;
  /** The Jobs device MQTT API; without it, Jobs topics are plain topics. */
  jobs?: JobsDeviceApi;
  log?: Log;
  onMessage: (m: BrokerMessage) => void;
  /** Overrides of AWS IoT Core's broker limits (tests only; the lab uses AWS's). */
  limits?: Partial<MqttBrokerLimits>;
}

/** What the broker knows of an accepted connection. */
interface IotSession {
  clientId: string;
  certificateId: string;
  sessionIdentifier: string;
  versionNumber: number;
  ipAddress: string;
  ctx: PolicyContext;
}

/** Client ids with `#` or `+` get no lifecycle events (AWS IoT Developer Guide, "Lifecycle events"). */
const NO_LIFECYCLE_EVENTS = /[#+]/;

export class IotBroker {
  private mqtt?: MqttServer;
  private server?: NetServer;
  private readonly sockets = new Set<Socket>();
  private readonly byCertificate = new Map<string, Set<Connection>>();
  private readonly versions = new Map<string, number>();
  port = 0;

  constructor(private readonly o: BrokerOptions) {}

  async start(): Promise<number> {
    const mqtt = new MqttServer({
      limits: this.o.limits,
      log: this.o.log,
      hooks: {
        authenticate: (c, p) => this.authenticate(c, p),
        authorizePublish: (c, m) => this.publishDenial(c, m),
        authorizeSubscribe: (c, filter) => this.subscribeDenial(c, filter),
        mayReceive: (c, m) => this.mayReceive(c, m),
        isServiceConsumed: isServiceConsumedTopic,
        onMessage: (m, from) => this.onMessage(m, from),
        onConnected: (c) => this.onConnected(c),
        onDisconnected: (c) => this.onDisconnected(c),
      },
    });
    this.mqtt = mqtt;
    this.closeOnCertificateDisabled();
    this.server = this.createTlsFront(mqtt);
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.o.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    const mqtt = this.mqtt;
    const server = this.server;
    this.mqtt = undefined;
    this.server = undefined;
    if (mqtt) await mqtt.stop();
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Server-side publish through the broker (subscribers, Receive policy, onMessage). */
  publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0): Promise<void> {
    const mqtt = this.mqtt;
    if (!mqtt) return Promise.reject(new Error('broker is stopped'));
    mqtt.publish({
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos,
      retain: false,
    });
    return Promise.resolve();
  }

  /** The TCP server whose connections go through the client-certificate gate and TLS to MQTT. */
  private createTlsFront(mqtt: MqttServer): NetServer {
    const secureContext = createSecureContext({
      key: this.o.ca.serverKeyPem,
      cert: this.o.ca.serverCertPem,
      ca: [this.o.ca.caPem],
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    });
    const caCertificate = new X509Certificate(this.o.ca.caPem);
    return createNetServer({ noDelay: true }, (tcp) => this.accept(mqtt, tcp, secureContext, caCertificate));
  }

  /**
   * One TCP connection: the client-certificate gate in front of a server-side TLS socket, and
   * MQTT on the TLS socket (its connect timeout also bounds a stalled handshake).
   */
  private accept(mqtt: MqttServer, tcp: Socket, secureContext: SecureContext, ca: X509Certificate): void {
    const remote = tcp.remoteAddress ?? 'unknown';
    this.sockets.add(tcp);
    tcp.on('close', () => this.sockets.delete(tcp));
    const gate = new ClientCertificateGate(tcp, {
      ca,
      onRefused: (reason) =>
        this.o.log?.({
          level: 'warn',
          msg: `TLS handshake refused with alert unknown_ca: ${reason}`,
          remote,
        }),
    });
    const socket = new TLSSocket(gate, {
      isServer: true,
      secureContext,
      requestCert: true,
      rejectUnauthorized: true,
    });
    // The identity is fixed at CONNECT: no renegotiation to another certificate afterwards.
    socket.disableRenegotiation();
    let established = false;
    socket.once('secure', () => (established = true));
    socket.on('error', (err) => {
      if (established || gate.refused) return;
      this.o.log?.({ level: 'info', msg: `TLS handshake refused: ${err.message}`, remote });
    });
    mqtt.handle(socket, remote);
  }

  /** A certificate leaving ACTIVE closes its connections at once. */
  private closeOnCertificateDisabled(): void {
    this.o.registry.onCertificateDisabled((certificateId) => {
      for (const c of [...(this.byCertificate.get(certificateId) ?? [])]) {
        this.o.log?.({
          level: 'info',
          msg: 'closing connection: certificate is no longer ACTIVE',
          clientId: c.clientId,
          certificateId,
        });
        this.mqtt?.disconnect(
          c,
          RC.NOT_AUTHORIZED,
          'the certificate is no longer ACTIVE',
          'SERVER_INITIATED_DISCONNECT',
        );
      }
    });
  }

  private onMessage(m: Message, from: Connection | undefined): void {
    if (m.topic.startsWith('$SYS/')) return;
    if (!from) {
      this.emit({ topic: m.topic, payload: m.payload });
      return;
    }
    const s = from.data as IotSession | undefined;
    if (!s) return;
    if (isProvisioningRequestTopic(m.topic)) {
      this.provision(from, s, m.topic, m.payload).catch((e: unknown) =>
        this.o.log?.({
          level: 'error',
          msg: `fleet provisioning request failed: ${e instanceof Error ? e.message : String(e)}`,
          clientId: s.clientId,
          topic: m.topic,
        }),
      );
      return;
    }
    if (isProvisioningTopic(m.topic)) return;
    if (this.o.jobs && isJobsRequestTopic(m.topic)) {
      this.answerJobs(from, s, m.topic, m.payload);
      return;
    }
    this.emit({
      topic: m.topic,
      payload: m.payload,
      clientId: s.clientId,
      principal: s.certificateId,
      mqttVersion: from.version === 5 ? '5' : '3.1.1',
      properties: m.properties,
    });
  }

  private emit(m: BrokerMessage): void {
    try {
      this.o.onMessage(m);
    } catch (e) {
      this.o.log?.({
        level: 'error',
        msg: `onMessage listener failed: ${(e as Error).message}`,
        topic: m.topic,
      });
    }
  }

  /** CONNECT: the certificate, the thing, then iot:Connect with the connect attributes. */
  private authenticate(c: Connection, p: IConnectPacket): Denial | undefined {
    const reg = this.o.registry;
    const socket = c.socket as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    if (!peer || !peer.raw) {
      this.o.log?.({
        level: 'warn',
        msg: 'connect refused: no client certificate',
        clientId: c.clientId,
        remote: c.remoteAddress,
      });
      return { code: RC.NOT_AUTHORIZED, reason: 'client certificate required' };
    }
    const certificateId = certificateIdOfDer(peer.raw);
    const cert = reg.certificates.get(certificateId);
    if (!cert || cert.status !== 'ACTIVE') {
      this.o.log?.({
        level: 'warn',
        msg: `connect refused: certificate ${cert ? `is ${cert.status}` : 'is not registered'}`,
        clientId: c.clientId,
        certificateId,
      });
      return { code: RC.NOT_AUTHORIZED, reason: 'certificate not usable' };
    }
    const clientId = c.clientId;
    const thing = reg.things.get(clientId);
    const attached = thing !== undefined && reg.isThingAttached(clientId, certificateId);
    const ctx: PolicyContext = {
      region: reg.region,
      accountId: reg.accountId,
      clientId,
      certificateId,
      thing:
        attached && thing
          ? { thingName: thing.thingName, thingTypeName: thing.thingTypeName, attributes: thing.attributes }
          : undefined,
      connectAttributes: connectAttributes(c, p),
    };
    const version = (this.versions.get(clientId) ?? 0) + 1;
    const session: IotSession = {
      clientId,
      certificateId,
      sessionIdentifier: randomUUID(),
      versionNumber: version,
      ipAddress: c.remoteAddress.replace(/^::ffff:/, ''),
      ctx,
    };
    if (!this.check(session, 'iot:Connect', iotArn.client(reg.region, reg.accountId, clientId)))
      return { code: RC.NOT_AUTHORIZED, reason: 'connect denied by policy' };
    this.versions.set(clientId, version);
    c.data = session;
    return undefined;
  }

  private check(s: IotSession, action: IotAction, resource: string): boolean {
    const d = evaluatePolicies(
      this.o.registry.policiesForCertificate(s.certificateId),
      { action, resource },
      s.ctx,
    );
    if (!d.allowed) {
      this.o.log?.({
        level: 'warn',
        msg: `policy denied ${action} on ${resource}: ${d.detail}`,
        clientId: s.clientId,
        certificateId: s.certificateId,
        action,
        resource,
        reason: d.reason,
        statement: d.statement,
      });
    }
    return d.allowed;
  }

  /** Why this PUBLISH (or Will) is refused (reserved topic, iot:Publish, iot:RetainPublish), or undefined. */
  private publishDenial(c: Connection, m: Message): Denial | undefined {
    const s = c.data as IotSession;
    const reg = this.o.registry;
    const refusal = reservedPublishRefusal(m.topic);
    if (refusal) {
      this.logDenial(s, 'iot:Publish', m.topic, refusal);
      // AWS: an unsupported publish to a reserved topic can terminate the connection.
      return {
        code: RC.NOT_AUTHORIZED,
        reason: `publish to ${m.topic} refused: ${refusal}`,
        disconnect: true,
      };
    }
    const resource = iotArn.topic(reg.region, reg.accountId, m.topic);
    if (!this.check(s, 'iot:Publish', resource))
      return { code: RC.NOT_AUTHORIZED, reason: `publish to ${m.topic} denied by policy` };
    // AWS IoT: a RETAIN publish needs iot:RetainPublish as well as iot:Publish on the topic.
    if (m.retain && !isServiceConsumedTopic(m.topic) && !this.check(s, 'iot:RetainPublish', resource))
      return { code: RC.NOT_AUTHORIZED, reason: `retained publish to ${m.topic} denied by policy` };
    return undefined;
  }

  private subscribeDenial(c: Connection, filter: string): Denial | undefined {
    const s = c.data as IotSession;
    const reg = this.o.registry;
    const inner = filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
    const refusal = reservedSubscribeRefusal(inner);
    if (refusal) {
      this.logDenial(s, 'iot:Subscribe', filter, refusal);
      return { code: RC.NOT_AUTHORIZED, reason: refusal };
    }
    if (!this.check(s, 'iot:Subscribe', iotArn.topicFilter(reg.region, reg.accountId, filter)))
      return { code: RC.NOT_AUTHORIZED, reason: `subscribe to ${filter} denied by policy` };
    return undefined;
  }

  private mayReceive(c: Connection, m: Message): boolean {
    const s = c.data as IotSession | undefined;
    if (!s) return false;
    const reg = this.o.registry;
    return this.check(s, 'iot:Receive', iotArn.topic(reg.region, reg.accountId, m.topic));
  }

  private logDenial(s: IotSession, action: IotAction, resource: string, why: string): void {
    this.o.log?.({
      level: 'warn',
      msg: `denied ${action} on ${resource}: ${why}`,
      clientId: s.clientId,
      action,
      resource,
    });
  }

  private onConnected(c: Connection): void {
    const s = c.data as IotSession;
    let set = this.byCertificate.get(s.certificateId);
    if (!set) this.byCertificate.set(s.certificateId, (set = new Set()));
    set.add(c);
    if (NO_LIFECYCLE_EVENTS.test(s.clientId)) return;
    void this.publishPresence('connected', s, {}).catch(() => undefined);
  }

  private onDisconnected(c: Connection): void {
    const s = c.data as IotSession | undefined;
    if (!s) return;
    this.byCertificate.get(s.certificateId)?.delete(c);
    if (NO_LIFECYCLE_EVENTS.test(s.clientId) || !this.mqtt) return;
    const reason = c.endReason ?? 'CONNECTION_LOST';
    void this.publishPresence('disconnected', s, {
      clientInitiatedDisconnect: reason === 'CLIENT_INITIATED_DISCONNECT',
      disconnectReason: reason,
    }).catch(() => undefined);
  }

  /** Payload shape: AWS IoT Developer Guide, "Lifecycle events" (connect/disconnect). */
  private publishPresence(
    kind: 'connected' | 'disconnected',
    s: IotSession,
    extra: Record<string, unknown>,
  ): Promise<void> {
    const payload = {
      clientId: s.clientId,
      timestamp: Date.now(),
      eventType: kind,
      ...extra,
      sessionIdentifier: s.sessionIdentifier,
      principalIdentifier: s.certificateId,
      ipAddress: s.ipAddress,
      versionNumber: s.versionNumber,
    };
    return this.publish(`$aws/events/presence/${kind}/${s.clientId}`, JSON.stringify(payload), 1);
  }

  /** A Jobs API request: the answers go to the requesting connection alone. */
  private answerJobs(c: Connection, s: IotSession, topic: string, payload: Buffer): void {
    let answers;
    try {
      answers = this.o.jobs?.handle(topic, payload) ?? [];
    } catch (e) {
      this.o.log?.({
        level: 'error',
        msg: `Jobs request failed: ${e instanceof Error ? e.message : String(e)}`,
        clientId: s.clientId,
        topic,
      });
      return;
    }
    for (const a of answers) {
      const m = {
        topic: a.topic,
        payload: Buffer.from(JSON.stringify(a.payload)),
        qos: 1 as const,
        retain: false,
      };
      if (!this.mqtt || c.closed || !this.mayReceive(c, m) || !this.mqtt.sendTo(c, m))
        this.o.log?.({
          level: 'info',
          msg: `Jobs answer dropped: the connection is not subscribed to ${a.topic} or may not receive it`,
          clientId: s.clientId,
        });
    }
  }

  private async provision(c: Connection, s: IotSession, topic: string, payload: Buffer): Promise<void> {
    const res = await this.o.provisioning.handle(topic, payload, {
      clientId: s.clientId,
      certificateId: s.certificateId,
    });
    if (!res || c.closed || !this.mqtt) return;
    const sent = this.mqtt.sendTo(c, {
      topic: res.topic,
      payload: Buffer.from(JSON.stringify(res.payload)),
      qos: 1,
      retain: false,
    });
    if (!sent)
      this.o.log?.({
        level: 'info',
        msg: `fleet provisioning response dropped: the connection is not subscribed to ${res.topic}`,
        clientId: s.clientId,
      });
  }
}

/**
 * `iot:ConnectAttributes` of a CONNECT: `PersistentConnect` (a session that outlives the
 * connection), `LastWill` (a Will message) and `MQTTv5` (an MQTT 5 connection; see D22).
 */
function connectAttributes(c: Connection, p: IConnectPacket): string[] {
  const attrs: string[] = [];
  const persistent = c.version === 4 ? p.clean === false : (p.properties?.sessionExpiryInterval ?? 0) > 0;
  if (persistent) attrs.push('PersistentConnect');
  if (p.will) attrs.push('LastWill');
  if (c.version === 5) attrs.push('MQTTv5');
  return attrs;
}
