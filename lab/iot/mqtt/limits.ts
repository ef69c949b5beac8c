/**
 * AWS IoT Core's message broker limits, written once with their sources. The lab's broker
 * enforces them and docs/lab.md lists them. They are AWS's side of the contract, so they live in
 * the emulator, which imports no product code; the device contract (`core/telemetry.ts`) states
 * the limits a device must keep, and a test holds the two together.
 *
 * Sources:
 * - [MQTT] AWS IoT Developer Guide, "MQTT":
 *   https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html (sections "MQTT 5 properties",
 *   "MQTT persistent sessions", "Shared subscriptions", "Message expiry", "Topic aliases",
 *   "AWS IoT differences from MQTT specifications").
 * - [QUOTAS] AWS General Reference, "AWS IoT Core endpoints and quotas", message broker and
 *   protocol limits: https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
 */

export const MQTT_BROKER_LIMITS = {
  /** QoS 2 is not supported: "AWS IoT doesn't support publishing or subscribing with QoS level 2" [MQTT]. */
  maximumQos: 1,
  /** Client id: "128 bytes of UTF-8 encoded characters" [QUOTAS]. */
  clientIdMaxBytes: 128,
  /**
   * Largest MQTT packet the broker accepts and sends: Maximum Packet Size "cannot exceed 128 KB"
   * [MQTT]; MQTT payload size 128 KB, "AWS IoT Core rejects publish and connect requests larger
   * than this size" [QUOTAS]. Checked on the whole packet, so a payload of exactly 128 KiB does not
   * fit with its topic: the device contract keeps payloads below it.
   */
  maximumPacketBytes: 128 * 1024,
  /** Topic and topic filter size: 256 bytes of UTF-8, not counting the Basic Ingest prefix [QUOTAS]. */
  topicMaxBytes: 256,
  /**
   * Forward slashes in a topic or topic filter: 7 [QUOTAS], not counting the first three of
   * `$aws/rules/<rule>/` (Basic Ingest) [QUOTAS] or the two of `$share/<name>/` [MQTT].
   */
  topicMaxSlashes: 7,
  /** Shared subscription name: no `/`, `+` or `#`, at most 128 UTF-8 characters [MQTT]. */
  shareNameMaxLength: 128,
  /** "A single SUBSCRIBE request is limited a maximum of eight subscriptions" [QUOTAS]. */
  subscriptionsPerSubscribe: 8,
  /** Subscriptions per connection: 50, not adjustable; beyond it "the connection is closed" [QUOTAS]. */
  subscriptionsPerConnection: 50,
  /** Publish requests per second per connection: 100; "requests that exceed that quota are discarded" [QUOTAS]. */
  publishesPerSecondPerConnection: 100,
  /** Throughput per connection: 512 KiB/s; "data that exceeds the maximum throughput is delayed" [QUOTAS]. */
  bytesPerSecondPerConnection: 512 * 1024,
  /** Unacknowledged QoS 1 publishes in flight to one client: 100 [QUOTAS]; Receive Maximum. */
  inflightPerConnection: 100,
  /**
   * Keep-alive: a client may ask for 30 to 1200 s; 0 or more than 1200 gets 1200, 1 to 29 gets
   * 30; the broker disconnects after 1.5 times the interval without a packet [QUOTAS].
   */
  keepAliveMinSeconds: 30,
  keepAliveMaxSeconds: 1200,
  /** "AWS IoT Core has a default limit of 8 topic aliases" [MQTT]. */
  topicAliasMaximum: 8,
  /**
   * Persistent session expiry: 1 hour by default, adjustable up to 7 days; MQTT 5 values above
   * the account maximum are adjusted and returned in the CONNACK [MQTT], [QUOTAS].
   */
  sessionExpiryDefaultSeconds: 3600,
  sessionExpiryMaxSeconds: 7 * 24 * 3600,
  /** Message Expiry Interval: 0 is raised to 1, more than 604800 (7 days) lowered to it [MQTT]. */
  messageExpiryMinSeconds: 1,
  messageExpiryMaxSeconds: 604_800,
  /** A QoS 1 message not acknowledged within 1 hour is dropped [QUOTAS]. */
  qos1RetryMs: 3_600_000,
  /** Stored messages of a resumed persistent session are sent at most 10 per second [MQTT]. */
  queuedDeliveriesPerSecond: 10,
} as const;

export type MqttBrokerLimits = { -readonly [K in keyof typeof MQTT_BROKER_LIMITS]: number };

const BASIC_INGEST_PREFIX = /^\$aws\/rules\/[^/]*\//;
const SHARE_PREFIX = /^\$share\/[^/]*\//;

/** The part of a topic or filter the size and slash limits count (without `$aws/rules/<rule>/`, `$share/<name>/`). */
export function countedTopic(topicOrFilter: string): string {
  return topicOrFilter.replace(SHARE_PREFIX, '').replace(BASIC_INGEST_PREFIX, '');
}

/** The keep-alive AWS IoT Core uses for the one a client asks for (seconds). */
export function effectiveKeepAlive(requested: number, limits: MqttBrokerLimits = MQTT_BROKER_LIMITS): number {
  if (requested === 0 || requested > limits.keepAliveMaxSeconds) return limits.keepAliveMaxSeconds;
  return Math.max(requested, limits.keepAliveMinSeconds);
}

/**
 * Why a topic (PUBLISH) or topic filter (SUBSCRIBE) breaks the size or slash limits, or
 * undefined. `what` names it in the message.
 */
export function topicLimitProblem(
  topicOrFilter: string,
  what: 'topic' | 'topic filter',
  limits: MqttBrokerLimits = MQTT_BROKER_LIMITS,
): string | undefined {
  const counted = countedTopic(topicOrFilter);
  const bytes = Buffer.byteLength(counted, 'utf8');
  if (bytes > limits.topicMaxBytes)
    return `${what} is ${bytes} bytes, over AWS IoT Core's ${limits.topicMaxBytes}-byte limit: shorten it`;
  let slashes = 0;
  for (let i = 0; i < counted.length; i++) if (counted.charCodeAt(i) === 47) slashes++;
  if (slashes > limits.topicMaxSlashes)
    return `${what} has ${slashes} slashes, over AWS IoT Core's limit of ${limits.topicMaxSlashes}: use fewer levels`;
  return undefined;
}
