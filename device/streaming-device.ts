/**
 * An enrolled device streaming telemetry and health on its thing session, with the behaviour of
 * the profile its firmware selects (profiles.ts), and a ledger of every message (ledger.ts).
 *
 * ```
 *            boot (POWER_ON | REQUESTED | WATCHDOG | PANIC)
 *              │  readings every readingIntervalMs → batches of readingsPerMessage → buffer
 *              │  health every healthIntervalMs, and once after each connect → buffer
 *              ▼
 *  connecting ──ok──→ online: the buffer drains oldest first, one QoS 1 PUBLISH at a time
 *    ▲   │ failed: full-jitter backoff      │ link drop (flaky) or lost: socket cut, Last Will
 *    │   ▼                                  ▼
 *    └── offline (readings keep going into the buffer; full → oldest dropped)
 *
 *  crash (crash-looping) / reboot on request: down for rebootMs, then a new boot
 * ```
 *
 * Time comes from the {@link Scheduler}: with a ManualScheduler nothing happens until the test
 * advances the clock, and every random draw comes from the injected random source. A deliberate
 * link drop or crash waits for the PUBLISH in flight to be acked first, so what the ledger says
 * was acked reached AWS IoT exactly once; only a link lost by itself can leave a message whose
 * fate is unknown (it is re-sent, `attempts > 1`).
 */
import { EventEmitter } from 'node:events';
import { FIRMWARE_PATTERN } from '../core/model';
import type { HealthReport, ResetReason, TelemetryPayload } from '../core/telemetry';
import { fullJitterDelayMs, type BackoffOptions, type RandomFn } from './backoff';
import type { DeviceAgent } from './agent';
import { classifyFailure } from './enrollment';
import { checkRoute, dataTopics, type DataRoute, type DataTopics } from './data-topics';
import { Boot, newBootId, PROFILE_CONDITIONS } from './health';
import { DeviceLedger, type DataKind, type LedgerKey } from './ledger';
import { TransportError, type MqttSession, type MqttVersion } from './mqtt-session';
import { Outbox, type OutboxItem } from './outbox';
import {
  BEHAVIOUR_PROFILES,
  isBehaviourProfile,
  profileFor,
  resolveProfileSettings,
  type BehaviourProfile,
  type FirmwareProfiles,
  type ProfileSettings,
} from './profiles';
import type { Cancel, Scheduler } from './scheduler';
import { seededRandom } from './seeded-random';
import { checkReadingsPerMessage, environmentSensor, TelemetryBatcher, type Sensor } from './telemetry';

/** What to stream and how (shared by every device of a fleet). */
export interface StreamSettings {
  /** Time between two readings. @default 10000 */
  readingIntervalMs?: number;
  /** Readings per telemetry message (1 to 100). @default 6 */
  readingsPerMessage?: number;
  /** Time between two health reports (one more follows every connect). @default 300000 */
  healthIntervalMs?: number;
  /** `basicIngest` (default: no messaging charge) needs `rules`; `direct` publishes on `dt/…`. */
  delivery?: DataRoute['delivery'];
  /** Rule name per record type (the stack's TelemetryRules output). */
  rules?: DataRoute['rules'];
  /** Messages the buffer holds before the oldest is dropped. @default 100 */
  bufferMessages?: number;
  /** Profile per firmware version. @default every firmware `defaultProfile` */
  profiles?: FirmwareProfiles;
  /** Profile of a firmware not in `profiles`. @default 'healthy' */
  defaultProfile?: BehaviourProfile;
  profileSettings?: Parameters<typeof resolveProfileSettings>[0];
  /** Reconnect backoff after a failed connect. @default { baseMs: 1000, capMs: 30000 } */
  reconnectBackoff?: Partial<Pick<BackoffOptions, 'baseMs' | 'capMs'>>;
  /** Real-time bound on draining the buffer before a requested reboot or a stop. @default 10000 */
  drainTimeoutMs?: number;
}

