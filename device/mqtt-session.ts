/**
 * One MQTT session over mutual TLS (mqtt.js), on MQTT 3.1.1 or MQTT 5, with the request/response
 * helper the AWS IoT device APIs need: subscribe to `<topic>/accepted` and `<topic>/rejected`
 * first, then publish, then wait for exactly one answer, a connection loss or a timeout.
 *
 * Both versions take the same path; what MQTT 5 adds is read where it arrives: the CONNACK, SUBACK
 * and PUBACK reason codes and a server-sent DISCONNECT with its reason code and reason string
 * become {@link TransportError}s that name the code (`0x87 Not authorized`), and a PUBLISH larger
 * than the server's Maximum Packet Size is refused here instead of being sent.
 *
 * Sessions are clean on both versions: 3.1.1 clean session; MQTT 5 clean start with no session
 * expiry interval (0), so the broker keeps nothing once the connection ends. No device of the
 * simulator resumes a session: every connect subscribes again.
 *
 * No automatic reconnect: the caller owns retry policy (a new session per attempt).
 */
import { connect, type IClientOptions, type IDisconnectPacket, type MqttClient, type Packet } from 'mqtt';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  connackRefused,
  connackTimeout,
  describeClosedBeforeConnack,
  describeConnectError,
  describeServerDisconnect,
} from './connect-failure';
import {
  DEFAULT_MQTT_VERSION,
  describeReasonCode,
  isRefusal,
  protocolLevel,
  publishPacketBytes,
  type MqttVersion,
} from './mqtt-protocol';

export type { MqttVersion } from './mqtt-protocol';

/** Where the broker is. For AWS IoT: the ATS data endpoint, port 8883, Amazon Root CA. */
export interface Endpoint {
  host: string;
  /** @default 8883 */
  port?: number;
  /** PEM of the CA(s) that signed the server certificate. */
  caPem: string | string[];
  /** TLS SNI / certificate name check. @default host, unless host is an IP address */
  servername?: string;
}

/** A client certificate and its private key (PEM). */
export interface TlsCredentials {
  certPem: string;
  keyPem: string;
}

/** MQTT last will: published by the broker if the session drops without DISCONNECT. */
export interface LastWill {
  topic: string;
  payload: string;
  qos?: 0 | 1;
}

export interface SessionOptions {
  endpoint: Endpoint;
  credentials: TlsCredentials;
  clientId: string;
  /** Overall budget for TLS + CONNACK. A TLS-refused connection only emits `close`. */
  connectTimeoutMs: number;
  keepaliveSec?: number;
  will?: LastWill;
  /** MQTT protocol version. @default '3.1.1' */
  mqttVersion?: MqttVersion;
}

export type TransportFailure =
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_FAILED'
  | 'CONNECTION_LOST'
  | 'RESPONSE_TIMEOUT'
  | 'SUBSCRIBE_REFUSED'
  | 'PUBLISH_FAILED'
  | 'PUBLISH_REFUSED'
  | 'TLS_SETUP';

/**
 * A failure of the connection itself. Retryable unless `SUBSCRIBE_REFUSED` or `PUBLISH_REFUSED`
 * (the broker answered with a refusal; retried only when its reason code is transient, such as
 * `0x97 Quota exceeded`), or `TLS_SETUP` (the device's own certificate, key or CA could not be
 * loaded, so no connection was even attempted).
 */
export class TransportError extends Error {
  /**
   * Short and groupable: the same for every device that failed the same way, e.g.
   * `ECONNREFUSED 127.0.0.1:8883`, `TLS: certificate unknown`, `CONNACK refused: 0x87 Not authorized`,
   * `timeout waiting for $aws/certificates/create-from-csr/json/accepted`. Defaults to `message`.
   */
  readonly reason: string;

  constructor(
    readonly failure: TransportFailure,
    message: string,
    reason?: string,
    /** The broker's code when it refused (CONNACK, SUBACK, PUBACK or DISCONNECT). */
    readonly reasonCode?: number,
  ) {
    super(`${failure}: ${message}`);
    this.name = 'TransportError';
    this.reason = reason ?? message;
  }
}

