/**
 * The lab's MQTT server: MQTT 3.1.1 and MQTT 5 on the same connection handler, with the
 * behaviour and limits of the AWS IoT Core message broker (`core/mqtt-limits.ts`). Packets are
 * read and written by mqtt-packet; everything else (sessions, QoS 1 delivery, retained messages,
 * Will messages, shared subscriptions, topic aliases, message expiry, keep-alive, flow control)
 * is here. Identity and authorization are the hooks' (`broker.ts`): this file knows nothing of
 * certificates or policies.
 *
 * How a refusal is answered follows AWS IoT Core: a reason code on MQTT 5 (CONNACK, PUBACK,
 * SUBACK or a server DISCONNECT), and on MQTT 3.1.1, which has no reason codes, a CONNACK return
 * code, a SUBACK failure (0x80), or the connection closed where AWS closes it. Every refusal is
 * logged with its reason. docs/lab.md lists each case.
 */
import type { Duplex } from 'node:stream';
import {
  generate,
  parser as createParser,
  type IConnectPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
} from 'mqtt-packet';
import { effectiveKeepAlive, MQTT_BROKER_LIMITS, topicLimitProblem, type MqttBrokerLimits } from './limits';
import { topicMatches, validateTopicFilter } from '../../rules/topic-filter';
import { connackReturnCode311, describeReasonCode, RC, SUBACK_FAILURE_311 } from './reason-codes';
import {
  Session,
  type Message,
  type ProtocolVersion,
  type PublishProperties,
  type Subscription,
} from './session';
import { SubscriptionIndex } from './subscription-index';

export type { Message, ProtocolVersion, PublishProperties, Subscription } from './session';

/** Why a connection ended, as AWS IoT lifecycle events name it (`disconnectReason`). */
export type EndReason =
  | 'AUTH_ERROR'
  | 'CLIENT_INITIATED_DISCONNECT'
  | 'CLIENT_ERROR'
  | 'CONNECTION_LOST'
  | 'DUPLICATE_CLIENTID'
  | 'MQTT_KEEP_ALIVE_TIMEOUT'
  | 'SERVER_INITIATED_DISCONNECT'
  | 'THROTTLED';

/** A hook's refusal: the MQTT 5 reason code and why. */
export interface Denial {
  code: number;
  reason: string;
  /**
   * Publish only: end the connection on either version (MQTT 5 with a DISCONNECT carrying
   * `code`), as AWS does for publishes it treats as a violation. Otherwise an MQTT 5 client
   * gets the code in its PUBACK, and an MQTT 3.1.1 client is disconnected.
   */
  disconnect?: boolean;
  /** The lifecycle `disconnectReason` when the refusal ends the connection. @default AUTH_ERROR */
  endReason?: EndReason;
}

export interface ServerHooks {
  /** After the protocol checks of a CONNECT: identify and authorize the client, or refuse. */
  authenticate(c: Connection, packet: IConnectPacket): Denial | undefined;
  /** A PUBLISH (or a Will message at CONNECT) the client may not make. */
  authorizePublish(c: Connection, m: Message): Denial | undefined;
  /** A SUBSCRIBE filter (as sent, `$share/…` included) the client may not use. */
  authorizeSubscribe(c: Connection, filter: string): Denial | undefined;
  /** Whether the client may receive `m` (checked when it is sent). */
  mayReceive(c: Connection, m: Message): boolean;
  /** Topics the service consumes: never delivered to a subscriber, never retained. */
  isServiceConsumed(topic: string): boolean;
  /** Every message accepted for routing (client publishes, Will messages, the service's own). */
  onMessage(m: Message, from: Connection | undefined): void;
  onConnected(c: Connection): void;
  /** A connection that had been accepted ended (`c.endReason`). */
  onDisconnected(c: Connection): void;
}

export type ServerLog = (entry: {
  level: 'info' | 'warn' | 'error';
  msg: string;
  [k: string]: unknown;
}) => void;

export interface ServerOptions {
  hooks: ServerHooks;
  limits?: Partial<MqttBrokerLimits>;
  log?: ServerLog;
  /** Time allowed from the TCP connection to a CONNECT. @default 30000 */
  connectTimeoutMs?: number;
}

/** Bytes waiting to be written to a connection beyond which QoS 0 messages to it are dropped. */
const OUTBOUND_BUFFER_BYTES = 4 * 1024 * 1024;

type Entry = { kind: 'client'; sub: Subscription } | { kind: 'shared'; group: SharedGroup };

interface SharedGroup {
  key: string;
  topicFilter: string;
  members: Map<string, Subscription>;
}

interface WillMessage {
  message: Message;
  expirySeconds?: number;
}

/** Token bucket refilled continuously: `rate` per second, holding at most `rate`. */
class Bucket {
  private tokens: number;
  private at = Date.now();
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }
  /** Takes `n`; returns the ms to wait when it went below zero (0 when there was enough). */
  take(n: number): number {
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }
  /** Takes one if there is one. */
  tryTake(): boolean {
    if (this.take(1) === 0) return true;
    this.tokens += 1;
    return false;
  }
}

/** One network connection and, after CONNECT, its client. */
export class Connection {
  clientId = '';
  version: ProtocolVersion = 4;
  /** The keep-alive in force (seconds), after AWS's clamping. */
  keepAliveSeconds = 0;
  /** CONNECT accepted and CONNACK sent. */
  connected = false;
  closed = false;
  endReason?: EndReason;
  session?: Session;
  /** What the hooks attach (the IoT identity). */
  data: unknown;
  /** The CONNECT, for the hooks. */
  connect?: IConnectPacket;
  will?: WillMessage;
  /** Client's limits (MQTT 5 CONNECT properties). */
  receiveMaximum = 65535;
  maximumPacketSize = Number.POSITIVE_INFINITY;
  requestProblemInformation = true;
  readonly aliases = new Map<number, string>();
  keepAliveTimer?: NodeJS.Timeout;
  connectTimer?: NodeJS.Timeout;
  drainTimer?: NodeJS.Timeout;
  publishRate?: Bucket;
  byteRate?: Bucket;
  readonly remoteAddress: string;
  slowReaderLogged = false;