export interface StreamingDeviceOptions extends StreamSettings {
  /** An enrolled agent; its open thing session (keepConnected) is used as is. */
  agent: DeviceAgent;
  scheduler: Scheduler;
  /** @default seeded by the serial */
  random?: RandomFn;
  /** @default environmentSensor with its own random source */
  sensor?: Sensor;
  /** Delay of the first reading after the first boot (spreads a fleet's readings). @default readingIntervalMs */
  firstReadingDelayMs?: number;
}

export type StreamEvent =
  | {
      type: 'boot';
      thing: string;
      bootId: string;
      resetReason: ResetReason;
      firmware: string;
      profile: BehaviourProfile;
    }
  | { type: 'online'; thing: string; bootId: string }
  | { type: 'offline'; thing: string; cause: 'drop' | 'crash' | 'reboot' | 'lost' | 'stop' }
  | { type: 'connectFailed'; thing: string; error: string; retryInMs: number }
  | { type: 'acked' | 'dropped' | 'failed'; thing: string; key: LedgerKey }
  | { type: 'stopped'; thing: string };

export const STREAM_DEFAULTS = {
  readingIntervalMs: 10_000,
  readingsPerMessage: 6,
  healthIntervalMs: 300_000,
  bufferMessages: 100,
  drainTimeoutMs: 10_000,
  reconnectBackoff: { baseMs: 1_000, capMs: 30_000 },
} as const;

/** A session that lasts this long is not a sign of a refusal: a loss after it reconnects at once. */
const STABLE_SESSION_MS = 10_000;

type Power = 'running' | 'down' | 'stopped';
type Link = 'online' | 'connecting' | 'offline';

function checkInterval(name: string, ms: number): number {
  if (!Number.isFinite(ms) || ms < 1) throw new Error(`${name} must be at least 1 ms, got ${ms}`);
  return ms;
}

/**
 * Throws what a device would throw for these settings, before any device exists: call it before
 * enrolling, so a bad setting never leaves a fleet enrolled and silent.
 */
export function checkStreamSettings(settings: StreamSettings): void {
  checkRoute({ delivery: settings.delivery, rules: settings.rules, topicPrefix: 'x' });
  checkInterval('readingIntervalMs', settings.readingIntervalMs ?? STREAM_DEFAULTS.readingIntervalMs);
  checkInterval('healthIntervalMs', settings.healthIntervalMs ?? STREAM_DEFAULTS.healthIntervalMs);
  checkReadingsPerMessage(settings.readingsPerMessage ?? STREAM_DEFAULTS.readingsPerMessage);
  new Outbox(settings.bufferMessages ?? STREAM_DEFAULTS.bufferMessages);
  resolveProfileSettings(settings.profileSettings);
  for (const [fw, profile] of Object.entries(settings.profiles ?? {})) {
    if (!FIRMWARE_PATTERN.test(fw))
      throw new Error(`profiles: "${fw}" is not a firmware version; use MAJOR.MINOR.PATCH[-pre]`);
    if (!isBehaviourProfile(profile))
      throw new Error(`profiles: "${profile}" is not a profile; use one of ${BEHAVIOUR_PROFILES.join(', ')}`);
  }
}

/** Short form of an error, the same for every device that failed the same way. */
function shortError(err: unknown): string {
  return classifyFailure(err).cause;
}

/** A PUBLISH the broker refused with a reason code that retrying will not change. */
function refusedForGood(err: unknown): boolean {
  return (
    err instanceof TransportError && err.failure === 'PUBLISH_REFUSED' && !classifyFailure(err).retryable
  );
}

