/**
 * Short, groupable descriptions of why an MQTT connect failed, for summaries that count devices
 * by cause ("gave up: 3 (ECONNREFUSED 127.0.0.1:8883)"). A description names the kind of
 * failure and, for socket errors, the address; it never carries per-device values such as client
 * ids, so devices that failed the same way share one description. A broker's refusal names its
 * code in hex with its name (`CONNACK refused: 0x87 Not authorized`) on either MQTT version; an
 * MQTT 5 reason string, which may name the device, stays out of the short form.
 */
import { describeReasonCode, DEFAULT_MQTT_VERSION, type MqttVersion } from './mqtt-protocol';

/** The fields of the errors mqtt.js surfaces on `error` while connecting. */
interface ConnectErrorFields {
  message?: unknown;
  /** errno name (`ECONNREFUSED`), OpenSSL/Node code (`ERR_SSL_…`, `SELF_SIGNED_CERT_IN_CHAIN`) or CONNACK return code. */
  code?: unknown;
  /** Set on socket (errno) errors: `connect`, `getaddrinfo`, … */
  syscall?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  /** OpenSSL reason of a TLS alert or protocol error (`sslv3 alert certificate unknown`). */
  reason?: unknown;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** `sslv3 alert certificate unknown` → `certificate unknown`. */
function tlsReason(reason: string): string {
  return reason.replace(/^(sslv3|tlsv1[0-9]*) alert /i, '');
}

/**
 * Describe an error raised before CONNACK. `target` is the `host:port` the client dialled, used
 * when the error itself does not name the peer; `version` names the CONNACK code.
 *
 * - socket errors: `ECONNREFUSED 127.0.0.1:8883`, `ENOTFOUND iot.example.com`
 * - TLS alerts and protocol errors: `TLS: certificate unknown`
 * - server certificate checks: `TLS: self-signed certificate in certificate chain`
 * - CONNACK refusals: `CONNACK refused: 0x05 Not authorized` (3.1.1 return code),
 *   `CONNACK refused: 0x87 Not authorized` (MQTT 5 reason code)
 * - no CONNACK in time: `timeout waiting for CONNACK from 127.0.0.1:8883`
 */
export function describeConnectError(
  err: unknown,
  target: string,
  version: MqttVersion = DEFAULT_MQTT_VERSION,
): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as ConnectErrorFields;
  const message = text(e.message) ?? 'unknown error';
  // mqtt.js's own connect timer (the same budget as the session's) may fire first.
  if (message === 'connack timeout') return connackTimeout(target);
  if (typeof e.code === 'number') return connackRefused(e.code, version);
  const code = text(e.code);
  const reason = text(e.reason);
  if (reason || code?.startsWith('ERR_SSL_')) return `TLS: ${tlsReason(reason ?? message)}`;
  if (code && /^E[A-Z]+$/.test(code)) {
    const address = text(e.address);
    const peer = address
      ? typeof e.port === 'number'
        ? `${address}:${e.port}`
        : address
      : (text(e.hostname) ?? target);
    return `${code} ${peer}`;
  }
  if (code) return `TLS: ${message}`;
  return message;
}

/** A CONNACK whose code is a refusal: `CONNACK refused: 0x87 Not authorized`. */
export function connackRefused(code: number, version: MqttVersion): string {
  return `CONNACK refused: ${describeReasonCode(code, 'CONNACK', version)}`;
}

/**
 * A DISCONNECT the server sent (MQTT 5 only): `DISCONNECT 0x87 Not authorized`. With
 * `reasonString`, the server's own words follow in quotes (for logs, not for grouping).
 */
export function describeServerDisconnect(code: number, reasonString?: string): string {
  const base = `DISCONNECT ${describeReasonCode(code, 'DISCONNECT', '5')}`;
  return reasonString ? `${base}: "${reasonString}"` : base;
}

/** No CONNACK within the connect budget. */
export function connackTimeout(target: string): string {
  return `timeout waiting for CONNACK from ${target}`;
}

/**
 * Describe a connection that closed before CONNACK without an error, which is how a server that
 * refuses the client certificate after the TLS handshake shows up (mqtt.js emits only `close`).
 */
export function describeClosedBeforeConnack(
  handshakeDone: boolean,
  target: string,
  disconnect?: { code: number },
): string {
  if (disconnect)
    return `closed by ${target} before CONNACK with ${describeServerDisconnect(disconnect.code)}`;
  return handshakeDone
    ? `closed by ${target} after the TLS handshake, before CONNACK`
    : `closed by ${target} before the TLS handshake completed`;
}
