/**
 * The lab's MQTT message broker: aedes (MQTT 3.1.1) behind a mutual-TLS server.
 *
 * Connect: the client certificate (already chained to the lab CA by TLS) is looked up by its
 * certificate id (SHA-256 of the DER); unknown, INACTIVE, REVOKED and PENDING_ACTIVATION
 * certificates are refused. Then every policy attached to the certificate is evaluated for
 * iot:Connect on `client/<clientId>`; later for iot:Publish (`topic/…`), iot:Subscribe
 * (`topicfilter/<filter>`, MQTT wildcards literal) and iot:Receive (`topic/…`, per message).
 *
 * Like AWS IoT Core with MQTT 3.1.1: an unauthorized PUBLISH closes the connection
 * (disconnectReason AUTH_ERROR); an unauthorized SUBSCRIBE gets the SUBACK failure code 0x80;
 * a message the subscriber may not receive is dropped. Every denial is logged with the
 * decision (action, resource, reason, deciding statement).
 *
 * Presence events `$aws/events/presence/connected|disconnected/<clientId>` are published through
 * the broker itself, so subscribers and `onMessage` listeners (the rules engine) see them.
 */
import { randomUUID } from 'node:crypto';
import { AddressInfo, Socket } from 'node:net';
import { createServer as createTlsServer, Server as TlsServer, TLSSocket } from 'node:tls';
import type { Client, Subscription } from 'aedes';
import { loadAedes, type AedesBroker } from './aedes-loader';
import { certificateIdOfDer, type LabCa } from './ca';
import { evaluatePolicies, iotArn, type IotAction, type PolicyContext } from './policy-evaluator';
import {
  isProvisioningRequestTopic,
  isProvisioningTopic,
  type Log,
  type ProvisioningApi,
} from './provisioning';
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
  private server?: TlsServer;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly pendingAttributes = new WeakMap<Client, string[]>();
  private readonly byCertificate = new Map<string, Set<Client>>();
  private readonly versions = new Map<string, number>();
  port = 0;

  constructor(private readonly o: BrokerOptions) {}

  async start(): Promise<number> {
    const { Aedes } = loadAedes();
    const reg = this.o.registry;
    const aedes = await Aedes.createBroker({
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
        if (packet.topic.startsWith('$aws/events/')) {
          this.logDenial(
            s,
            'iot:Publish',
            packet.topic,
            'reserved topic: clients cannot publish lifecycle events',
          );
          s.disconnectReason = 'AUTH_ERROR';
          return cb(new Error('publish to reserved topic denied'));
        }
        if (!this.check(s, 'iot:Publish', iotArn.topic(reg.region, reg.accountId, packet.topic))) {
          s.disconnectReason = 'AUTH_ERROR';
          return cb(new Error(`publish to ${packet.topic} denied by policy`));
        }
        cb(null);
      },
      authorizeSubscribe: (client, sub: Subscription, cb) => {
        const s = this.sessions.get(client);
        if (!s) return cb(new Error('not authenticated'), null);
        if (!this.check(s, 'iot:Subscribe', iotArn.topicFilter(reg.region, reg.accountId, sub.topic)))
          return cb(null, null);
        cb(null, sub);
      },
      authorizeForward: (client, packet) => {
        const s = this.sessions.get(client);
        if (!s) return null;
        if (!this.check(s, 'iot:Receive', iotArn.topic(reg.region, reg.accountId, packet.topic))) return null;
        return packet;
      },
    });
    this.aedes = aedes;

    aedes.on('clientReady', (client) => this.onReady(client));
    aedes.on('clientDisconnect', (client) => this.onDisconnect(client));
    aedes.on('keepaliveTimeout', (client) => {
      const s = this.sessions.get(client);
      if (s) s.disconnectReason = 'MQTT_KEEP_ALIVE_TIMEOUT';
    });
    aedes.on('publish', (packet, client) => {
      if (packet.topic.startsWith('$SYS/')) return;
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? '');
      if (client) {
        const s = this.sessions.get(client);
        if (!s) return;
        if (isProvisioningRequestTopic(packet.topic)) {
          void this.provision(client, s, packet.topic, payload);
          return;
        }
        if (isProvisioningTopic(packet.topic)) return;
        this.emit({ topic: packet.topic, payload, clientId: s.clientId, principal: s.certificateId });
      } else {
        this.emit({ topic: packet.topic, payload });
      }
    });

    reg.onCertificateDisabled((certificateId) => {
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

    this.server = createTlsServer(
      {
        key: this.o.ca.serverKeyPem,
        cert: this.o.ca.serverCertPem,
        ca: [this.o.ca.caPem],
        requestCert: true,
        rejectUnauthorized: true,
        noDelay: true,
        minVersion: 'TLSv1.2',
      },
      (socket) => {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        aedes.handle(socket);
      },
    );
    this.server.on('tlsClientError', (err, socket) => {
      this.o.log?.({
        level: 'info',
        msg: `TLS handshake refused: ${err.message}`,
        remote: socket.remoteAddress,
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(0, this.o.host, () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
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
    const remote = socket.remoteAddress ?? 'unknown';
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