export class StreamingDevice extends EventEmitter {
  readonly thing: string;
  readonly serial: string;
  readonly ledger: DeviceLedger;
  private readonly agent: DeviceAgent;
  /** When the current session came up (scheduler time). */
  private onlineAt?: number;
  /** Sessions in a row the broker ended within {@link STABLE_SESSION_MS}. */
  private shortSessions = 0;
  private readonly scheduler: Scheduler;
  private readonly random: RandomFn;
  private readonly sensor: Sensor;
  private readonly topics: DataTopics;
  private readonly settings: ProfileSettings;
  private readonly readingIntervalMs: number;
  private readonly healthIntervalMs: number;
  private readonly drainTimeoutMs: number;
  private readonly backoff: Pick<BackoffOptions, 'baseMs' | 'capMs'>;
  private readonly profiles: FirmwareProfiles;
  private readonly defaultProfile: BehaviourProfile;
  private readonly batcher: TelemetryBatcher;
  private readonly outbox: Outbox;
  private readonly firstReadingDelayMs: number;

  private fw: string;
  private boot?: Boot;
  private power: Power = 'down';
  private link: Link = 'offline';
  private session?: MqttSession;
  /** Sessions this device ended itself (their close is not a lost link). */
  private readonly endedByUs = new WeakSet<MqttSession>();
  private bootTimers: Cancel[] = [];
  private linkTimers: Cancel[] = [];
  private lastReadingTs = 0;
  private lastHealthTs = 0;
  /** Link operations (connect, drop, crash, reboot, stop) run one at a time, in order. */
  private ops: Promise<void> = Promise.resolve();
  private opsQueued = 0;
  private hold = 0;
  private pumping?: Promise<void>;
  private acks = 0;
  private started = false;
  private stopping = false;
  private idleWaiters: Array<() => void> = [];
  private settledWaiters: Array<() => void> = [];

  constructor(options: StreamingDeviceOptions) {
    super();
    const identity = options.agent.identityAfterEnrollment;
    if (!identity) throw new Error(`device ${options.agent.serial} is not enrolled: it cannot stream`);
    checkStreamSettings(options);
    this.agent = options.agent;
    this.thing = identity.thingName;
    this.serial = options.agent.serial;
    this.ledger = new DeviceLedger(this.thing);
    this.scheduler = options.scheduler;
    this.random = options.random ?? seededRandom(`device:${this.serial}`);
    this.sensor = options.sensor ?? environmentSensor(seededRandom(`sensor:${this.serial}:${this.random()}`));
    this.topics = dataTopics(
      { delivery: options.delivery, rules: options.rules, topicPrefix: options.agent.topicPrefix },
      this.thing,
    );
    this.settings = resolveProfileSettings(options.profileSettings);
    this.readingIntervalMs = checkInterval(
      'readingIntervalMs',
      options.readingIntervalMs ?? STREAM_DEFAULTS.readingIntervalMs,
    );
    this.healthIntervalMs = checkInterval(
      'healthIntervalMs',
      options.healthIntervalMs ?? STREAM_DEFAULTS.healthIntervalMs,
    );
    this.drainTimeoutMs = options.drainTimeoutMs ?? STREAM_DEFAULTS.drainTimeoutMs;
    this.backoff = { ...STREAM_DEFAULTS.reconnectBackoff, ...options.reconnectBackoff };
    this.profiles = options.profiles ?? {};
    this.defaultProfile = options.defaultProfile ?? 'healthy';
    this.batcher = new TelemetryBatcher(options.readingsPerMessage ?? STREAM_DEFAULTS.readingsPerMessage);
    this.outbox = new Outbox(options.bufferMessages ?? STREAM_DEFAULTS.bufferMessages);
    this.firstReadingDelayMs = Math.max(0, options.firstReadingDelayMs ?? this.readingIntervalMs);
    this.fw = options.agent.firmware;
  }

  /** Firmware running now. */
  get firmware(): string {
    return this.fw;
  }

  /** MQTT version of its sessions (the agent's). */
  get mqttVersion(): MqttVersion {
    return this.agent.mqttVersion;
  }

  /** Profile of the firmware running now. */
  get profile(): BehaviourProfile {
    return profileFor(this.fw, this.profiles, this.defaultProfile);
  }

  get bootId(): string | undefined {
    return this.boot?.bootId;
  }

  get online(): boolean {
    return this.link === 'online';
  }