/** A response on a `/rejected` topic: `{ statusCode, errorCode, errorMessage }`. */
export class RejectedError extends Error {
  constructor(
    readonly api: string,
    readonly statusCode: number | undefined,
    readonly errorCode: string,
    readonly errorMessage: string,
  ) {
    super(`${api} rejected: ${statusCode ?? '?'} ${errorCode} ${errorMessage}`);
    this.name = 'RejectedError';
  }
}

const ACCEPTED = '/accepted';
const REJECTED = '/rejected';

/** The answer topics of an AWS IoT request topic: `<topic>/accepted` and `<topic>/rejected`. */
export function responseTopics(requestTopic: string): { accepted: string; rejected: string } {
  return { accepted: `${requestTopic}${ACCEPTED}`, rejected: `${requestTopic}${REJECTED}` };
}

/**
 * The groupable cause of a TLS setup failure: `client TLS setup failed: no start line (check the
 * certificate, key and CA PEM)`. OpenSSL's reason is used when present; it names no device.
 */
export function localTlsProblem(err: unknown): string {
  const e = (err ?? {}) as { reason?: unknown; message?: unknown };
  const reason =
    typeof e.reason === 'string' && e.reason
      ? e.reason
      : typeof e.message === 'string'
        ? e.message
        : String(err);
  return `client TLS setup failed: ${reason} (check the certificate, key and CA PEM)`;
}

