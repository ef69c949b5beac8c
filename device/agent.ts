/**
 * One simulated device following the AWS IoT device contract: it enrolls by claim (see
 * enrollment.ts and provisioning-client.ts), keeps the issued identity, and then holds a session
 * as its thing: client id = thing name, its own certificate, a Last Will on its health topic.
 * Capabilities that run on the thing session (telemetry, jobs, commands, rotation) build on
 * {@link DeviceAgent.session} and {@link DeviceAgent.identityAfterEnrollment}.
 */
import { DEFAULT_TOPIC_PREFIX } from '../core/model';
import { LAST_WILL_PAYLOAD } from '../core/telemetry';
import { topics } from '../core/topics';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  Enrollment,
  type EnrollmentOptions,
  type EnrollmentResult,
} from './enrollment';
import { DEFAULT_MQTT_VERSION } from './mqtt-protocol';
import { MqttSession, type LastWill, type MqttVersion } from './mqtt-session';
import { storeThingIdentity, type ThingIdentity } from './thing-identity';

export type { Endpoint, MqttVersion, TlsCredentials } from './mqtt-session';
export type { EnrollmentMethod } from './provisioning-client';
export type { DeviceFaults } from './faults';
export {
  classifyFailure,
  type AgentEvent,
  type DeniedResult,
  type EnrolledResult,
  type EnrollmentResult,
  type FailureClass,
  type GaveUpResult,
} from './enrollment';

export interface AgentOptions extends EnrollmentOptions {
  /** Topic prefix of the `dt/<prefix>/<thing>/…` topics. @default {@link DEFAULT_TOPIC_PREFIX} */
  topicPrefix?: string;
  /** Register a Last Will `{"connection":"lost"}` on `dt/<prefix>/<thing>/health`. @default true */
  lastWill?: boolean;
  /** Also write `<thing>.cert.pem`, `<thing>.private.key` and `<thing>.json` here (mode 0600). */
  certDir?: string;
  /** Keep the thing session open after enrollment (close it with {@link DeviceAgent.close}). @default false */
  keepConnected?: boolean;
}

/** The Last Will payload (core's LAST_WILL_PAYLOAD): the broker publishes it on the health topic when the session drops. */
export const LAST_WILL_TEXT = JSON.stringify(LAST_WILL_PAYLOAD);

/**
 * A simulated device. One instance enrolls once. Once `enroll()` has returned, the agent holds
 * no socket and no timer, except the thing session kept with `keepConnected`, which `close()` ends.
 */
export class DeviceAgent {
  readonly serial: string;
  private thingSession?: MqttSession;
  private thing?: ThingIdentity;

  constructor(private readonly options: AgentOptions) {
    this.serial = options.identity.serial;
  }

  /** Thing name and credentials once enrolled (the private key never leaves this object otherwise). */
  get identityAfterEnrollment(): ThingIdentity | undefined {
    return this.thing;
  }

  /** The open thing session, when `keepConnected` is set. */
  get session(): MqttSession | undefined {
    return this.thingSession;
  }

  /** Firmware the unit left the factory with. */
  get firmware(): string {
    return this.options.identity.firmware;
  }

  /** The MQTT version of its sessions. */
  get mqttVersion(): MqttVersion {
    return this.options.mqttVersion ?? DEFAULT_MQTT_VERSION;
  }

  /** Topic prefix of its `dt/<prefix>/<thing>/…` topics. */
  get topicPrefix(): string {
    return this.options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
  }

  /**
   * Open a new thing session (after the previous one dropped), with the same client id,
   * certificate and Last Will; any session still held is cut first. One attempt: throws a
   * TransportError when it fails. Only after a successful enrollment.
   */
  async reconnect(): Promise<MqttSession> {
    if (!this.thing) throw new Error(`device ${this.serial} is not enrolled: nothing to reconnect as`);
    this.dropConnection();
    const session = await this.openThingSession(this.thing);
    this.thingSession = session;
    return session;
  }

  /** Run enrollment end to end. Never throws for protocol outcomes. */
  async enroll(): Promise<EnrollmentResult> {
    const result = await new Enrollment(this.options).run({
      issued: async (identity) => {
        this.thing = identity;
        if (this.options.certDir) await storeThingIdentity(this.options.certDir, this.serial, identity);
      },
      connectAsThing: async (identity) => {
        this.thingSession = await this.openThingSession(identity);
      },
    });
    if (result.outcome === 'enrolled' && !this.options.keepConnected) await this.close();
    return result;
  }

  /** Close the thing session gracefully (no last will). Safe to call in any state. */
  async close(): Promise<void> {
    const s = this.thingSession;
    this.thingSession = undefined;
    if (s) await s.end();
  }

  /** Drop the thing session abruptly, so the broker publishes the last will. */
  dropConnection(): void {
    const s = this.thingSession;
    this.thingSession = undefined;
    s?.kill();
  }

  /** A session as the thing: client id = thing name, its own certificate, optional Last Will. */
  private openThingSession(identity: ThingIdentity): Promise<MqttSession> {
    const o = this.options;
    const will: LastWill | undefined =
      o.lastWill === false
        ? undefined
        : {
            topic: topics.health(o.topicPrefix ?? DEFAULT_TOPIC_PREFIX, identity.thingName),
            payload: LAST_WILL_TEXT,
          };
    return MqttSession.open({
      endpoint: o.endpoint,
      credentials: identity.credentials,
      clientId: identity.thingName,
      connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      will,
      mqttVersion: o.mqttVersion,
    });
  }
}