  /**
   * The device's MQTT session while it is online (its only connection: AWS IoT ends an older one
   * that shares the client id). Each new one is also announced with a `session` event, so a
   * client on the same connection (the Jobs client) can follow it across reboots and reconnects.
   */
  get connection(): MqttSession | undefined {
    return this.link === 'online' ? this.session : undefined;
  }

  /** Messages waiting in the buffer (the one in flight not included). */
  get buffered(): number {
    return this.outbox.length;
  }

  /** Topics it publishes on. */
  get dataTopics(): DataTopics {
    return { ...this.topics };
  }

  /**
   * The first boot (POWER_ON): readings and health start; the thing session enrollment left open
   * is used, else the device connects.
   */
  start(): void {
    if (this.started) throw new Error(`device ${this.thing} was already started`);
    this.started = true;
    const session = this.agent.session;
    this.startBoot('POWER_ON', this.firstReadingDelayMs);
    if (session?.connected) {
      this.ledger.connected();
      this.goOnline(session);
    } else this.connectLater(0, 0);
  }

  /**
   * Install `version` and reboot into it (reset reason REQUESTED): the buffer is drained, the
   * session closed with DISCONNECT (no Last Will), and after `rebootMs` the device boots running
   * `version` with that version's profile. Resolves once the device is down.
   */
  setFirmware(version: string): Promise<void> {
    if (!FIRMWARE_PATTERN.test(version))
      return Promise.reject(
        new Error(`"${version}" is not a firmware version; use MAJOR.MINOR.PATCH[-pre], e.g. 1.2.0`),
      );
    return this.reboot('REQUESTED', version);
  }

  /** Reboot on request (reset reason REQUESTED), optionally into another firmware. Resolves once down. */
  reboot(reason: ResetReason = 'REQUESTED', firmware?: string): Promise<void> {
    return this.op(async () => {
      if (this.power !== 'running') return;
      this.cancel(this.bootTimers);
      this.enqueueTelemetry(this.batcher.flush());
      await this.drain();
      await this.quiesced(async () => {
        this.cancel(this.linkTimers);
        await this.endSession('closed');
        this.goDown('reboot');
      });
      if (firmware) this.fw = firmware;
      this.bootTimers.push(
        this.scheduler.after(this.settings.rebootMs, () => this.op(async () => this.bootAgain(reason))),
      );
    });
  }

  /**
   * Stop for good: no more readings; the batch in progress is sent as a shorter message, the
   * buffer drained while the link is up (bounded by `drainTimeoutMs`), then the session closed
   * with DISCONNECT. Whatever is still buffered stays `pending` in the ledger.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.ops;
    this.stopping = true;
    this.cancel(this.bootTimers);
    this.cancel(this.linkTimers);
    return this.op(
      async () => {
        if (this.power === 'running') this.enqueueTelemetry(this.batcher.flush());
        if (this.link === 'online') await this.drain();
        await this.quiesced(async () => {
          this.cancel(this.bootTimers);
          this.cancel(this.linkTimers);
          if (this.session) {
            await this.endSession('closed');
            this.emitEvent({ type: 'offline', thing: this.thing, cause: 'stop' });
          }
          this.link = 'offline';
          this.power = 'stopped';
        });
        this.emitEvent({ type: 'stopped', thing: this.thing });
      },
      { evenWhenStopping: true },
    );
  }

  /**
   * Resolves when nothing is left to do right now: online with an empty buffer and nothing in
   * flight (or stopped), and no link operation queued. Time-driven work (the next reading, a
   * reconnect in backoff) is not waited for: advance the scheduler for that.
   */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Resolves when no work is under way right now: no link operation queued or running and no
   * PUBLISH in flight, whatever the link state. With a ManualScheduler: advance, then await this.
   */
  whenSettled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  isSettled(): boolean {
    return this.opsQueued === 0 && !this.pumping;
  }

  isIdle(): boolean {
    if (this.opsQueued > 0 || this.pumping) return false;
    if (this.power === 'stopped') return true;
    return this.link === 'online' && this.outbox.length === 0;
  }

