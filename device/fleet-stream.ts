/**
 * Streams telemetry and health from every enrolled unit of a fleet run (the agents `runFleet`
 * kept connected), for a duration or until stopped, with one aggregate ledger.
 *
 * All devices share one {@link Scheduler}: thousands of devices hold one timer between them, not
 * an interval each. First readings are spread over one reading interval so a fleet that enrolled
 * at once does not publish at once.
 */
import type { KeyObject } from 'node:crypto';
import type { DeviceAgent } from './agent';
import { JobsClient } from './jobs-client';
import { ledgerReport, type LedgerReport } from './ledger';
import type { MqttSession } from './mqtt-session';
import { OtaAgent, streamingFirmwareHost } from './ota-agent';
import { streamingProfilesFor, type OtaFirmwareProfiles } from './ota-profiles';
import { TimerScheduler, type Scheduler } from './scheduler';
import { deviceRandom } from './seeded-random';
import { StreamingDevice, STREAM_DEFAULTS, type StreamEvent, type StreamSettings } from './streaming-device';

/** Firmware updates over AWS IoT Jobs: each streaming device runs an {@link OtaAgent}. */
export interface FleetOtaOptions {
  /** The release key devices verify images with: ECDSA P-256 public key (PEM or KeyObject). */
  publicKey: string | KeyObject;
  /** Hardware revision of each unit by serial (checked against a document's `hwRevs`). */
  hwRevOf(serial: string): string;
  /**
   * OTA profile per firmware version. A `crash-after-success` version also runs the
   * `crash-looping` streaming profile once installed (unless `profiles` names another).
   * @default every version `good`
   */
  profiles?: OtaFirmwareProfiles;
  /** Step timer set with start-next and each IN_PROGRESS report, minutes. @default 10 */
  stepTimeoutInMinutes?: number;
  /** Seed of the OTA profile draws. @default the stream's seed */
  seed?: string;
  /** Time a Jobs request waits for its answer (or for the device to be back online), ms. @default 10000 */
  responseTimeoutMs?: number;
  /** A Jobs subscription that failed (the agent tries again on the next connect). @default ignored */
  onError?: (thing: string, err: unknown) => void;
}

export interface StreamFleetOptions extends StreamSettings {
  /** Enrolled agents (e.g. `FleetResult.agents` of a `keepConnected` run). */
  agents: Iterable<DeviceAgent>;
  /** @default a new TimerScheduler (wall time) */
  scheduler?: Scheduler;
  /** Seed of every random draw (values, boot ids, link drops, jitter): same seed, same run. @default random */
  seed?: string;
  /** Stop by itself after this long (scheduler time). @default run until `stop()` */
  durationMs?: number;
  /** Spread first readings uniformly over one reading interval. @default true */
  stagger?: boolean;
  onEvent?: (event: StreamEvent) => void;
  /** Run firmware-update jobs on every device. @default no OTA agent */
  ota?: FleetOtaOptions;
}

export interface FleetStream {
  /** The streaming devices by thing name. */
  readonly devices: ReadonlyMap<string, StreamingDevice>;
  /** The OTA agents by thing name (empty without the `ota` option). */
  readonly otaAgents: ReadonlyMap<string, OtaAgent>;
  /** The seed in use (give it back to replay the run). */
  readonly seed: string;
  /** A snapshot of the aggregate ledger now. */
  ledger(): LedgerReport;
  /** Stop every device (drain, then DISCONNECT); resolves with the final ledger. */
  stop(): Promise<LedgerReport>;
  /** Resolves with the final ledger once the run has stopped (duration over, or `stop()`). */
  readonly done: Promise<LedgerReport>;
  /** Resolves when every device is idle (see StreamingDevice.whenIdle). */
  whenIdle(): Promise<void>;
  /** Resolves when no device has work under way (see StreamingDevice.whenSettled). */
  whenSettled(): Promise<void>;
}

