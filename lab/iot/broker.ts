/**
 * The lab's MQTT message broker: aedes (MQTT 3.1.1) behind a mutual-TLS server.
 *
 * TLS: a client certificate that does not chain to the lab CA fails the handshake with a fatal
 * `unknown_ca` alert (see `client-certificate-gate.ts`; TLS 1.2, as the gate must read the
 * certificate). A connection without a client certificate gets the TLS server's own alert.
 *
 * Connect: the client certificate is looked up by its certificate id (SHA-256 of the DER);
 * unknown, INACTIVE, REVOKED and PENDING_ACTIVATION certificates are refused. Then every policy
 * attached to the certificate is evaluated for iot:Connect on `client/<clientId>`; later for
 * iot:Publish (`topic/…`), iot:RetainPublish as well for a RETAIN publish (`topic/…`),
 * iot:Subscribe (`topicfilter/<filter>`, MQTT wildcards literal) and iot:Receive (`topic/…`,
 * per message, retained messages included).
 *
 * Like AWS IoT Core with MQTT 3.1.1: an unauthorized PUBLISH (retained or not) closes the
 * connection (disconnectReason AUTH_ERROR) and nothing is stored or delivered; an unauthorized
 * SUBSCRIBE gets the SUBACK failure code 0x80; a message the subscriber may not receive is
 * dropped. Every denial is logged with the decision (action, resource, reason, deciding
 * statement).
 *
 * Reserved topics (`reserved-topics.ts`): Basic Ingest (`$aws/rules/…`) and fleet provisioning
 * requests are consumed by the service (rules engine, provisioning API) and never delivered to
 * a subscriber; subscribing to Basic Ingest or to a provisioning request topic gets 0x80;
 * publishing to lifecycle events or provisioning answers closes the connection. A message is
 * delivered only through a subscription that matches it under MQTT rules (a filter starting
 * with a wildcard never matches a `$` topic), retained and queued messages included.
 *
 * Presence events `$aws/events/presence/connected|disconnected/<clientId>` are published through
 * the broker itself, so subscribers and `onMessage` listeners (the rules engine) see them.
 */