  // ---- boots ----------------------------------------------------------------------------------

  private startBoot(reason: ResetReason, firstReadingDelayMs: number): void {
    const first = this.boot === undefined;
    const lost = this.batcher.reboot();
    if (lost > 0) this.ledger.readingsLost(lost);
    const profile = this.profile;
    this.boot = new Boot(
      newBootId(this.random),
      this.scheduler.now(),
      reason,
      this.fw,
      PROFILE_CONDITIONS[profile],
    );
    this.power = 'running';
    this.ledger.booted(this.boot.bootId, first ? undefined : reason);
    this.emitEvent({
      type: 'boot',
      thing: this.thing,
      bootId: this.boot.bootId,
      resetReason: reason,
      firmware: this.fw,
      profile,
    });
    this.every(this.bootTimers, firstReadingDelayMs, this.readingIntervalMs, () => this.takeReading());
    this.every(this.bootTimers, this.healthIntervalMs, this.healthIntervalMs, () => this.reportHealth());
    if (profile === 'crash-looping')
      this.bootTimers.push(
        this.scheduler.after(this.settings.crashLooping.crashEveryMs, () =>
          this.crash(this.settings.crashLooping.crashReason),
        ),
      );
  }

  private bootAgain(reason: ResetReason): void {
    if (this.stopping) return;
    this.startBoot(reason, this.readingIntervalMs);
    this.connectLater(0, 0);
  }

  /**
   * A crash, now: readings stop, the batch in progress is lost, nothing more is sent; then the
   * session dies without DISCONNECT (Last Will) once the PUBLISH in flight has settled.
   */
  private crash(reason: ResetReason): void {
    if (this.power !== 'running') return;
    this.power = 'down';
    this.cancel(this.bootTimers);
    this.cancel(this.linkTimers);
    const lost = this.batcher.reboot();
    if (lost > 0) this.ledger.readingsLost(lost);
    this.hold++;
    this.bootTimers.push(
      this.scheduler.after(this.settings.rebootMs, () => this.op(async () => this.bootAgain(reason))),
    );
    void this.op(
      async () => {
        try {
          await this.pumping;
          if (this.session) await this.endSession('abrupt');
          this.link = 'offline';
          this.emitEvent({ type: 'offline', thing: this.thing, cause: 'crash' });
        } finally {
          this.hold--;
        }
      },
      { evenWhenStopping: true },
    );
  }

  private goDown(cause: 'reboot'): void {
    this.power = 'down';
    this.link = 'offline';
    this.emitEvent({ type: 'offline', thing: this.thing, cause });
  }

  // ---- link -----------------------------------------------------------------------------------

  private connectLater(delayMs: number, retry: number): void {
    this.linkTimers.push(this.scheduler.after(delayMs, () => this.op(() => this.connect(retry))));
  }

  private async connect(retry: number): Promise<void> {
    if (this.power !== 'running' || this.link === 'online') return;
    this.link = 'connecting';
    let session: MqttSession;
    try {
      session = await this.agent.reconnect();
    } catch (err) {
      this.link = 'offline';
      const error = shortError(err);
      this.ledger.connectFailed(error);
      const retryInMs = fullJitterDelayMs(retry, this.backoff, this.random);
      this.emitEvent({ type: 'connectFailed', thing: this.thing, error, retryInMs });
      if (!this.stopping && this.power === 'running') this.connectLater(retryInMs, retry + 1);
      return;
    }
    this.ledger.connected();
    if (this.stopping || this.power !== 'running') {
      // Stopped (DISCONNECT) or crashed (cut) while connecting: this session is not wanted.
      this.session = session;
      await this.endSession(this.stopping ? 'closed' : 'abrupt');
      this.link = 'offline';
      return;
    }
    this.goOnline(session);
  }