/** Start streaming from `agents`. Throws before any device starts when the settings are wrong. */
export function streamFleet(options: StreamFleetOptions): FleetStream {
  const scheduler = options.scheduler ?? new TimerScheduler();
  const seed = options.seed ?? Math.random().toString(36).slice(2, 10);
  const stagger = options.stagger ?? true;
  const interval = options.readingIntervalMs ?? STREAM_DEFAULTS.readingIntervalMs;
  const devices = new Map<string, StreamingDevice>();
  // Build every device first, so bad settings throw before anything is published.
  const { agents, durationMs, onEvent, ota, ...settings } = options;
  if (ota) settings.profiles = { ...streamingProfilesFor(ota.profiles ?? {}), ...settings.profiles };
  if (durationMs !== undefined && (!Number.isFinite(durationMs) || durationMs < 0))
    throw new Error(`durationMs must be a number ≥ 0, got ${durationMs}`);
  // In serial order, whatever order enrollment finished in: the same seed gives the same run.
  for (const agent of [...agents].sort((a, b) => a.serial.localeCompare(b.serial))) {
    const random = deviceRandom(seed, agent.serial);
    const firstReadingDelayMs = stagger ? 1 + Math.floor(random() * interval) : interval;
    const device = new StreamingDevice({ ...settings, agent, scheduler, random, firstReadingDelayMs });
    if (devices.has(device.thing)) throw new Error(`thing ${device.thing} is given twice`);
    devices.set(device.thing, device);
  }
  const otaAgents = new Map<string, { agent: OtaAgent; jobs: JobsClient }>();
  if (ota) for (const device of devices.values()) otaAgents.set(device.thing, otaAgentFor(device, ota, seed));
  const report = (): LedgerReport =>
    ledgerReport(
      [...devices.values()].map((d) => ({
        ledger: d.ledger,
        serial: d.serial,
        firmware: d.firmware,
        profile: d.profile,
        mqttVersion: d.mqttVersion,
      })),
    );

  let firstError: unknown;
  let cancelDuration: (() => void) | undefined;
  let stopping: Promise<LedgerReport> | undefined;
  let resolveDone!: (r: LedgerReport) => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<LedgerReport>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // Whoever awaits `done` or `stop()` sees a rejection; nobody awaiting is not a second crash.
  done.catch(() => undefined);
  // `done` settles with it too; a rejection (the first device error: a simulator bug) comes once
  // every device has stopped.
  const stop = (): Promise<LedgerReport> => {
    if (!stopping) {
      stopping = (async () => {
        cancelDuration?.();
        await Promise.all([...devices.values()].map((d) => d.stop()));
        await Promise.all(
          [...otaAgents.values()].map(({ agent }) => agent.whenIdle().catch(() => undefined)),
        );
        for (const { jobs } of otaAgents.values()) jobs.close();
        if (firstError) throw firstError;
        return report();
      })();
      stopping.then(resolveDone, rejectDone);
    }
    return stopping;
  };
  for (const device of devices.values()) {
    if (onEvent) device.on('event', onEvent);
    device.on('error', (err: unknown) => {
      firstError ??= err;
      stop().catch(() => undefined);
    });
  }

  for (const [thing, { agent, jobs }] of otaAgents) {
    const device = devices.get(thing)!;
    // The Jobs client rides the device's own session: attached on every (re)connect.
    device.on('session', (session: MqttSession) => {
      jobs.attach(session).catch((err: unknown) => ota?.onError?.(thing, err));
    });
    agent.start().catch((err: unknown) => ota?.onError?.(thing, err));
  }
  for (const device of devices.values()) device.start();
  if (durationMs !== undefined)
    cancelDuration = scheduler.after(durationMs, () => {
      stop().catch(() => undefined);
    });

  return {
    devices,
    otaAgents: new Map([...otaAgents].map(([thing, { agent }]) => [thing, agent])),
    seed,
    ledger: report,
    stop,
    done,
    whenIdle: async () => {
      await Promise.all([...devices.values()].map((d) => d.whenIdle()));
    },
    whenSettled: async () => {
      // Settling one device can start work on none other, but check again until all are settled.
      while (![...devices.values()].every((d) => d.isSettled()))
        await Promise.all([...devices.values()].map((d) => d.whenSettled()));
    },
  };
}

/** An OTA agent for `device`, on a Jobs client that follows the device's session. */
function otaAgentFor(
  device: StreamingDevice,
  ota: FleetOtaOptions,
  seed: string,
): { agent: OtaAgent; jobs: JobsClient } {
  const jobs = new JobsClient(undefined, device.thing, { responseTimeoutMs: ota.responseTimeoutMs });
  const agent = new OtaAgent({
    jobs,
    serial: device.serial,
    hwRev: ota.hwRevOf(device.serial),
    publicKey: ota.publicKey,
    host: streamingFirmwareHost(device),
    profiles: ota.profiles,
    seed: ota.seed ?? seed,
    stepTimeoutInMinutes: ota.stepTimeoutInMinutes,
  });
  return { agent, jobs };
}
