/**
 * Short, groupable descriptions of why an MQTT connect failed, for summaries that count devices
 * by cause ("gave up: 3 (ECONNREFUSED 127.0.0.1:8883)"). A description names the kind of
 * failure and, for socket errors, the address; it never carries per-device values such as client
 * ids, so devices that failed the same way share one description.
 */

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
 * when the error itself does not name the peer.
 *
 * - socket errors: `ECONNREFUSED 127.0.0.1:8883`, `ENOTFOUND iot.example.com`
 * - TLS alerts and protocol errors: `TLS: certificate unknown`
 * - server certificate checks: `TLS: self-signed certificate in certificate chain`
 * - MQTT CONNACK return codes: `CONNACK refused: Not authorized`
 * - no CONNACK in time: `timeout waiting for CONNACK from 127.0.0.1:8883`
 */
export function describeConnectError(err: unknown, target: string): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as ConnectErrorFields;
  const message = text(e.message) ?? 'unknown error';
  // mqtt.js's own connect timer (the same budget as the session's) may fire first.
  if (message === 'connack timeout') return connackTimeout(target);
  if (typeof e.code === 'number') return `CONNACK refused: ${message.replace(/^Connection refused: /i, '')}`;
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

/** No CONNACK within the connect budget. */
export function connackTimeout(target: string): string {
  return `timeout waiting for CONNACK from ${target}`;
}

/**
 * Describe a connection that closed before CONNACK without an error, which is how a server that
 * refuses the client certificate after the TLS handshake shows up (mqtt.js emits only `close`).
 */
export function describeClosedBeforeConnack(handshakeDone: boolean, target: string): string {
  return handshakeDone
    ? `closed by ${target} after the TLS handshake, before CONNACK`
    : `closed by ${target} before the TLS handshake completed`;
}