interface Waiter {
  resolve: (payload: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  accept?: (payload: Record<string, unknown>) => boolean;
  api: string;
}

/** A DISCONNECT the server sent (MQTT 5). */
interface ServerDisconnect {
  code: number;
  reasonString?: string;
}

function serverDisconnectOf(packet: IDisconnectPacket): ServerDisconnect {
  return { code: packet.reasonCode ?? 0, reasonString: packet.properties?.reasonString };
}

/** ` ("the server's reason string")`, or nothing. */
function reasonStringSuffix(reasonString: string | undefined): string {
  return reasonString ? ` ("${reasonString}")` : '';
}

function parseJson(buf: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export class MqttSession {
  private readonly waiters = new Map<string, Waiter>();
  /** Publishes waiting for their PUBACK: each fails when the connection closes. */
  private readonly publishing = new Set<() => void>();
  private closed = false;
  private disconnect?: ServerDisconnect;
  /** Resolves once the connection has closed, whoever closed it. */
  readonly whenClosed: Promise<void>;

  private constructor(
    readonly client: MqttClient,
    /** The MQTT version this session speaks. */
    readonly mqttVersion: MqttVersion,
  ) {
    client.on('message', (topic, payload) => this.dispatch(topic, payload));
    // MQTT 5: the server says why it ends the session, then closes the connection; close it from
    // this side too, so nothing waits for a socket the server may keep half open.
    client.on('disconnect', (packet) => {
      this.disconnect ??= serverDisconnectOf(packet);
      this.closed = true;
      client.end(true);
    });
    this.whenClosed = new Promise((resolve) => {
      if (!client.connected) resolve();
      client.on('close', () => {
        this.failAll();
        resolve();
      });
    });
  }

  /**
   * The DISCONNECT the server ended this session with (MQTT 5), as `DISCONNECT 0x8e Session taken
   * over: "…"`; undefined while connected, and when the connection ended any other way.
   */
  get serverDisconnect(): string | undefined {
    return this.disconnect && describeServerDisconnect(this.disconnect.code, this.disconnect.reasonString);
  }

  /** Open a session, or throw a {@link TransportError} within `connectTimeoutMs`. */
  static open(options: SessionOptions): Promise<MqttSession> {
    const { endpoint } = options;
    const version = options.mqttVersion ?? DEFAULT_MQTT_VERSION;
    const port = endpoint.port ?? 8883;
    const target = `${endpoint.host}:${port}`;
    const mqttOptions: IClientOptions = {
      protocol: 'mqtts',
      host: endpoint.host,
      port,
      protocolVersion: protocolLevel(version),
      clientId: options.clientId,
      // 3.1.1: clean session. MQTT 5: clean start, and no Session Expiry Interval (0): the session
      // ends with the connection, as a 3.1.1 clean session does.
      clean: true,
      ca: endpoint.caPem,
      cert: options.credentials.certPem,
      key: options.credentials.keyPem,
      rejectUnauthorized: true,
      servername: endpoint.servername ?? (isIP(endpoint.host) ? undefined : endpoint.host),
      // AWS IoT on 443 selects MQTT by ALPN.
      ...(port === 443 ? { ALPNProtocols: ['x-amzn-mqtt-ca'] } : {}),
      connectTimeout: options.connectTimeoutMs,
      reconnectPeriod: 0,
      keepalive: options.keepaliveSec ?? 60,
      ...(options.will
        ? {
            will: {
              topic: options.will.topic,
              payload: Buffer.from(options.will.payload),
              qos: options.will.qos ?? 1,
              retain: false,
            },
          }
        : {}),
    };
    return new Promise((resolve, reject) => {
      let client: MqttClient;
      try {
        client = connect(mqttOptions);
      } catch (err) {
        // Node's TLS layer refuses the PEM material before any socket exists (a key given as the
        // certificate, a key that does not match): a local problem, never the server's answer.
        const message = err instanceof Error ? err.message : String(err);
        reject(new TransportError('TLS_SETUP', message, localTlsProblem(err)));
        return;
      }
      let settled = false;
      /** MQTT 5: what the server said before or instead of a successful CONNACK. */
      let connack: { code: number; reasonString?: string } | undefined;
      let disconnect: ServerDisconnect | undefined;
      // Only our own listeners come off: mqtt.js's own `close` handler clears its CONNACK and
      // keepalive timers, and without it a failed connect keeps the process alive.
      const detach = () => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('close', onClose);
        client.off('packetreceive', onPacket);
      };
      const onPacket = (packet: Packet) => {
        if (packet.cmd === 'connack')
          connack = {
            code: (version === '5' ? packet.reasonCode : packet.returnCode) ?? 0,
            reasonString: packet.properties?.reasonString,
          };
        else if (packet.cmd === 'disconnect') disconnect = serverDisconnectOf(packet);
      };
      const fail = (err: TransportError) => {
        if (settled) return;
        settled = true;
        detach();
        client.end(true);
        reject(err);
      };
      const onConnect = () => {
        if (settled) return;
        settled = true;
        detach();
        resolve(new MqttSession(client, version));
      };
      // Stays attached: mqtt.js may emit a socket error twice, and errors after CONNACK surface
      // as `close` (see the constructor).
      const onError = (err: Error) => {
        if (connack && isRefusal(connack.code, 'CONNACK')) {
          const refused = connackRefused(connack.code, version);
          fail(
            new TransportError(
              'CONNECT_FAILED',
              `${refused}${reasonStringSuffix(connack.reasonString)}`,
              refused,
              connack.code,
            ),
          );
          return;
        }
        fail(new TransportError('CONNECT_FAILED', err.message, describeConnectError(err, target, version)));
      };
      const onClose = () => {
        // Client side, `authorized` means the handshake completed and the server was verified.
        const handshakeDone = (client.stream as TLSSocket | undefined)?.authorized === true;
        const cause = describeClosedBeforeConnack(handshakeDone, target, disconnect);
        fail(
          new TransportError(
            'CONNECT_FAILED',
            disconnect ? `${cause}${reasonStringSuffix(disconnect.reasonString)}` : 'closed before CONNACK',
            cause,
            disconnect?.code,
          ),
        );
      };
      const timer = setTimeout(
        () =>
          fail(
            new TransportError(
              'CONNECT_TIMEOUT',
              `no CONNACK within ${options.connectTimeoutMs} ms`,
              connackTimeout(target),
            ),
          ),
        options.connectTimeoutMs,
      );
      client.on('packetreceive', onPacket);
      client.once('connect', onConnect);
      client.on('error', onError);
      client.once('close', onClose);
    });
  }

  get connected(): boolean {
    return !this.closed && this.client.connected;
  }

  /**
   * Subscribe at QoS 1. A refused filter (a SUBACK code of 0x80 or more: `0x80 Failure` on 3.1.1,
   * e.g. `0x87 Not authorized` on MQTT 5) is a `SUBSCRIBE_REFUSED` {@link TransportError} naming
   * each refused filter and its code.
   */
  subscribe(filters: string[]): Promise<void> {
    if (this.closed || !this.client.connected)
      return Promise.reject(this.lost('not connected', 'when subscribing'));
    return new Promise((resolve, reject) => {
      this.client.subscribe(filters, { qos: 1 }, (err, _granted, packet) => {
        // mqtt.js reports a refusal as an error that carries the SUBACK; without one, the
        // connection went away.
        const codes = packet?.granted;
        if (codes?.length === filters.length) {
          const refused = filters.flatMap((filter, i) => {
            const code = typeof codes[i] === 'number' ? codes[i] : 0;
            return isRefusal(code, 'SUBACK') ? [{ filter, code }] : [];
          });
          if (refused.length > 0) {
            const list = refused
              .map((r) => `${r.filter} (${describeReasonCode(r.code, 'SUBACK', this.mqttVersion)})`)
              .join(', ');
            const reasonString = reasonStringSuffix(packet?.properties?.reasonString);
            return reject(
              new TransportError(
                'SUBSCRIBE_REFUSED',
                `${list}${reasonString}`,
                `subscription refused: ${list}`,
                refused[0].code,
              ),
            );
          }
          if (!err) return resolve();
        }
        reject(this.lost(err?.message ?? 'no SUBACK', 'while subscribing'));
      });
    });
  }

  /**
   * Publish; at QoS 1 resolves on PUBACK. Rejects with a {@link TransportError} when the session
   * is not connected, or when the connection closes before the PUBACK (mqtt.js, which never
   * reconnects here, would otherwise keep the message waiting for a reconnect that never comes).
   */
  publish(topic: string, payload: string, qos: 0 | 1 = 1): Promise<void> {
    if (this.closed || !this.client.connected)
      return Promise.reject(this.lost('not connected', `when publishing ${topic}`));
    const tooLarge = this.overMaximumPacketSize(topic, payload);
    if (tooLarge) return Promise.reject(tooLarge);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        this.publishing.delete(lost);
        if (err) reject(err);
        else resolve();
      };
      const lost = (): void => settle(this.lost('connection closed', `before the PUBACK of ${topic}`));
      this.publishing.add(lost);
      this.client.publish(topic, payload, { qos }, (err, packet) => {
        if (!err) return settle();
        // MQTT 5: a PUBACK with a reason code of 0x80 or more.
        if (packet?.cmd === 'puback' && packet.reasonCode !== undefined) {
          const code = describeReasonCode(packet.reasonCode, 'PUBACK', this.mqttVersion);
          return settle(
            new TransportError(
              'PUBLISH_REFUSED',
              `PUBACK ${code} on ${topic}${reasonStringSuffix(packet.properties?.reasonString)}`,
              `publish refused on ${topic}: PUBACK ${code}`,
              packet.reasonCode,
            ),
          );
        }
        settle(
          this.closed || !this.client.connected
            ? this.lost(err.message, `before the PUBACK of ${topic}`)
            : new TransportError('PUBLISH_FAILED', err.message, `publish failed on ${topic}: ${err.message}`),
        );
      });
    });
  }

  /**
   * MQTT 5: a PUBLISH larger than the server's Maximum Packet Size (CONNACK) must not be sent; the
   * error says so here instead. Undefined when it fits or the server set no maximum.
   */
  private overMaximumPacketSize(topic: string, payload: string): TransportError | undefined {
    const max = this.mqttVersion === '5' ? this.client.serverProperties?.maximumPacketSize : undefined;
    if (max === undefined) return undefined;
    const bytes = publishPacketBytes(topic, payload, this.mqttVersion);
    if (bytes <= max) return undefined;
    return new TransportError(
      'PUBLISH_REFUSED',
      `a PUBLISH of ${bytes} bytes on ${topic} exceeds the server's Maximum Packet Size of ${max} bytes`,
      `publish not sent on ${topic}: larger than the server's Maximum Packet Size (${max} bytes)`,
      0x95,
    );
  }

  /**
   * A `CONNECTION_LOST` error `when` something was under way: `connection lost before the PUBACK
   * of <topic>`, or, when the server ended the session (MQTT 5), `closed by the server with
   * DISCONNECT 0x8e Session taken over before the PUBACK of <topic>`.
   */
  private lost(message: string, when: string): TransportError {
    const d = this.disconnect;
    if (!d)
      return new TransportError(
        'CONNECTION_LOST',
        message,
        message === 'not connected' ? `not connected ${when}` : `connection lost ${when}`,
      );
    const by = `closed by the server with ${describeServerDisconnect(d.code)}`;
    return new TransportError(
      'CONNECTION_LOST',
      `${by} ${when}${reasonStringSuffix(d.reasonString)}`,
      `${by} ${when}`,
      d.code,
    );
  }

  /**
   * Publish `payload` on `topic` and wait for `<topic>/accepted` (resolves with its JSON) or
   * `<topic>/rejected` (rejects with {@link RejectedError}). The caller must have subscribed to
   * both response topics already. `accept` can discard accepted payloads that are not ours.
   */
  async request(
    api: string,
    topic: string,
    payload: Record<string, unknown>,
    timeoutMs: number,
    accept?: (payload: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>> {
    const { accepted } = responseTopics(topic);
    if (this.closed || !this.client.connected) throw this.lost('not connected', `when publishing ${topic}`);
    if (this.waiters.has(topic)) throw new Error(`a ${api} request is already in flight on this session`);
    let timer: NodeJS.Timeout | undefined;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.waiters.set(topic, { resolve, reject, accept, api });
      timer = setTimeout(() => {
        this.waiters.delete(topic);
        reject(
          new TransportError(
            'RESPONSE_TIMEOUT',
            `no ${api} response within ${timeoutMs} ms`,
            `timeout waiting for ${accepted}`,
          ),
        );
      }, timeoutMs);
    });
    try {
      await this.publish(topic, JSON.stringify(payload));
      return await answer;
    } finally {
      clearTimeout(timer);
      this.waiters.delete(topic);
      answer.catch(() => undefined);
    }
  }

  /**
   * Graceful DISCONNECT (no last will), then close. Never throws. When the broker has not closed
   * the connection within 2 s, the socket is destroyed, so no session outlives its `end()`.
   */
  end(force = false): Promise<void> {
    this.closed = true;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        // `client.end(true)` would be a no-op here (mqtt.js is already disconnecting).
        this.client.stream?.destroy();
        resolve();
      }, 2000);
      this.client.end(force, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Drop the TCP connection without DISCONNECT (the broker publishes the last will). */
  kill(): void {
    this.closed = true;
    this.client.stream?.destroy();
    this.client.end(true);
  }

  private dispatch(topic: string, payload: Buffer): void {
    let base: string;
    let ok: boolean;
    if (topic.endsWith(ACCEPTED)) {
      base = topic.slice(0, -ACCEPTED.length);
      ok = true;
    } else if (topic.endsWith(REJECTED)) {
      base = topic.slice(0, -REJECTED.length);
      ok = false;
    } else return;
    const waiter = this.waiters.get(base);
    if (!waiter) return;
    const body = parseJson(payload) ?? {};
    if (ok) {
      if (waiter.accept && !waiter.accept(body)) return;
      this.waiters.delete(base);
      waiter.resolve(body);
    } else {
      this.waiters.delete(base);
      waiter.reject(
        new RejectedError(
          waiter.api,
          typeof body.statusCode === 'number' ? body.statusCode : undefined,
          typeof body.errorCode === 'string' ? body.errorCode : 'Unknown',
          typeof body.errorMessage === 'string' ? body.errorMessage : '',
        ),
      );
    }
  }

  private failAll(): void {
    this.closed = true;
    for (const lost of [...this.publishing]) lost();
    for (const [topic, waiter] of this.waiters) {
      this.waiters.delete(topic);
      waiter.reject(this.lost('connection closed', `waiting for ${responseTopics(topic).accepted}`));
    }
  }
}