  constructor(
    readonly socket: Duplex,
    remoteAddress: string,
  ) {
    this.remoteAddress = remoteAddress;
  }
}

export class MqttServer {
  readonly limits: MqttBrokerLimits;
  private readonly hooks: ServerHooks;
  private readonly log?: ServerLog;
  private readonly connectTimeoutMs: number;
  private readonly sessions = new Map<string, Session>();
  private readonly live = new Map<string, Connection>();
  private readonly connections = new Set<Connection>();
  private readonly index = new SubscriptionIndex<Entry>();
  private readonly groups = new Map<string, SharedGroup>();
  private readonly retained = new Map<string, Message>();
  private stopping = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(o: ServerOptions) {
    this.hooks = o.hooks;
    this.log = o.log;
    this.limits = { ...MQTT_BROKER_LIMITS, ...o.limits };
    this.connectTimeoutMs = o.connectTimeoutMs ?? 30_000;
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, this.limits.qos1RetryMs / 4));
    this.sweeper.unref();
  }

  /**
   * Drops what AWS drops while a client stays connected: QoS 1 messages unacknowledged for
   * longer than the retry period (their room in the window goes to the next ones), messages and
   * retained messages past their expiry.
   */
  private sweep(): void {
    const now = Date.now();
    for (const c of this.live.values()) {
      const s = c.session;
      if (!s) continue;
      const before = s.inflight.size;
      s.prune(now, this.limits.qos1RetryMs);
      if (s.inflight.size < before) {
        this.log?.({
          level: 'info',
          msg: `${before - s.inflight.size} QoS 1 message(s) dropped: no PUBACK within ${this.limits.qos1RetryMs / 1000} s`,
          clientId: c.clientId,
        });
        this.fill(c, s);
      }
    }
    for (const [topic, m] of this.retained)
      if (m.expiresAt !== undefined && m.expiresAt <= now) this.retained.delete(topic);
  }

  /** The connection of a connected client id. */
  connection(clientId: string): Connection | undefined {
    return this.live.get(clientId);
  }

  /** Serves MQTT on a connected stream (after TLS). */
  handle(socket: Duplex, remoteAddress: string): Connection {
    const c = new Connection(socket, remoteAddress);
    this.connections.add(c);
    const parser = createParser({ protocolVersion: 4 }) as ReturnType<typeof createParser> & {
      settings: { protocolVersion: number };
      packet: { length: number };
      _parseLength: () => boolean;
      _emitError: (e: Error) => void;
    };
    // Refuse a packet over the Maximum Packet Size as soon as its length is read, before its body.
    const parseLength = parser._parseLength.bind(parser);
    const max = this.limits.maximumPacketBytes;
    parser._parseLength = () => {
      const done = parseLength();
      if (done) {
        // The whole packet: fixed header byte, the Remaining Length field, then the rest.
        const rest = parser.packet.length;
        const size = 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
        if (size > max) {
          parser._emitError(Object.assign(new Error(`packet of ${size} bytes`), { tooLarge: true }));
          return false;
        }
      }
      return done;
    };
    parser.on('packet', (packet: Packet) => {
      if (c.closed) return;
      try {
        this.onPacket(c, packet, parser.settings);
      } catch (e) {
        this.log?.({
          level: 'error',
          msg: `MQTT packet handling failed: ${(e as Error).message}`,
          clientId: c.clientId,
        });
        this.disconnect(c, RC.UNSPECIFIED_ERROR, 'server error', 'CLIENT_ERROR');
      }
    });
    parser.on('error', (err: Error & { tooLarge?: boolean }) => {
      if (c.closed) return;
      if (err.tooLarge) {
        this.violation(
          c,
          'packet',
          `${err.message} is over AWS IoT Core's maximum packet size of ${max} bytes (payload limit 128 KB)`,
          RC.PACKET_TOO_LARGE,
          `packet larger than ${max} bytes`,
        );
        return;
      }
      if (!c.connect && /protocol version|protocolId/i.test(err.message)) {
        // A CONNECT of a protocol this broker does not speak: answered as an MQTT 3.1.1 server
        // answers one (CONNACK return code 1), which MQTT 5 clients understand too.
        this.refuse(
          c,
          'connect',
          `${err.message}: AWS IoT Core speaks MQTT 3.1.1 (level 4) and MQTT 5 (level 5)`,
        );
        this.write(c, { cmd: 'connack', returnCode: 1, sessionPresent: false });
        this.close(c, 'CLIENT_ERROR');
        return;
      }
      this.violation(c, 'packet', `malformed packet: ${err.message}`, RC.MALFORMED_PACKET, err.message);
    });
    socket.on('data', (chunk: Buffer) => {
      if (c.closed) return;
      if (c.byteRate) {
        // Over the throughput quota, AWS delays the data: stop reading until the budget refills.
        const wait = c.byteRate.take(chunk.length);
        if (wait > 0) {
          socket.pause();
          setTimeout(() => !c.closed && socket.resume(), wait).unref();
        }
      }
      parser.parse(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose(c));
    c.connectTimer = setTimeout(() => {
      if (!c.connect) this.close(c, 'CONNECTION_LOST');
    }, this.connectTimeoutMs);
    c.connectTimer.unref();
    return c;
  }

  /** A message from the service itself (lifecycle events, republish actions): routed to subscribers. */
  publish(m: Message): void {
    this.accept(m, undefined);
  }

  /** Sends `m` to one connection only, if one of its subscriptions matches (fleet provisioning answers). */
  sendTo(c: Connection, m: Message): boolean {
    if (c.closed || !c.connected || !c.session) return false;
    let best: Subscription | undefined;
    for (const sub of c.session.subscriptions.values()) {
      if (sub.share === undefined && topicMatches(sub.topicFilter, m.topic) && (!best || sub.qos > best.qos))
        best = sub;
    }
    if (!best) return false;
    this.deliver(c.session, m, best.qos, false);
    return true;
  }

  /** Ends a connection from the server side (MQTT 5: DISCONNECT with `code` first). */
  disconnect(c: Connection, code: number, reason: string, endReason: EndReason): void {
    if (c.closed) return;
    c.endReason ??= endReason;
    if (c.version === 5 && c.connect) {
      const props = c.requestProblemInformation ? { reasonString: reason } : undefined;
      this.write(c, { cmd: 'disconnect', reasonCode: code, properties: props });
    }
    this.close(c, endReason);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    for (const c of [...this.connections])
      this.disconnect(c, RC.SERVER_SHUTTING_DOWN, 'the lab is stopping', 'SERVER_INITIATED_DISCONNECT');
    for (const s of this.sessions.values()) if (s.expiryTimer) clearTimeout(s.expiryTimer);
    this.sessions.clear();
    await Promise.resolve();
  }

  // --- packets ---------------------------------------------------------------------------------

  private onPacket(c: Connection, packet: Packet, settings: { protocolVersion: number }): void {
    this.touch(c);
    if (packet.cmd === 'connect') {
      settings.protocolVersion = packet.protocolVersion ?? 4;
      this.onConnect(c, packet);
      return;
    }
    if (!c.connected) {
      // MQTT: the first packet must be CONNECT.
      this.refuse(c, 'packet', `${packet.cmd.toUpperCase()} before CONNECT`);
      this.close(c, 'CLIENT_ERROR');
      return;
    }
    switch (packet.cmd) {
      case 'publish':
        return this.onPublish(c, packet);
      case 'puback':
        return this.onPuback(c, packet.messageId ?? 0);
      case 'subscribe':
        return this.onSubscribe(c, packet);
      case 'unsubscribe':
        return this.onUnsubscribe(c, packet);
      case 'pingreq':
        this.write(c, { cmd: 'pingresp' });
        return;
      case 'disconnect':
        return this.onClientDisconnect(c, packet);
      default:
        // PUBREC, PUBREL, PUBCOMP (QoS 2) and AUTH are not supported by AWS IoT Core.
        this.violation(
          c,
          'packet',
          `${packet.cmd.toUpperCase()} is not supported by AWS IoT Core (QoS 2 and AUTH are not)`,
          RC.PROTOCOL_ERROR,
          `${packet.cmd.toUpperCase()} is not supported`,
        );
    }
  }

  private onConnect(c: Connection, p: IConnectPacket): void {
    if (c.connect) {
      this.violation(
        c,
        'connect',
        'a second CONNECT on the same connection',
        RC.PROTOCOL_ERROR,
        'second CONNECT',
      );
      return;
    }
    c.connect = p;
    if (c.connectTimer) clearTimeout(c.connectTimer);
    const version = p.protocolVersion;
    if (version !== 4 && version !== 5) {
      // MQTT 3.1 (protocol level 3): AWS IoT Core serves 3.1.1 and 5 only.
      this.refuse(c, 'connect', `MQTT protocol level ${version} is not supported: use MQTT 3.1.1 (4) or 5`);
      this.write(c, { cmd: 'connack', returnCode: 1, sessionPresent: false });
      this.close(c, 'CLIENT_ERROR');
      return;
    }
    c.version = version;
    const props = p.properties ?? {};
    if (version === 5) {
      c.receiveMaximum = props.receiveMaximum ?? 65535;
      c.maximumPacketSize = props.maximumPacketSize ?? Number.POSITIVE_INFINITY;
      c.requestProblemInformation = props.requestProblemInformation !== false;
    }
    const refusal = this.connectRefusal(c, p);
    if (refusal) {
      this.refuse(c, 'connect', refusal.reason, { code: refusal.code });
      return this.refuseConnect(c, refusal);
    }
    const assigned = p.clientId === '' ? `$lab-${Math.random().toString(36).slice(2, 14)}` : undefined;
    c.clientId = assigned ?? p.clientId;
    c.keepAliveSeconds = effectiveKeepAlive(p.keepalive ?? 0, this.limits);
    if (p.will) {
      c.will = this.willMessage(c, p);
    }
    const denied = this.hooks.authenticate(c, p);
    if (denied) return this.refuseConnect(c, denied);
    if (c.will) {
      // AWS checks the Will topic at CONNECT: a client that may not publish it cannot connect.
      const willDenied = this.hooks.authorizePublish(c, c.will.message);
      if (willDenied) {
        const reason = `Last Will: ${willDenied.reason}`;
        this.refuse(c, 'connect', reason, { code: RC.NOT_AUTHORIZED });
        return this.refuseConnect(c, { code: RC.NOT_AUTHORIZED, reason });
      }
    }
    this.accepted(c, p, assigned);
  }

  /** Protocol-level reasons to refuse a CONNECT (before identity). */
  private connectRefusal(c: Connection, p: IConnectPacket): Denial | undefined {
    const props = p.properties ?? {};
    if (props.receiveMaximum === 0)
      return {
        code: RC.PROTOCOL_ERROR,
        reason: 'Receive Maximum 0 is a protocol error (MQTT 5.0, 3.1.2.11.3)',
      };
    if (props.authenticationMethod !== undefined)
      return {
        code: RC.BAD_AUTHENTICATION_METHOD,
        reason: 'enhanced authentication (AUTH) is not supported by AWS IoT Core',
      };
    const idBytes = Buffer.byteLength(p.clientId, 'utf8');
    if (idBytes > this.limits.clientIdMaxBytes)
      return {
        code: RC.CLIENT_IDENTIFIER_NOT_VALID,
        reason: `client id is ${idBytes} bytes, over AWS IoT Core's ${this.limits.clientIdMaxBytes}-byte limit`,
      };
    if (p.clientId.startsWith('$'))
      return {
        code: RC.CLIENT_IDENTIFIER_NOT_VALID,
        reason: 'client ids starting with $ are reserved for AWS IoT',
      };
    if (p.clientId === '' && c.version === 4 && p.clean === false)
      return { code: RC.CLIENT_IDENTIFIER_NOT_VALID, reason: 'an empty client id needs a clean session' };
    if (p.will) {
      if ((p.will.qos ?? 0) > this.limits.maximumQos)
        return {
          code: RC.QOS_NOT_SUPPORTED,
          reason: 'Will QoS 2 is not supported by AWS IoT Core (QoS 0 and 1 are)',
        };
      const t = this.topicProblem(p.will.topic, 'topic');
      if (t) return { code: RC.TOPIC_NAME_INVALID, reason: `Last Will ${t}` };
    }
    return undefined;
  }

  private refuseConnect(c: Connection, d: Denial): void {
    if (c.version === 5) {
      const properties = c.requestProblemInformation ? { reasonString: d.reason } : undefined;
      this.write(c, { cmd: 'connack', reasonCode: d.code, sessionPresent: false, properties });
    } else if (d.code === RC.QOS_NOT_SUPPORTED) {
      // Observed on AWS IoT Core: a Will with QoS 2 gets no CONNACK, the connection is closed.
    } else {
      this.write(c, { cmd: 'connack', returnCode: connackReturnCode311(d.code), sessionPresent: false });
    }
    this.close(c, d.endReason ?? 'AUTH_ERROR');
  }

  private willMessage(c: Connection, p: IConnectPacket): WillMessage {
    const w = p.will!;
    const props = w.properties ?? {};
    return {
      message: {
        topic: w.topic,
        payload: Buffer.isBuffer(w.payload) ? w.payload : Buffer.from(w.payload ?? ''),
        qos: Math.min(1, w.qos ?? 0) as 0 | 1,
        retain: w.retain === true,
        properties: this.applicationProperties(props),
        from: c.clientId,
      },
      // The expiry of a Will message starts when it is published.
      expirySeconds:
        props.messageExpiryInterval !== undefined
          ? this.messageExpiry(props.messageExpiryInterval)
          : undefined,
    };
  }

  private accepted(c: Connection, p: IConnectPacket, assigned: string | undefined): void {
    const props = p.properties ?? {};
    // Session expiry: MQTT 3.1.1 persistent sessions use the account's expiry; MQTT 5 asks for one.
    let expiry: number;
    let adjusted = false;
    if (c.version === 4) expiry = p.clean === false ? this.limits.sessionExpiryDefaultSeconds : 0;
    else {
      expiry = props.sessionExpiryInterval ?? 0;
      if (expiry > this.limits.sessionExpiryDefaultSeconds) {
        expiry = this.limits.sessionExpiryDefaultSeconds;
        adjusted = true;
      }
    }
    const cleanStart = p.clean !== false;
    // A second connection with the same client id takes over.
    const previous = this.live.get(c.clientId);
    if (previous && previous !== c) {
      this.log?.({ level: 'info', msg: 'client id taken over by a new connection', clientId: c.clientId });
      this.disconnect(
        previous,
        RC.SESSION_TAKEN_OVER,
        'another connection with the same client id connected',
        'DUPLICATE_CLIENTID',
      );
    }
    let session = this.sessions.get(c.clientId);
    // "Cross MQTT version (MQTT 3 and MQTT 5) persistent sessions are not supported" (AWS IoT
    // Developer Guide, "MQTT persistent sessions").
    const resumable = session !== undefined && !cleanStart && session.version === c.version;
    if (session && !resumable) this.endSession(session);
    if (!resumable) {
      session = new Session(c.clientId, c.version, expiry);
      this.sessions.set(c.clientId, session);
    } else {
      session = session!;
      if (session.expiryTimer) clearTimeout(session.expiryTimer);
      session.expiryTimer = undefined;
      session.expirySeconds = expiry;
    }
    c.session = session;
    c.connected = true;
    this.live.set(c.clientId, c);
    c.publishRate = new Bucket(this.limits.publishesPerSecondPerConnection);
    c.byteRate = new Bucket(this.limits.bytesPerSecondPerConnection);
    if (c.version === 5) {
      const properties: Record<string, unknown> = {
        receiveMaximum: this.limits.inflightPerConnection,
        maximumQoS: this.limits.maximumQos,
        retainAvailable: true,
        maximumPacketSize: this.limits.maximumPacketBytes,
        topicAliasMaximum: this.limits.topicAliasMaximum,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: true,
      };
      if (assigned) properties.assignedClientIdentifier = assigned;
      if (adjusted) properties.sessionExpiryInterval = expiry;
      if (c.keepAliveSeconds !== (p.keepalive ?? 0)) properties.serverKeepAlive = c.keepAliveSeconds;
      this.write(c, { cmd: 'connack', reasonCode: RC.SUCCESS, sessionPresent: resumable, properties });
    } else {
      this.write(c, { cmd: 'connack', returnCode: 0, sessionPresent: resumable });
    }
    this.touch(c);
    this.hooks.onConnected(c);
    if (resumable) this.resume(c, session);
  }

  /**
   * A resumed session: unacknowledged messages again (new packet identifiers, DUP 0: AWS IoT Core
   * does not support the DUP flag), then the stored ones at AWS's pace.
   */
  private resume(c: Connection, s: Session): void {
    const now = Date.now();
    s.prune(now, this.limits.qos1RetryMs);
    const unacked = [...s.inflight.values()].map((f) => f.message);
    s.inflight.clear();
    s.pending.unshift(...unacked);
    const every = Math.ceil(1000 / this.limits.queuedDeliveriesPerSecond);
    const tick = (): void => {
      c.drainTimer = undefined;
      if (c.closed || s.pending.length === 0) return;
      if (s.inflight.size < this.window(c)) {
        const m = s.pending.shift()!;
        this.sendNow(c, s, m, 1, m.retain);
      }
      if (s.pending.length > 0) c.drainTimer = setTimeout(tick, every);
    };
    tick();
  }

  private onPublish(c: Connection, p: IPublishPacket): void {
    const s = c.session!;
    if (p.qos > this.limits.maximumQos) {
      return this.violation(
        c,
        'publish',
        `QoS ${p.qos} PUBLISH to ${p.topic}: AWS IoT Core supports QoS 0 and 1 only`,
        RC.QOS_NOT_SUPPORTED,
        'QoS 2 is not supported',
      );
    }
    const props = p.properties ?? {};
    if (props.subscriptionIdentifier !== undefined) {
      return this.violation(
        c,
        'publish',
        'a client PUBLISH carries a Subscription Identifier',
        RC.PROTOCOL_ERROR,
        'Subscription Identifier in a client PUBLISH',
      );
    }
    // Topic alias (MQTT 5): set or use one of at most topicAliasMaximum.
    let topic = p.topic;
    if (props.topicAlias !== undefined) {
      const alias = props.topicAlias;
      if (alias < 1 || alias > this.limits.topicAliasMaximum) {
        return this.violation(
          c,
          'publish',
          `topic alias ${alias} is outside 1..${this.limits.topicAliasMaximum}`,
          RC.TOPIC_ALIAS_INVALID,
          `topic alias ${alias} over the maximum ${this.limits.topicAliasMaximum}`,
        );
      }
      if (topic === '') {
        const known = c.aliases.get(alias);
        if (known === undefined) {
          return this.violation(
            c,
            'publish',
            `topic alias ${alias} was never set on this connection`,
            RC.PROTOCOL_ERROR,
            `unknown topic alias ${alias}`,
          );
        }
        topic = known;
      } else c.aliases.set(alias, topic);
    }
    const problem = this.topicProblem(topic, 'topic');
    if (problem)
      return this.refusePublish(c, p, {
        code: RC.TOPIC_NAME_INVALID,
        reason: problem,
        endReason: 'CLIENT_ERROR',
      });
    const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload ?? '');
    if (props.payloadFormatIndicator === true && !isUtf8(payload))
      return this.refusePublish(c, p, {
        code: RC.PAYLOAD_FORMAT_INVALID,
        reason: 'Payload Format Indicator says UTF-8, but the payload is not valid UTF-8',
        endReason: 'CLIENT_ERROR',
      });
    if (!c.publishRate!.tryTake()) {
      // Over 100 publishes per second per connection, AWS discards the publish.
      this.refuse(
        c,
        'publish',
        `over AWS IoT Core's ${this.limits.publishesPerSecondPerConnection} publishes per second per connection: discarded`,
        {
          topic,
          code: RC.QUOTA_EXCEEDED,
        },
      );
      if (p.qos === 1)
        this.ack(
          c,
          p.messageId!,
          c.version === 5 ? RC.QUOTA_EXCEEDED : RC.SUCCESS,
          'publish rate quota exceeded',
        );
      return;
    }
    const m: Message = {
      topic,
      payload,
      qos: p.qos as 0 | 1,
      retain: p.retain,
      properties: this.applicationProperties(props),
      from: s.clientId,
    };
    if (props.messageExpiryInterval !== undefined)
      m.expiresAt = Date.now() + this.messageExpiry(props.messageExpiryInterval) * 1000;
    const denied = this.hooks.authorizePublish(c, m);
    if (denied) return this.refusePublish(c, p, denied);
    if (p.qos === 1) this.ack(c, p.messageId!, RC.SUCCESS);
    this.accept(m, c);
  }

  /** A PUBLISH refused: PUBACK reason code on MQTT 5 (dropped at QoS 0), disconnect on 3.1.1. */
  private refusePublish(c: Connection, p: IPublishPacket, d: Denial): void {
    // Hook denials are logged by the hook; the server's own are logged here.
    if (d.endReason === 'CLIENT_ERROR') this.refuse(c, 'publish', d.reason, { topic: p.topic, code: d.code });
    if (c.version === 5 && !d.disconnect) {
      if (p.qos === 1) this.ack(c, p.messageId!, d.code, d.reason);
      return;
    }
    this.disconnect(c, d.code, d.reason, d.endReason ?? 'AUTH_ERROR');
  }

  private ack(c: Connection, messageId: number, code: number, reason?: string): void {
    if (c.version === 5) {
      const properties =
        code !== RC.SUCCESS && reason && c.requestProblemInformation ? { reasonString: reason } : undefined;
      this.write(c, { cmd: 'puback', messageId, reasonCode: code, properties });
    } else this.write(c, { cmd: 'puback', messageId });
  }

  private onPuback(c: Connection, messageId: number): void {
    const s = c.session!;
    if (!s.inflight.delete(messageId)) return;
    this.fill(c, s);
  }

  private onSubscribe(c: Connection, p: ISubscribePacket): void {
    const s = c.session!;
    if (p.properties?.subscriptionIdentifier !== undefined) {
      return this.violation(
        c,
        'subscribe',
        'Subscription Identifiers are not supported by AWS IoT Core',
        RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        'Subscription Identifiers are not supported',
      );
    }
    if (p.subscriptions.some((sub) => sub.qos > this.limits.maximumQos)) {
      const filters = p.subscriptions
        .filter((sub) => sub.qos > this.limits.maximumQos)
        .map((sub) => sub.topic);
      // AWS sends no SUBACK for QoS 2 and ends the connection.
      return this.violation(
        c,
        'subscribe',
        `QoS 2 SUBSCRIBE to ${filters.join(', ')}: AWS IoT Core supports QoS 0 and 1 only`,
        RC.QOS_NOT_SUPPORTED,
        'QoS 2 is not supported',
      );
    }
    const sharedNoLocal = p.subscriptions.find((sub) => sub.nl && sub.topic.startsWith('$share/'));
    if (sharedNoLocal)
      return this.violation(
        c,
        'subscribe',
        `No Local on the shared subscription ${sharedNoLocal.topic} is a protocol error (MQTT 5.0, 3.8.3.1)`,
        RC.PROTOCOL_ERROR,
        'No Local on a shared subscription',
      );
    const codes: number[] = [];
    const tooMany = p.subscriptions.length > this.limits.subscriptionsPerSubscribe;
    let closeAfter = false;
    // Retain Handling 1 sends retained messages only for a subscription that did not exist.
    const existed = p.subscriptions.map((req) => s.subscriptions.has(req.topic));
    for (const req of p.subscriptions) {
      const code = tooMany
        ? this.subscribeRefusal(
            c,
            req.topic,
            `${p.subscriptions.length} filters in one SUBSCRIBE, over AWS IoT Core's ${this.limits.subscriptionsPerSubscribe}: subscribe in smaller batches`,
            RC.QUOTA_EXCEEDED,
          )
        : this.subscribeOne(c, s, req);
      if (code === 'close') {
        closeAfter = true;
        codes.push(RC.QUOTA_EXCEEDED);
      } else codes.push(code);
    }
    if (closeAfter && c.version === 4) {
      // Beyond the subscriptions per connection quota "the connection is closed".
      this.close(c, 'CLIENT_ERROR');
      return;
    }
    const granted = c.version === 5 ? codes : codes.map((code) => (code > 1 ? SUBACK_FAILURE_311 : code));
    this.write(c, { cmd: 'suback', messageId: p.messageId, granted });
    // Retained messages after the SUBACK.
    for (let i = 0; i < p.subscriptions.length; i++) {
      const rh = p.subscriptions[i].rh ?? 0;
      if (codes[i] > 1 || rh === 2 || (rh === 1 && existed[i])) continue;
      this.sendRetained(s, p.subscriptions[i].topic, codes[i] as 0 | 1);
    }
  }

  private subscribeRefusal(c: Connection, filter: string, reason: string, code: number): number {
    this.refuse(c, 'subscribe', reason, { filter, code });
    return code;
  }

  /** One filter of a SUBSCRIBE: its granted QoS, a reason code, or 'close' (quota on 3.1.1). */
  private subscribeOne(
    c: Connection,
    s: Session,
    req: { topic: string; qos: number; nl?: boolean; rap?: boolean },
  ): number | 'close' {
    const parsed = parseShared(req.topic, this.limits.shareNameMaxLength);
    if ('problem' in parsed)
      return this.subscribeRefusal(c, req.topic, parsed.problem, RC.TOPIC_FILTER_INVALID);
    try {
      validateTopicFilter(parsed.topicFilter);
    } catch (e) {
      return this.subscribeRefusal(c, req.topic, (e as Error).message, RC.TOPIC_FILTER_INVALID);
    }
    const problem = this.topicProblem(req.topic, 'topic filter');
    if (problem) return this.subscribeRefusal(c, req.topic, problem, RC.TOPIC_FILTER_INVALID);
    const exists = s.subscriptions.has(req.topic);
    if (!exists && s.subscriptions.size >= this.limits.subscriptionsPerConnection) {
      this.refuse(
        c,
        'subscribe',
        `over AWS IoT Core's ${this.limits.subscriptionsPerConnection} subscriptions per connection: unsubscribe first`,
        {
          filter: req.topic,
          code: RC.QUOTA_EXCEEDED,
        },
      );
      return c.version === 4 ? 'close' : RC.QUOTA_EXCEEDED;
    }
    const denied = this.hooks.authorizeSubscribe(c, req.topic);
    if (denied) return denied.code;
    const sub: Subscription = {
      filter: req.topic,
      topicFilter: parsed.topicFilter,
      share: parsed.share,
      qos: Math.min(req.qos, 1) as 0 | 1,
      noLocal: req.nl === true,
      retainAsPublished: req.rap === true,
    };
    this.addSubscription(s, sub);
    return sub.qos;
  }

  private addSubscription(s: Session, sub: Subscription): void {
    s.subscriptions.set(sub.filter, sub);
    if (sub.share === undefined) {
      this.index.set(sub.topicFilter, s.clientId, { kind: 'client', sub });
      return;
    }
    const key = `${sub.share}/${sub.topicFilter}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { key, topicFilter: sub.topicFilter, members: new Map() };
      this.groups.set(key, group);
      this.index.set(sub.topicFilter, `\u0000share:${sub.share}`, { kind: 'shared', group });
    }
    group.members.set(s.clientId, sub);
  }

  private removeSubscription(s: Session, filter: string): boolean {
    const sub = s.subscriptions.get(filter);
    if (!sub) return false;
    s.subscriptions.delete(filter);
    if (sub.share === undefined) {
      this.index.delete(sub.topicFilter, s.clientId);
      return true;
    }
    const key = `${sub.share}/${sub.topicFilter}`;
    const group = this.groups.get(key);
    if (group) {
      group.members.delete(s.clientId);
      if (group.members.size === 0) {
        this.groups.delete(key);
        this.index.delete(sub.topicFilter, `\u0000share:${sub.share}`);
      }
    }
    return true;
  }

  /**
   * Retained messages for a new subscription. AWS IoT Core sends them only when the filter is
   * the retained message's exact topic (no wildcards), and never to a shared subscription.
   */
  private sendRetained(s: Session, filter: string, qos: 0 | 1): void {
    if (filter.startsWith('$share/') || /[+#]/.test(filter)) return;
    const m = this.retained.get(filter);
    if (!m) return;
    if (m.expiresAt !== undefined && m.expiresAt <= Date.now()) {
      this.retained.delete(filter);
      return;
    }
    this.deliver(s, m, qos, true);
  }

  private onUnsubscribe(c: Connection, p: IUnsubscribePacket): void {
    const s = c.session!;
    const codes = p.unsubscriptions.map((filter) =>
      this.removeSubscription(s, filter) ? RC.SUCCESS : RC.NO_SUBSCRIPTION_EXISTED,
    );
    if (c.version === 5) this.write(c, { cmd: 'unsuback', messageId: p.messageId, granted: codes });
    else this.write(c, { cmd: 'unsuback', messageId: p.messageId, granted: [] });
  }

  private onClientDisconnect(c: Connection, p: IDisconnectPacket): void {
    const s = c.session!;
    const next = p.properties?.sessionExpiryInterval;
    if (next !== undefined) {
      if (s.expirySeconds === 0 && next > 0) {
        return this.violation(
          c,
          'packet',
          'DISCONNECT sets a Session Expiry Interval on a session that had 0',
          RC.PROTOCOL_ERROR,
          'Session Expiry Interval cannot be raised from 0',
        );
      }
      s.expirySeconds = Math.min(next, this.limits.sessionExpiryDefaultSeconds);
    }
    // DISCONNECT with reason 0x04 asks for the Will to be published.
    if ((p.reasonCode ?? 0) !== RC.DISCONNECT_WITH_WILL) c.will = undefined;
    this.close(c, 'CLIENT_INITIATED_DISCONNECT');
  }

  // --- routing ---------------------------------------------------------------------------------

  /** An accepted message: retained store, subscribers, and the service (rules, provisioning). */
  private accept(m: Message, from: Connection | undefined): void {
    const consumed = this.hooks.isServiceConsumed(m.topic);
    if (consumed) m.retain = false;
    if (m.retain) {
      if (m.payload.length === 0) this.retained.delete(m.topic);
      else this.retained.set(m.topic, m);
    }
    if (!consumed) this.route(m);
    this.hooks.onMessage(m, from);
  }

  private route(m: Message): void {
    const targets = new Map<string, Subscription>();
    const groups: SharedGroup[] = [];
    this.index.match(m.topic, (entry, key) => {
      if (entry.kind === 'shared') groups.push(entry.group);
      else {
        const prev = targets.get(key);
        if (!prev || entry.sub.qos > prev.qos) targets.set(key, entry.sub);
      }
    });
    for (const [clientId, sub] of targets) {
      if (sub.noLocal && m.from === clientId) continue;
      const s = this.sessions.get(clientId);
      if (s) this.deliver(s, m, sub.qos, sub.retainAsPublished && m.retain);
    }
    for (const g of groups) this.deliverShared(g, m);
  }

  /** A shared subscription group: one member, chosen at random among those online and allowed. */
  private deliverShared(g: SharedGroup, m: Message): void {
    const online: Array<[Connection, Subscription]> = [];
    let offline: Array<[Session, Subscription]> = [];
    for (const [clientId, sub] of g.members) {
      const c = this.live.get(clientId);
      if (c && !c.closed && this.hooks.mayReceive(c, m)) online.push([c, sub]);
      else if (!c) {
        const s = this.sessions.get(clientId);
        if (s?.persistent) offline.push([s, sub]);
      }
    }
    if (online.length > 0) {
      const [c, sub] = online[Math.floor(Math.random() * online.length)];
      this.deliver(c.session!, m, sub.qos, false);
      return;
    }
    // Nobody online: QoS 1 is queued when a member has a persistent session; QoS 0 is dropped.
    offline = offline.filter(([, sub]) => Math.min(sub.qos, m.qos) === 1);
    if (offline.length > 0) {
      const [s] = offline[Math.floor(Math.random() * offline.length)];
      this.queue(s, m);
    }
  }

  /** Sends to a session's connection, or keeps a QoS 1 message for a persistent session. */
  private deliver(s: Session, m: Message, subQos: 0 | 1, retainFlag: boolean): void {
    const qos = Math.min(subQos, m.qos) as 0 | 1;
    const c = this.live.get(s.clientId);
    if (!c || c.closed || !c.connected || c.session !== s) {
      if (qos === 1 && s.persistent) this.queue(s, { ...m, retain: retainFlag });
      return;
    }
    if (qos === 1 && (s.inflight.size >= this.window(c) || s.pending.length > 0)) {
      this.queue(s, { ...m, retain: retainFlag });
      return;
    }
    this.sendNow(c, s, m, qos, retainFlag);
  }

  private queue(s: Session, m: Message): void {
    s.pending.push({ ...m, qos: 1 });
  }

  /** The client's in-flight window: its Receive Maximum, at most AWS's 100. */
  private window(c: Connection): number {
    return Math.min(c.receiveMaximum, this.limits.inflightPerConnection);
  }

  /** Sends what the window allows from the session's queue. */
  private fill(c: Connection, s: Session): void {
    if (c.drainTimer) return; // a resumed session is paced by its own timer
    while (s.pending.length > 0 && s.inflight.size < this.window(c)) {
      const m = s.pending.shift()!;
      this.sendNow(c, s, m, 1, m.retain);
    }
  }

  private sendNow(c: Connection, s: Session, m: Message, qos: 0 | 1, retainFlag: boolean): void {
    const now = Date.now();
    if (m.expiresAt !== undefined && m.expiresAt <= now) return;
    if (!this.hooks.mayReceive(c, m)) return;
    if (qos === 0 && c.socket.writableLength > OUTBOUND_BUFFER_BYTES) {
      // A subscriber that does not read: QoS 0 is dropped rather than buffered without bound
      // (QoS 1 is bounded by the in-flight window).
      if (!c.slowReaderLogged) {
        c.slowReaderLogged = true;
        this.log?.({
          level: 'warn',
          msg: `QoS 0 messages dropped: the client reads slower than it is sent to (over ${OUTBOUND_BUFFER_BYTES} bytes waiting)`,
          clientId: c.clientId,
        });
      }
      return;
    }
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: m.topic,
      payload: m.payload,
      qos,
      retain: retainFlag,
      dup: false,
    };
    if (qos === 1) packet.messageId = s.packetId();
    if (c.version === 5) {
      const properties: NonNullable<IPublishPacket['properties']> = { ...m.properties };
      // The remaining interval; 999 ms or less left is sent as 0.
      if (m.expiresAt !== undefined)
        properties.messageExpiryInterval = Math.floor((m.expiresAt - now) / 1000);
      if (Object.keys(properties).length > 0) packet.properties = properties;
    }
    const bytes = this.encode(c, packet);
    if (!bytes) return;
    if (bytes.length > c.maximumPacketSize) {
      // MQTT 5: a message larger than the client's Maximum Packet Size is dropped for it.
      this.log?.({
        level: 'info',
        msg: `message to ${m.topic} dropped: larger than the client's Maximum Packet Size`,
        clientId: c.clientId,
      });
      return;
    }
    if (qos === 1) s.inflight.set(packet.messageId!, { message: m, sentAt: now });
    c.socket.write(bytes);
  }

  // --- connection lifecycle --------------------------------------------------------------------

  private touch(c: Connection): void {
    if (c.keepAliveTimer) clearTimeout(c.keepAliveTimer);
    if (!c.connected || c.keepAliveSeconds === 0) return;
    c.keepAliveTimer = setTimeout(() => {
      this.log?.({
        level: 'info',
        msg: `keep-alive timeout: nothing received for 1.5 x ${c.keepAliveSeconds} s`,
        clientId: c.clientId,
      });
      this.disconnect(c, RC.KEEP_ALIVE_TIMEOUT, 'keep-alive timeout', 'MQTT_KEEP_ALIVE_TIMEOUT');
    }, c.keepAliveSeconds * 1500);
    c.keepAliveTimer.unref();
  }

  /** Closes the network connection; `onClose` does the rest. */
  private close(c: Connection, endReason: EndReason): void {
    if (c.closed) return;
    c.endReason ??= endReason;
    c.socket.end();
    // A peer that does not close its side is cut off.
    setTimeout(() => c.socket.destroy(), 1000).unref();
    this.onClose(c);
  }

  private onClose(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    c.endReason ??= 'CONNECTION_LOST';
    this.connections.delete(c);
    for (const t of [c.keepAliveTimer, c.connectTimer, c.drainTimer]) if (t) clearTimeout(t);
    if (!c.connected) return;
    const s = c.session!;
    if (this.live.get(c.clientId) === c) this.live.delete(c.clientId);
    // A client's DISCONNECT has already dropped its Will, unless it asked for it (reason 0x04).
    if (c.will && !this.stopping) {
      const { message, expirySeconds } = c.will;
      this.accept(
        {
          ...message,
          expiresAt: expirySeconds !== undefined ? Date.now() + expirySeconds * 1000 : undefined,
        },
        c,
      );
    }
    if (this.sessions.get(s.clientId) === s) {
      if (!s.persistent || this.stopping) this.endSession(s);
      else {
        s.expiryTimer = setTimeout(() => this.endSession(s), s.expirySeconds * 1000);
        s.expiryTimer.unref();
      }
    }
    this.hooks.onDisconnected(c);
  }

  private endSession(s: Session): void {
    if (s.expiryTimer) clearTimeout(s.expiryTimer);
    for (const filter of [...s.subscriptions.keys()]) this.removeSubscription(s, filter);
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
  }

  // --- helpers ---------------------------------------------------------------------------------

  private topicProblem(topic: string, what: 'topic' | 'topic filter'): string | undefined {
    if (topic === '') return `empty ${what}`;
    if (what === 'topic' && /[+#]/.test(topic))
      return `topic ${topic} contains a wildcard: a PUBLISH topic cannot`;
    if (topic.includes('\u0000')) return `${what} contains a NUL character`;
    return topicLimitProblem(topic, what, this.limits);
  }

  private messageExpiry(seconds: number): number {
    return Math.min(
      Math.max(seconds, this.limits.messageExpiryMinSeconds),
      this.limits.messageExpiryMaxSeconds,
    );
  }

  private applicationProperties(props: Record<string, unknown>): PublishProperties | undefined {
    const out: PublishProperties = {};
    if (props.payloadFormatIndicator !== undefined)
      out.payloadFormatIndicator = props.payloadFormatIndicator as boolean;
    if (props.contentType !== undefined) out.contentType = props.contentType as string;
    if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic as string;
    if (props.correlationData !== undefined) out.correlationData = props.correlationData as Buffer;
    if (props.userProperties !== undefined)
      out.userProperties = props.userProperties as PublishProperties['userProperties'];
    return Object.keys(out).length > 0 ? out : undefined;
  }

  private encode(c: Connection, packet: Packet): Buffer | undefined {
    try {
      return generate(packet, { protocolVersion: c.version });
    } catch (e) {
      this.log?.({
        level: 'error',
        msg: `cannot encode ${packet.cmd}: ${(e as Error).message}`,
        clientId: c.clientId,
      });
      return undefined;
    }
  }

  private write(c: Connection, packet: Packet): void {
    if (c.closed) return;
    const bytes = this.encode(c, packet);
    if (bytes) c.socket.write(bytes);
  }

  /** A protocol violation or a limit that ends the connection: logged with its code, then DISCONNECT. */
  private violation(
    c: Connection,
    what: 'connect' | 'publish' | 'subscribe' | 'packet',
    reason: string,
    code: number,
    short: string,
  ): void {
    this.refuse(c, what, reason, { code });
    this.disconnect(c, code, short, 'CLIENT_ERROR');
  }

  /** Logs a refusal made by the server itself (limits and protocol rules). */
  private refuse(
    c: Connection,
    what: 'connect' | 'publish' | 'subscribe' | 'packet',
    reason: string,
    extra: Record<string, unknown> = {},
  ): void {
    const code = extra.code as number | undefined;
    this.log?.({
      level: 'warn',
      msg: `${what} refused: ${reason}${code !== undefined && c.version === 5 ? ` (${describeReasonCode(code)})` : ''}`,
      clientId: c.clientId || c.connect?.clientId,
      mqtt: c.version === 5 ? '5' : '3.1.1',
      remote: c.remoteAddress,
      ...extra,
    });
  }
}

/** `$share/<name>/<filter>` → its parts; a plain filter → itself. */
function parseShared(
  filter: string,
  maxNameLength: number,
): { topicFilter: string; share?: string } | { problem: string } {
  if (!filter.startsWith('$share/')) return { topicFilter: filter };
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return { problem: `shared subscription ${filter} needs $share/<name>/<topic filter>` };
  const share = rest.slice(0, slash);
  const topicFilter = rest.slice(slash + 1);
  if (/[+#]/.test(share)) return { problem: `share name ${share} cannot contain + or #` };
  if ([...share].length > maxNameLength) return { problem: `share name is over ${maxNameLength} characters` };
  if (topicFilter === '') return { problem: `shared subscription ${filter} has no topic filter` };
  return { topicFilter, share };
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}
