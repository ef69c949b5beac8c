/**
 * Session state of one client id, kept across connections when the session persists (MQTT 3.1.1
 * clean session 0, MQTT 5 Session Expiry Interval > 0): subscriptions, QoS 1 messages waiting
 * to be sent, and QoS 1 messages sent but not acknowledged.
 */
import type { UserProperties } from 'mqtt-packet';

export type ProtocolVersion = 4 | 5;

/** MQTT 5 application properties of a PUBLISH, carried to MQTT 5 subscribers. */
export interface PublishProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/** A message accepted by the broker. */
export interface Message {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  properties?: PublishProperties;
  /** Epoch ms after which it is not delivered (MQTT 5 Message Expiry Interval). */
  expiresAt?: number;
  /** Client id of the publishing connection; none for the service's own messages. */
  from?: string;
}

/** One subscription of a session. */
export interface Subscription {
  /** The filter as the client sent it (`$share/<name>/<filter>` for a shared subscription). */
  filter: string;
  /** The topic filter messages are matched against. */
  topicFilter: string;
  /** Share name of a shared subscription. */
  share?: string;
  qos: 0 | 1;
  noLocal: boolean;
  retainAsPublished: boolean;
}

export class Session {
  readonly subscriptions = new Map<string, Subscription>();
  /** QoS 1 messages waiting for the connection or for room in its in-flight window. */
  readonly pending: Message[] = [];
  /** QoS 1 messages sent and not yet acknowledged, by packet identifier, with when they were sent. */
  readonly inflight = new Map<number, { message: Message; sentAt: number }>();
  expiryTimer?: NodeJS.Timeout;
  private nextPacketId = 1;

  constructor(
    readonly clientId: string,
    readonly version: ProtocolVersion,
    /** Seconds the session outlives its connection (0: it ends with it). */
    public expirySeconds: number,
  ) {}

  get persistent(): boolean {
    return this.expirySeconds > 0;
  }

  /** A packet identifier not in flight. */
  packetId(): number {
    for (let tries = 0; tries < 65535; tries++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    throw new Error('no free packet identifier');
  }

  /** Drops what expired: messages past their expiry, and in-flight messages older than `retryMs`. */
  prune(now: number, retryMs: number): void {
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const e = this.pending[i].expiresAt;
      if (e !== undefined && e <= now) this.pending.splice(i, 1);
    }
    for (const [id, f] of this.inflight) if (now - f.sentAt > retryMs) this.inflight.delete(id);
  }
}