  private goOnline(session: MqttSession): void {
    this.session = session;
    this.link = 'online';
    this.onlineAt = this.scheduler.now();
    void session.whenClosed.then(() => this.onSessionClosed(session));
    this.emit('session', session);
    this.emitEvent({ type: 'online', thing: this.thing, bootId: this.boot!.bootId });
    this.reportHealth();
    if (this.profile === 'flaky') {
      const f = this.settings.flaky;
      this.linkTimers.push(
        this.scheduler.after(f.dropEveryMs * (0.5 + this.random()), () => this.op(() => this.dropLink())),
      );
    }
    this.pump();
  }

  /** Flaky link: the socket dies without DISCONNECT; the broker publishes the Last Will. */
  private async dropLink(): Promise<void> {
    if (this.link !== 'online') return;
    await this.quiesced(async () => {
      if (this.link !== 'online' || !this.session) return;
      this.cancel(this.linkTimers);
      await this.endSession('abrupt');
      this.link = 'offline';
      this.emitEvent({ type: 'offline', thing: this.thing, cause: 'drop' });
      this.connectLater(this.settings.flaky.offlineMs, 0);
    });
  }

  /** A session closed: unless this device ended it, the link was lost, so it reconnects. */
  private onSessionClosed(session: MqttSession): void {
    if (this.endedByUs.has(session) || this.session !== session) return;
    this.session = undefined;
    this.agent.dropConnection();
    this.ledger.ended('lost', session.serverDisconnect);
    this.cancel(this.linkTimers);
    this.link = 'offline';
    this.emitEvent({ type: 'offline', thing: this.thing, cause: 'lost' });
    if (!this.stopping && this.power === 'running') {
      // A session the broker ends soon after it began (a policy refusal on the first publish, a
      // duplicate client id) would otherwise be reopened at once, over and over: such losses in a
      // row widen the backoff window as failed connects do; a session that lasted resets it.
      const short = this.onlineAt !== undefined && this.scheduler.now() - this.onlineAt < STABLE_SESSION_MS;
      this.shortSessions = short ? this.shortSessions + 1 : 0;
      this.connectLater(
        fullJitterDelayMs(this.shortSessions, this.backoff, this.random),
        this.shortSessions + 1,
      );
    }
    this.checkIdle();
  }

