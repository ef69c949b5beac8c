/**
 * The MQTT versions the simulator speaks, and the names of the codes a broker answers with, so a
 * refusal reads `0x87 Not authorized` rather than a bare number. No MQTT library is loaded here:
 * the CLI checks `--mqtt` with it before the MQTT stack is needed.
 *
 * Names are those of the MQTT 5.0 specification (section 2.4, reason codes) and, for MQTT 3.1.1,
 * of its CONNACK return codes (section 3.2.2.3) and SUBACK failure (section 3.9.3). AWS IoT Core
 * documents which of them it sends ("MQTT 5 reason codes" in the developer guide).
 */

/** MQTT protocol versions of a device session. */
export const MQTT_VERSIONS = ['3.1.1', '5'] as const;
export type MqttVersion = (typeof MQTT_VERSIONS)[number];

/** The version a session uses unless told otherwise. */
export const DEFAULT_MQTT_VERSION: MqttVersion = '3.1.1';

/** The protocol level of the CONNECT packet: 4 for MQTT 3.1.1, 5 for MQTT 5. */
export function protocolLevel(version: MqttVersion): 4 | 5 {
  return version === '5' ? 5 : 4;
}

export function isMqttVersion(value: unknown): value is MqttVersion {
  return typeof value === 'string' && (MQTT_VERSIONS as readonly string[]).includes(value);
}

/**
 * Check a version given as text (a flag, a config value). Throws an Error naming the value and
 * the versions there are; callers wrap it in their own usage error with the flag's name.
 */
export function parseMqttVersion(value: string): MqttVersion {
  const v = value.trim();
  if (isMqttVersion(v)) return v;
  throw new Error(
    `"${value}" is not an MQTT version the simulator speaks: use ${MQTT_VERSIONS.map((x) => `"${x}"`).join(' or ')}`,
  );
}

/** The packet a code answers: names differ by packet for the same value (0x00, 0x04, 0x80). */
export type AckPacket = 'CONNACK' | 'SUBACK' | 'PUBACK' | 'DISCONNECT';

/** MQTT 5 reason codes of 0x80 and above (failures), the same name in every packet. */
const MQTT5_FAILURES: Record<number, string> = {
  0x80: 'Unspecified error',
  0x81: 'Malformed Packet',
  0x82: 'Protocol Error',
  0x83: 'Implementation specific error',
  0x84: 'Unsupported Protocol Version',
  0x85: 'Client Identifier not valid',
  0x86: 'Bad User Name or Password',
  0x87: 'Not authorized',
  0x88: 'Server unavailable',
  0x89: 'Server busy',
  0x8a: 'Banned',
  0x8b: 'Server shutting down',
  0x8c: 'Bad authentication method',
  0x8d: 'Keep Alive timeout',
  0x8e: 'Session taken over',
  0x8f: 'Topic Filter invalid',
  0x90: 'Topic Name invalid',
  0x91: 'Packet Identifier in use',
  0x92: 'Packet Identifier not found',
  0x93: 'Receive Maximum exceeded',
  0x94: 'Topic Alias invalid',
  0x95: 'Packet too large',
  0x96: 'Message rate too high',
  0x97: 'Quota exceeded',
  0x98: 'Administrative action',
  0x99: 'Payload format invalid',
  0x9a: 'Retain not supported',
  0x9b: 'QoS not supported',
  0x9c: 'Use another server',
  0x9d: 'Server moved',
  0x9e: 'Shared Subscriptions not supported',
  0x9f: 'Connection rate exceeded',
  0xa0: 'Maximum connect time',
  0xa1: 'Subscription Identifiers not supported',
  0xa2: 'Wildcard Subscriptions not supported',
};

/** MQTT 5 codes below 0x80, by packet. */
const MQTT5_SUCCESSES: Record<AckPacket, Record<number, string>> = {
  CONNACK: { 0x00: 'Success' },
  SUBACK: { 0x00: 'Granted QoS 0', 0x01: 'Granted QoS 1', 0x02: 'Granted QoS 2' },
  PUBACK: { 0x00: 'Success', 0x10: 'No matching subscribers' },
  DISCONNECT: { 0x00: 'Normal disconnection', 0x04: 'Disconnect with Will Message' },
};

/** MQTT 3.1.1 CONNACK return codes. */
const MQTT311_CONNACK: Record<number, string> = {
  0x00: 'Connection Accepted',
  0x01: 'Unacceptable protocol version',
  0x02: 'Identifier rejected',
  0x03: 'Server unavailable',
  0x04: 'Bad user name or password',
  0x05: 'Not authorized',
};

/** MQTT 3.1.1 SUBACK return codes. */
const MQTT311_SUBACK: Record<number, string> = {
  0x00: 'Granted QoS 0',
  0x01: 'Granted QoS 1',
  0x02: 'Granted QoS 2',
  0x80: 'Failure',
};

/** `0x87`: two hex digits, lower case after the prefix. */
export function hexCode(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}

/** The name of `code` in `packet` on `version`, or undefined for a code the version does not define. */
export function reasonCodeName(code: number, packet: AckPacket, version: MqttVersion): string | undefined {
  if (version === '5') return code >= 0x80 ? MQTT5_FAILURES[code] : MQTT5_SUCCESSES[packet][code];
  if (packet === 'CONNACK') return MQTT311_CONNACK[code];
  if (packet === 'SUBACK') return MQTT311_SUBACK[code];
  return undefined;
}

/**
 * `0x87 Not authorized`; a code nobody defined reads `0xa7 (unknown reason code)`. A server that
 * speaks only MQTT 3.1.1 answers an MQTT 5 CONNECT with its return code 0x01; that answer says so:
 * `0x01 Unacceptable protocol version (an MQTT 3.1.1 return code: the server does not speak MQTT 5)`.
 */
export function describeReasonCode(code: number, packet: AckPacket, version: MqttVersion): string {
  const name = reasonCodeName(code, packet, version);
  if (name === undefined && version === '5' && packet === 'CONNACK' && MQTT311_CONNACK[code])
    return `${hexCode(code)} ${MQTT311_CONNACK[code]} (an MQTT 3.1.1 return code: the server does not speak MQTT 5)`;
  return `${hexCode(code)} ${name ?? '(unknown reason code)'}`;
}

/** Whether `code` is a refusal: any CONNACK code but 0, or any other code of 0x80 or more. */
export function isRefusal(code: number, packet: AckPacket): boolean {
  return packet === 'CONNACK' ? code !== 0 : code >= 0x80;
}

/**
 * Refusals that may pass when tried again later (the server is busy or a rate or quota is
 * exceeded); every other refusal stands until something changes (policy, topic, payload).
 */
const TRANSIENT_REFUSALS: ReadonlySet<number> = new Set([0x88, 0x89, 0x96, 0x97, 0x9f]);

export function isTransientRefusal(code: number): boolean {
  return TRANSIENT_REFUSALS.has(code);
}

/** Bytes of a variable byte integer (MQTT's remaining length and property length). */
function varIntBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/**
 * Size in bytes of a QoS 1 PUBLISH of `payload` on `topic` without properties, as sent on
 * `version`: what an MQTT 5 server's Maximum Packet Size (CONNACK) is compared with.
 */
export function publishPacketBytes(topic: string, payload: string | Buffer, version: MqttVersion): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + (version === '5' ? 1 : 0) + Buffer.byteLength(payload);
  return 1 + varIntBytes(remaining) + remaining;
}
