/**
 * One MQTT 3.1.1 session over mutual TLS (mqtt.js), with the request/response helper the AWS IoT
 * device APIs need: subscribe to `<topic>/accepted` and `<topic>/rejected` first, then publish,
 * then wait for exactly one answer, a connection loss or a timeout.
 *
 * No automatic reconnect: the caller owns retry policy (a new session per attempt).
 */
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { connackTimeout, describeClosedBeforeConnack, describeConnectError } from './connect-failure';

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
}

export type TransportFailure =
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_FAILED'
  | 'CONNECTION_LOST'
  | 'RESPONSE_TIMEOUT'
  | 'SUBSCRIBE_REFUSED'
  | 'PUBLISH_FAILED'
  | 'TLS_SETUP';

/**
 * A failure of the connection itself (retryable unless `SUBSCRIBE_REFUSED`, or `TLS_SETUP`: the
 * device's own certificate, key or CA could not be loaded, so no connection was even attempted).
 */
export class TransportError extends Error {
  /**
   * Short and groupable: the same for every device that failed the same way, e.g.
   * `ECONNREFUSED 127.0.0.1:8883`, `TLS: certificate unknown`,
   * `timeout waiting for $aws/certificates/create-from-csr/json/accepted`. Defaults to `message`.
   */
  readonly reason: string;

  constructor(
    readonly failure: TransportFailure,
    message: string,
    reason?: string,
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
  /** Resolves once the connection has closed, whoever closed it. */
  readonly whenClosed: Promise<void>;

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => this.dispatch(topic, payload));
    this.whenClosed = new Promise((resolve) => {
      if (!client.connected) resolve();
      client.on('close', () => {
        this.failAll();
        resolve();
      });
    });
  }

  /** Open a session, or throw a {@link TransportError} within `connectTimeoutMs`. */
  static open(options: SessionOptions): Promise<MqttSession> {
    const { endpoint } = options;
    const port = endpoint.port ?? 8883;
    const target = `${endpoint.host}:${port}`;
    const mqttOptions: IClientOptions = {
      protocol: 'mqtts',
      host: endpoint.host,
      port,
      protocolVersion: 4,
      clientId: options.clientId,
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
      // Only our own listeners come off: mqtt.js's own `close` handler clears its CONNACK and
      // keepalive timers, and without it a failed connect keeps the process alive.
      const detach = () => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('close', onClose);
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
        resolve(new MqttSession(client));
      };
      // Stays attached: mqtt.js may emit a socket error twice, and errors after CONNACK surface
      // as `close` (see the constructor).
      const onError = (err: Error) =>
        fail(new TransportError('CONNECT_FAILED', err.message, describeConnectError(err, target)));
      const onClose = () => {
        // Client side, `authorized` means the handshake completed and the server was verified.
        const handshakeDone = (client.stream as TLSSocket | undefined)?.authorized === true;
        fail(
          new TransportError(
            'CONNECT_FAILED',
            'closed before CONNACK',
            describeClosedBeforeConnack(handshakeDone, target),
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
      client.once('connect', onConnect);
      client.on('error', onError);
      client.once('close', onClose);
    });
  }

  get connected(): boolean {
    return !this.closed && this.client.connected;
  }

  /** Subscribe at QoS 1; a refused filter (SUBACK 0x80) is a {@link TransportError}. */
  subscribe(filters: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.subscribe(filters, { qos: 1 }, (err, granted) => {
        if (err)
          return reject(
            new TransportError('CONNECTION_LOST', err.message, 'connection lost while subscribing'),
          );
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length > 0) {
          const list = refused.join(', ');
          return reject(new TransportError('SUBSCRIBE_REFUSED', list, `subscription refused: ${list}`));
        }
        resolve();
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
      return Promise.reject(
        new TransportError('CONNECTION_LOST', 'not connected', `not connected when publishing ${topic}`),
      );
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        this.publishing.delete(lost);
        if (err) reject(err);
        else resolve();
      };
      const lost = (): void =>
        settle(
          new TransportError(
            'CONNECTION_LOST',
            'connection closed',
            `connection lost before the PUBACK of ${topic}`,
          ),
        );
      this.publishing.add(lost);
      this.client.publish(topic, payload, { qos }, (err) =>
        settle(
          err
            ? new TransportError('PUBLISH_FAILED', err.message, `publish failed on ${topic}: ${err.message}`)
            : undefined,
        ),
      );
    });
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
    if (this.closed || !this.client.connected)
      throw new TransportError('CONNECTION_LOST', 'not connected', `not connected when publishing ${topic}`);
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
      waiter.reject(
        new TransportError(
          'CONNECTION_LOST',
          'connection closed',
          `connection lost waiting for ${responseTopics(topic).accepted}`,
        ),
      );
    }
  }
}