import { randomUUID } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { AddressInfo, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import { createSecureContext, SecureContext, TLSSocket } from 'node:tls';
import type { Client, PublishPacket, Subscription } from 'aedes';
import { loadAedes, type AedesBroker } from './aedes-loader';
import { certificateIdOfDer, type LabCa } from './ca';
import { ClientCertificateGate } from './client-certificate-gate';
import { evaluatePolicies, iotArn, type IotAction, type PolicyContext } from './policy-evaluator';
import {
  isProvisioningRequestTopic,
  isProvisioningTopic,
  type Log,
  type ProvisioningApi,
} from './provisioning';
import { isServiceConsumedTopic, reservedPublishRefusal, reservedSubscribeRefusal } from './reserved-topics';
import type { IotRegistry } from './state';
import { topicMatches } from '../rules/topic-filter';

export interface BrokerMessage {
  topic: string;
  payload: Buffer;
  clientId?: string;
  principal?: string;
}

export interface BrokerOptions {
  registry: IotRegistry;
  ca: LabCa;
  host: string;
  provisioning: ProvisioningApi;
  log?: Log;
  onMessage: (m: BrokerMessage) => void;
}

interface Session {
  clientId: string;
  certificateId: string;
  sessionIdentifier: string;
  versionNumber: number;
  ipAddress: string;
  ctx: PolicyContext;
  connectAttributes: string[];
  disconnectReason?: string;
  announced: boolean;
}

type AuthError = Error & { returnCode: number };

function authError(message: string): AuthError {
  return Object.assign(new Error(message), { returnCode: 5 });
}

export class IotBroker {
  private aedes?: AedesBroker;
  private server?: NetServer;
  private readonly sockets = new Set<Socket>();
  /** Remote address of each TLS connection (the TLS socket sits on the gate, not on TCP). */
  private readonly remotes = new WeakMap<object, string>();
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly pendingAttributes = new WeakMap<Client, string[]>();
  private readonly byCertificate = new Map<string, Set<Client>>();
  private readonly versions = new Map<string, number>();
  port = 0;

  constructor(private readonly o: BrokerOptions) {}

  async start(): Promise<number> {
    const aedes = await this.createAedes();
    this.aedes = aedes;
    this.watchAedes(aedes);
    this.closeOnCertificateDisabled();
    this.server = this.createTlsFront(aedes);
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.o.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** aedes with the IoT Core checks as its hooks: certificate at CONNECT, then the policies. */
  private createAedes(): Promise<AedesBroker> {
    const { Aedes } = loadAedes();
    const reg = this.o.registry;
    return Aedes.createBroker({
      maxClientsIdLength: 128,
      heartbeatInterval: 60_000,
      preConnect: (client, packet, cb) => {
        const attrs: string[] = [];
        if (packet.clean === false) attrs.push('PersistentConnect');
        if (packet.will) attrs.push('LastWill');
        this.pendingAttributes.set(client, attrs);
        cb(null, true);
      },
      authenticate: (client, _u, _p, done) => {
        try {
          this.authenticate(client);
          done(null, true);
        } catch (e) {
          done(e as AuthError, false);
        }
      },
      authorizePublish: (client, packet, cb) => {
        if (!client) return cb(null); // server-side publish
        const s = this.sessions.get(client);
        if (!s) return cb(new Error('not authenticated'));
        const denied = this.publishDenial(s, packet);
        if (denied) {
          s.disconnectReason = 'AUTH_ERROR';
          return cb(new Error(denied));
        }
        // The service consumes it (rules engine, provisioning API): there is nothing to retain.
        if (isServiceConsumedTopic(packet.topic)) packet.retain = false;
        cb(null);
      },
      authorizeSubscribe: (client, sub: Subscription, cb) => {
        const s = this.sessions.get(client);
        if (!s) return cb(new Error('not authenticated'), null);
        const refusal = reservedSubscribeRefusal(sub.topic);
        if (refusal) {
          this.logDenial(s, 'iot:Subscribe', sub.topic, refusal);
          return cb(null, null);
        }
        if (!this.check(s, 'iot:Subscribe', iotArn.topicFilter(reg.region, reg.accountId, sub.topic)))
          return cb(null, null);
        cb(null, sub);
      },
      authorizeForward: (client, packet) => {
        const s = this.sessions.get(client);
        if (!s) return null;
        if (isServiceConsumedTopic(packet.topic)) return null;
        if (!this.subscribedTo(client, packet.topic)) return null;
        if (!this.check(s, 'iot:Receive', iotArn.topic(reg.region, reg.accountId, packet.topic))) return null;
        return packet;
      },
    });
  }

  /** Presence events, keep-alive timeouts, and accepted publishes (provisioning API or onMessage). */
  private watchAedes(aedes: AedesBroker): void {
    aedes.on('clientReady', (client) => this.onReady(client));
    aedes.on('clientDisconnect', (client) => this.onDisconnect(client));
    aedes.on('keepaliveTimeout', (client) => {
      const s = this.sessions.get(client);
      if (s) s.disconnectReason = 'MQTT_KEEP_ALIVE_TIMEOUT';
    });
    aedes.on('publish', (packet, client) => this.onPublish(packet, client));
  }

  private onPublish(packet: PublishPacket, client: Client | null): void {
    if (packet.topic.startsWith('$SYS/')) return;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? '');
    if (!client) {
      this.emit({ topic: packet.topic, payload });
      return;
    }
    const s = this.sessions.get(client);
    if (!s) return;
    if (isProvisioningRequestTopic(packet.topic)) {
      this.provision(client, s, packet.topic, payload).catch((e: unknown) =>
        this.o.log?.({
          level: 'error',
          msg: `fleet provisioning request failed: ${e instanceof Error ? e.message : String(e)}`,
          clientId: s.clientId,
          topic: packet.topic,
        }),
      );
      return;
    }
    if (isProvisioningTopic(packet.topic)) return;
    this.emit({ topic: packet.topic, payload, clientId: s.clientId, principal: s.certificateId });
  }

  /** A certificate leaving ACTIVE closes its connections at once. */
  private closeOnCertificateDisabled(): void {
    this.o.registry.onCertificateDisabled((certificateId) => {
      for (const c of this.byCertificate.get(certificateId) ?? []) {
        const s = this.sessions.get(c);
        if (s) s.disconnectReason = 'SERVER_INITIATED_DISCONNECT';
        this.o.log?.({
          level: 'info',
          msg: 'closing connection: certificate is no longer ACTIVE',
          clientId: c.id,
          certificateId,
        });
        c.close();
      }
    });
  }

  /** The TCP server whose connections go through the client-certificate gate and TLS to aedes. */
  private createTlsFront(aedes: AedesBroker): NetServer {
    const secureContext = createSecureContext({
      key: this.o.ca.serverKeyPem,
      cert: this.o.ca.serverCertPem,
      ca: [this.o.ca.caPem],
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    });
    const caCertificate = new X509Certificate(this.o.ca.caPem);
    return createNetServer({ noDelay: true }, (tcp) => this.accept(aedes, tcp, secureContext, caCertificate));
  }

  async stop(): Promise<void> {
    const aedes = this.aedes;
    const server = this.server;
    this.aedes = undefined;
    this.server = undefined;
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * One TCP connection: the client-certificate gate in front of a server-side TLS socket, and
   * aedes on the TLS socket (its connect timeout also bounds a stalled handshake).
   */
  private accept(aedes: AedesBroker, tcp: Socket, secureContext: SecureContext, ca: X509Certificate): void {
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
    this.remotes.set(socket, remote);
    let established = false;
    socket.once('secure', () => (established = true));
    socket.on('error', (err) => {
      if (established || gate.refused) return;
      this.o.log?.({ level: 'info', msg: `TLS handshake refused: ${err.message}`, remote });
    });
    aedes.handle(socket);
  }

  /** Server-side publish through the broker (subscribers, Receive policy, onMessage). */
  publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error('broker is stopped'));
    return new Promise((resolve, reject) =>
      aedes.publish(
        {
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos,
          retain: false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
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

  private authenticate(client: Client): void {
    const reg = this.o.registry;
    const socket = client.conn as unknown as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    const remote = this.remotes.get(socket) ?? socket.remoteAddress ?? 'unknown';
    if (!peer || !peer.raw) {
      this.o.log?.({
        level: 'warn',
        msg: 'connect refused: no client certificate',
        clientId: client.id,
        remote,
      });
      throw authError('client certificate required');
    }
    const certificateId = certificateIdOfDer(peer.raw);
    const cert = reg.certificates.get(certificateId);
    if (!cert || cert.status !== 'ACTIVE') {
      this.o.log?.({
        level: 'warn',
        msg: `connect refused: certificate ${cert ? `is ${cert.status}` : 'is not registered'}`,
        clientId: client.id,
        certificateId,
      });
      throw authError('certificate not usable');
    }
    const clientId = client.id;
    const thing = reg.things.get(clientId);
    const attached = thing !== undefined && reg.isThingAttached(clientId, certificateId);
    const connectAttributes = this.pendingAttributes.get(client) ?? [];
    const ctx: PolicyContext = {
      region: reg.region,
      accountId: reg.accountId,
      clientId,
      certificateId,
      thing:
        attached && thing
          ? { thingName: thing.thingName, thingTypeName: thing.thingTypeName, attributes: thing.attributes }
          : undefined,
      connectAttributes,
    };
    const version = (this.versions.get(clientId) ?? 0) + 1;
    this.versions.set(clientId, version);
    const session: Session = {
      clientId,
      certificateId,
      sessionIdentifier: randomUUID(),
      versionNumber: version,
      ipAddress: remote.replace(/^::ffff:/, ''),
      ctx,
      connectAttributes,
      announced: false,
    };
    if (!this.check(session, 'iot:Connect', iotArn.client(reg.region, reg.accountId, clientId))) {
      throw authError('connect denied by policy');
    }
    // A second connection with the same client id takes over (aedes closes the old one).
    const previous = (this.aedes as unknown as { clients: Record<string, Client> } | undefined)?.clients[
      clientId
    ];
    if (previous && previous !== client) {
      const ps = this.sessions.get(previous);
      if (ps) ps.disconnectReason = 'DUPLICATE_CLIENTID';
    }
    this.sessions.set(client, session);
    let set = this.byCertificate.get(certificateId);
    if (!set) this.byCertificate.set(certificateId, (set = new Set()));
    set.add(client);
  }

  private check(s: Session, action: IotAction, resource: string): boolean {
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

  /** Why this PUBLISH is refused (reserved topic, iot:Publish, iot:RetainPublish), or undefined. */
  private publishDenial(s: Session, packet: PublishPacket): string | undefined {
    const reg = this.o.registry;
    const refusal = reservedPublishRefusal(packet.topic);
    if (refusal) {
      this.logDenial(s, 'iot:Publish', packet.topic, refusal);
      return `publish to ${packet.topic} refused: ${refusal}`;
    }
    const resource = iotArn.topic(reg.region, reg.accountId, packet.topic);
    if (!this.check(s, 'iot:Publish', resource)) return `publish to ${packet.topic} denied by policy`;
    // AWS IoT: a RETAIN publish needs iot:RetainPublish as well as iot:Publish on the topic.
    if (packet.retain && !this.check(s, 'iot:RetainPublish', resource))
      return `retained publish to ${packet.topic} denied by policy`;
    return undefined;
  }

  /**
   * True when one of the client's subscriptions matches `topic` under MQTT rules. aedes already
   * holds this for live messages, but its retained-message store and offline queue match `#`
   * and `+` against `$` topics too.
   */
  private subscribedTo(client: Client, topic: string): boolean {
    const subs = (client as unknown as { subscriptions: Record<string, unknown> }).subscriptions;
    return Object.keys(subs).some((filter) => topicMatches(filter, topic));
  }

  private logDenial(s: Session, action: IotAction, resource: string, why: string): void {
    this.o.log?.({
      level: 'warn',
      msg: `denied ${action} on ${resource}: ${why}`,
      clientId: s.clientId,
      action,
      resource,
    });
  }

  private onReady(client: Client): void {
    const s = this.sessions.get(client);
    if (!s) return;
    s.announced = true;
    if (/[#+]/.test(s.clientId)) return;
    void this.publishPresence('connected', s, {}).catch(() => undefined);
  }

  private onDisconnect(client: Client): void {
    const s = this.sessions.get(client);
    if (!s) return;
    this.byCertificate.get(s.certificateId)?.delete(client);
    if (!s.announced || /[#+]/.test(s.clientId) || !this.aedes) return;
    const clientInitiated = (client as unknown as { _disconnected?: boolean })._disconnected === true;
    const reason =
      s.disconnectReason ?? (clientInitiated ? 'CLIENT_INITIATED_DISCONNECT' : 'CONNECTION_LOST');
    void this.publishPresence('disconnected', s, {
      clientInitiatedDisconnect: reason === 'CLIENT_INITIATED_DISCONNECT',
      disconnectReason: reason,
    }).catch(() => undefined);
  }

  /** Payload shape: AWS IoT Developer Guide, "Lifecycle events" (connect/disconnect). */
  private publishPresence(
    kind: 'connected' | 'disconnected',
    s: Session,
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

  private async provision(client: Client, s: Session, topic: string, payload: Buffer): Promise<void> {
    const res = await this.o.provisioning.handle(topic, payload, {
      clientId: s.clientId,
      certificateId: s.certificateId,
    });
    if (!res || client.closed) return;
    const subs = (client as unknown as { subscriptions: Record<string, { qos: number }> }).subscriptions;
    const match = Object.entries(subs).find(([filter]) => topicMatches(filter, res.topic));
    if (!match) {
      this.o.log?.({
        level: 'info',
        msg: `fleet provisioning response dropped: the connection is not subscribed to ${res.topic}`,
        clientId: s.clientId,
      });
      return;
    }
    const qos = Math.min(1, match[1].qos ?? 0) as 0 | 1;
    client.publish(
      {
        cmd: 'publish',
        topic: res.topic,
        payload: Buffer.from(JSON.stringify(res.payload)),
        qos,
        retain: false,
        dup: false,
      },
      () => undefined,
    );
  }
}