  /** End the current session: `abrupt` cuts the socket (Last Will), `closed` sends DISCONNECT. */
  private async endSession(how: 'abrupt' | 'closed'): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    this.endedByUs.add(session);
    this.ledger.ended(session.connected ? how : 'lost');
    if (how === 'abrupt') {
      this.agent.dropConnection();
      await session.whenClosed;
    } else await this.agent.close();
  }

  // ---- messages -------------------------------------------------------------------------------

  private takeReading(): void {
    const ts = Math.max(this.scheduler.now(), this.lastReadingTs + 1);
    this.lastReadingTs = ts;
    this.enqueueTelemetry(this.batcher.add({ ts, values: this.sensor(ts) }));
  }

  private reportHealth(): void {
    if (!this.boot || this.power !== 'running') return;
    const ts = Math.max(this.scheduler.now(), this.lastHealthTs + 1);
    this.lastHealthTs = ts;
    const report: HealthReport = this.boot.report(ts, this.random);
    this.enqueue('health', report, { ts });
  }

  private enqueueTelemetry(payload: TelemetryPayload | undefined): void {
    if (payload)
      this.enqueue('telemetry', payload, {
        ts: payload.readings[0].ts,
        seq: payload.seq,
        readings: payload.readings.length,
      });
  }

  private enqueue(
    kind: DataKind,
    payload: TelemetryPayload | HealthReport,
    id: { ts: number; seq?: number; readings?: number },
  ): void {
    const topic = this.topics[kind];
    const key = this.ledger.created(
      { kind, ...id, bootId: this.boot!.bootId, topic },
      this.link !== 'online',
    );
    this.dropAll(this.outbox.push({ key, topic, payload: JSON.stringify(payload) }));
    this.pump();
  }

  private dropAll(evicted: OutboxItem[]): void {
    for (const item of evicted) {
      this.ledger.dropped(item.key);
      this.emitEvent({ type: 'dropped', thing: this.thing, key: item.key });
    }
  }

  /** Send the buffer, oldest first, one PUBLISH at a time, while online and not held. */
  private pump(): void {
    if (this.pumping || this.hold > 0 || this.link !== 'online' || this.outbox.length === 0) return;
    this.pumping = (async () => {
      while (this.hold === 0 && this.link === 'online' && this.session) {
        const session = this.session;
        const item = this.outbox.shift();
        if (!item) break;
        this.ledger.sent(item.key);
        try {
          await session.publish(item.topic, item.payload, 1);
        } catch (err) {
          if (refusedForGood(err)) {
            // MQTT 5: the broker answered and will answer the same again; the link is fine.
            this.ledger.refused(item.key, shortError(err));
            this.emitEvent({ type: 'dropped', thing: this.thing, key: item.key });
            continue;
          }
          this.ledger.failed(item.key, shortError(err));
          this.emitEvent({ type: 'failed', thing: this.thing, key: item.key });
          this.dropAll(this.outbox.requeue(item));
          // Do not wait for the close event: the link is down now.
          if (!session.connected) this.onSessionClosed(session);
          break;
        }
        this.acks++;
        this.ledger.acked(item.key);
        this.emitEvent({ type: 'acked', thing: this.thing, key: item.key });
      }
    })().finally(() => {
      this.pumping = undefined;
      this.checkIdle();
    });
  }

  /** Wait (bounded by drainTimeoutMs of real time) until the buffer is empty or the link is down. */
  private async drain(): Promise<void> {
    const deadline = Date.now() + this.drainTimeoutMs;
    while (this.link === 'online' && (this.outbox.length > 0 || this.pumping) && Date.now() < deadline) {
      this.pump();
      const pumping = this.pumping;
      if (!pumping) break;
      const acksBefore = this.acks;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pumping,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      // No progress (a PUBLISH failed): the link is going down; do not spin.
      if (this.acks === acksBefore && this.pumping === undefined) break;
    }
  }

  /** Run `fn` with sending held and the PUBLISH in flight settled. */
  private async quiesced(fn: () => Promise<void>): Promise<void> {
    this.hold++;
    try {
      await this.pumping;
      await fn();
    } finally {
      this.hold--;
      this.pump();
    }
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /** Queue a link operation; it runs after the ones before it. Skipped once stopping, unless told. */
  private op(fn: () => Promise<void> | void, o: { evenWhenStopping?: boolean } = {}): Promise<void> {
    this.opsQueued++;
    const run = async (): Promise<void> => {
      try {
        if (!this.stopping || o.evenWhenStopping) await fn();
      } finally {
        this.opsQueued--;
        this.checkIdle();
      }
    };
    const p = this.ops.then(run);
    // A failing operation is a simulator bug: surface it (an 'error' event, which throws when
    // nobody listens), but keep the chain, and so later operations, running.
    this.ops = p.then(
      () => undefined,
      (err: unknown) => queueMicrotask(() => this.emit('error', err)),
    );
    return p;
  }

  /** Run `task` after `firstMs` and then every `periodMs`, on the planned times (no drift). */
  private every(timers: Cancel[], firstMs: number, periodMs: number, task: () => void): void {
    let planned = this.scheduler.now() + firstMs;
    let current: Cancel;
    const tick = (): void => {
      task();
      planned += periodMs;
      current = this.scheduler.after(planned - this.scheduler.now(), tick);
    };
    current = this.scheduler.after(firstMs, tick);
    timers.push(() => current());
  }

  private cancel(timers: Cancel[]): void {
    for (const c of timers.splice(0)) c();
  }

  private emitEvent(e: StreamEvent): void {
    this.emit(e.type, e);
    this.emit('event', e);
  }

  private checkIdle(): void {
    if (this.settledWaiters.length > 0 && this.isSettled())
      for (const resolve of this.settledWaiters.splice(0)) resolve();
    if (this.idleWaiters.length > 0 && this.isIdle())
      for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
