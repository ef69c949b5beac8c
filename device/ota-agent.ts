/**
 * The simulator's OTA agent: it runs the firmware-update jobs AWS IoT Jobs hands the device, one
 * at a time, with an A/B pair of slots.
 *
 * ```
 *  notify-next / start ─→ start-next (IN_PROGRESS, step timer)
 *     │ document not a firmware update, or hwRev not listed ─→ REJECTED
 *     ▼
 *  download ─→ verify (size, sha256, ECDSA P-256) ─→ install (inactive slot)
 *     ─→ reboot (trial boot of the inactive slot) ─→ selftest ─→ commit ─→ SUCCEEDED
 *  any failure ─→ FAILED with the step and reason; the previous slot stays (or is booted again)
 *  notify-next naming another job, or none, while one runs ─→ force-canceled: abort and revert
 * ```
 *
 * Every IN_PROGRESS report carries `step` and `progress` (overall percent) in `statusDetails`
 * and renews the step timer (`stepTimeoutInMinutes`), so a device that stops answering ends
 * TIMED_OUT on the service side. Updates use `expectedVersion`; a VersionMismatch is recovered by reading the execution
 * again (jobs-client.ts). What each version does on this device comes from its OTA profile
 * (ota-profiles.ts). Composed with a {@link FirmwareHost} (a streaming device), the trial boot and
 * the revert reboot that device into the version, and a silent version stops it.
 */
import type { KeyObject } from 'node:crypto';
import { parseFirmwareJobDocument, type FirmwareJobDocument } from '../core/ota';
import { downloadFirmwareImage, isHwRevCompatible, verifyFirmwareImage } from './firmware-image';
import {
  JobsRejectedError,
  STATUS_DETAILS_LIMITS,
  type DeviceReportedStatus,
  type JobExecution,
  type JobsClient,
  type StatusDetails,
} from './jobs-client';
import {
  decideOtaBehaviour,
  otaDraw,
  otaProfileFor,
  type OtaBehaviour,
  type OtaFirmwareProfiles,
} from './ota-profiles';

/** The steps an IN_PROGRESS report names in `statusDetails.step`. */
export type OtaStep = 'download' | 'verify' | 'install' | 'reboot' | 'selftest';

/** The device the firmware runs on (a StreamingDevice fits through {@link streamingFirmwareHost}). */
export interface FirmwareHost {
  /** Firmware running now. */
  readonly firmware: string;
  /** Reboot into `version` (resolves once the device is down). */
  setFirmware(version: string): Promise<void>;
  /** Stop sending anything at all (the `silent-after-success` profile). */
  goSilent?(): Promise<void>;
}

/** A streaming device as a {@link FirmwareHost}: going silent stops it (no health, no telemetry). */
export function streamingFirmwareHost(device: {
  readonly firmware: string;
  setFirmware(version: string): Promise<void>;
  stop(): Promise<void>;
}): FirmwareHost {
  return {
    get firmware() {
      return device.firmware;
    },
    setFirmware: (v) => device.setFirmware(v),
    goSilent: () => device.stop(),
  };
}

/**
 * What the agent needs of a Jobs transport: the MQTT {@link JobsClient}, or any other transport
 * with the same calls (an HTTPS data-plane client would poll `$next` for `onNextChanged`).
 */
export type OtaJobsTransport = Pick<
  JobsClient,
  'start' | 'onNextChanged' | 'startNext' | 'describe' | 'updateWithVersion'
>;

/** Options of {@link OtaAgent}. */
export interface OtaAgentOptions {
  /** The thing's Jobs client (started or not; the agent starts it). */
  jobs: OtaJobsTransport;
  /** The device's serial (draws of the OTA profiles are per serial). */
  serial: string;
  /** The device's hardware revision, checked against the document's `hwRevs`. */
  hwRev: string;
  /** Firmware on the active slot at start. @default host.firmware */
  firmware?: string;
  /** The release key: ECDSA P-256 public key (PEM or KeyObject). */
  publicKey: string | KeyObject;
  /** The device the firmware runs on. @default none: the slots are the only state */
  host?: FirmwareHost;
  /** OTA profile per version. @default every version `good` */
  profiles?: OtaFirmwareProfiles;
  /** Seed of the profile draws. @default 'ota' */
  seed?: string;
  /** Step timer set with start-next and each IN_PROGRESS report. @default 10 */
  stepTimeoutInMinutes?: number;
  /** Real-time bound on one download. @default 60000 */
  downloadTimeoutMs?: number;
}

/** How one execution ended on the device. */
export interface OtaOutcome {
  jobId: string;
  /** The version the job named (undefined when the document was unreadable). */
  version?: string;
  rollback: boolean;
  /** The version running before. */
  from: string;
  /**
   * What the device reported last: SUCCEEDED, FAILED or REJECTED; `CANCELED` when the service
   * force-canceled it (nothing more reported); `ABANDONED` when the device stopped answering.
   */
  status: 'SUCCEEDED' | 'FAILED' | 'REJECTED' | 'CANCELED' | 'ABANDONED';
  /** The step that failed or was under way. */
  step?: OtaStep;
  reason?: string;
  /** What the profile made this device do. */
  behaviour?: OtaBehaviour;
  /** Updates that hit a VersionMismatch and were sent again after a re-read. */
  versionMismatches: number;
}

/** The A/B slots: which one boots, what each holds, which one is on trial. */
export interface SlotState {
  active: 'A' | 'B';
  slots: { A?: string; B?: string };
  /** The slot booted on trial (not committed yet). */
  trial?: 'A' | 'B';
}

class Canceled extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

class StepFailed extends Error {
  constructor(
    readonly step: OtaStep,
    readonly status: 'FAILED' | 'REJECTED',
    message: string,
  ) {
    super(message);
  }
}

interface Run {
  jobId: string;
  executionNumber?: number;
  versionNumber: number;
  canceled?: string;
  terminal: boolean;
  abort: AbortController;
  mismatches: number;
  step?: OtaStep;
}

/** Rejections that mean the execution is over on the service side (canceled, removed, timed out). */
const GONE = new Set(['TerminalStateReached', 'InvalidStateTransition', 'ResourceNotFound']);

/** A value cut to the statusDetails value limit. */
function detail(text: string): string {
  const max = STATUS_DETAILS_LIMITS.maxValueLength;
  return text.length === 0 ? '-' : text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Overall progress (percent) when each step starts. */
const STEP_PROGRESS: Record<OtaStep, string> = {
  download: '0',
  verify: '40',
  install: '50',
  reboot: '80',
  selftest: '90',
};

/** An execution's identity: its job id and execution number (a retry has a new number). */
function executionKey(e: Pick<JobExecution, 'jobId' | 'executionNumber'>): string {
  return `${e.jobId}#${e.executionNumber ?? 0}`;
}

/** The other slot. */
function other(slot: 'A' | 'B'): 'A' | 'B' {
  return slot === 'A' ? 'B' : 'A';
}

/**
 * Runs firmware-update jobs for one device. {@link start} subscribes and picks up a pending job;
 * every `notify-next` that announces one starts it. Outcomes are kept in {@link outcomes}.
 */
export class OtaAgent {
  /** Every execution handled, oldest first. */
  readonly outcomes: OtaOutcome[] = [];
  private readonly jobs: OtaJobsTransport;
  private readonly options: OtaAgentOptions;
  private readonly stepTimeout: number;
  private state: SlotState;
  private run?: Run;
  private looping?: Promise<void>;
  private again = false;
  private silenced = false;
  /** Executions this device stopped answering (a retry is a new execution number and runs again). */
  private readonly abandoned = new Set<string>();
  private readonly waiters: Array<{ match: (o: OtaOutcome) => boolean; resolve: (o: OtaOutcome) => void }> =
    [];

  constructor(options: OtaAgentOptions) {
    this.options = options;
    this.jobs = options.jobs;
    this.stepTimeout = options.stepTimeoutInMinutes ?? 10;
    const firmware = options.firmware ?? options.host?.firmware;
    if (!firmware) throw new Error(`OTA agent of ${options.serial}: give firmware or a host`);
    this.state = { active: 'A', slots: { A: firmware } };
  }

  /** Firmware on the committed (booting) slot. */
  get firmware(): string {
    return this.state.slots[this.state.active] ?? '';
  }

  /** A copy of the slot state. */
  get slots(): SlotState {
    return { ...this.state, slots: { ...this.state.slots } };
  }

  /** True once a `silent-after-success` version is installed: the device answers nothing more. */
  get silent(): boolean {
    return this.silenced;
  }

  /** Subscribes (through the Jobs client) and starts any pending execution. */
  async start(): Promise<void> {
    this.jobs.onNextChanged((next) => this.nextChanged(next));
    await this.jobs.start();
    this.kick();
  }

  /** Resolves with the first outcome (past or future) that `match` accepts. */
  waitForOutcome(match: (o: OtaOutcome) => boolean): Promise<OtaOutcome> {
    const seen = this.outcomes.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  /** Resolves once no execution is being handled. */
  async whenIdle(): Promise<void> {
    while (this.looping) await this.looping;
  }

  private nextChanged(next: JobExecution | undefined): void {
    if (this.silenced) return;
    const run = this.run;
    if (run && !run.terminal && next?.jobId !== run.jobId) {
      // The execution under way is no longer next: it was canceled (force) or removed.
      run.canceled = next ? `notify-next announced ${next.jobId}` : 'notify-next announced no job';
      run.abort.abort();
    }
    if (next && !this.abandoned.has(executionKey(next))) this.kick();
  }

  private kick(): void {
    if (this.silenced) return;
    if (this.looping) {
      this.again = true;
      return;
    }
    this.looping = this.loop().finally(() => {
      this.looping = undefined;
      if (this.again && !this.silenced) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.again = false;
      let exec: JobExecution | undefined;
      try {
        exec = await this.jobs.startNext({
          stepTimeoutInMinutes: this.stepTimeout,
          statusDetails: { step: 'download', progress: '0' },
        });
      } catch {
        return; // the link is gone or the service refused: the next notify-next tries again
      }
      if (!exec || this.abandoned.has(executionKey(exec))) return;
      const outcome = await this.execute(exec);
      this.outcomes.push(outcome);
      for (const w of [...this.waiters])
        if (w.match(outcome)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(outcome);
        }
      if (this.silenced || outcome.status === 'ABANDONED') return;
    }
  }

  private async execute(exec: JobExecution): Promise<OtaOutcome> {
    const run: Run = {
      jobId: exec.jobId,
      executionNumber: exec.executionNumber,
      versionNumber: exec.versionNumber,
      terminal: false,
      abort: new AbortController(),
      mismatches: 0,
    };
    this.run = run;
    const from = this.firmware;
    let doc: FirmwareJobDocument | undefined;
    let behaviour: OtaBehaviour | undefined;
    const done = (o: Omit<OtaOutcome, 'jobId' | 'from' | 'versionMismatches' | 'rollback'>): OtaOutcome => ({
      jobId: exec.jobId,
      from,
      rollback: doc?.rollback === true,
      versionMismatches: run.mismatches,
      ...o,
    });
    try {
      let document = exec.jobDocument;
      if (document === undefined) document = (await this.jobs.describe(exec.jobId))?.jobDocument;
      try {
        doc = parseFirmwareJobDocument(document);
      } catch (err) {
        throw new StepFailed('download', 'REJECTED', (err as Error).message);
      }
      if (!isHwRevCompatible(doc, this.options.hwRev))
        throw new StepFailed(
          'download',
          'REJECTED',
          `hardware revision ${this.options.hwRev} is not among ${doc.hwRevs.join(', ')}`,
        );
      behaviour = decideOtaBehaviour(
        otaProfileFor(doc.version, this.options.profiles),
        otaDraw(this.options.seed ?? 'ota', this.options.serial, doc.version),
      );
      if (behaviour === 'hang') {
        // Started (with its step timer), then nothing more: the service times it out.
        this.abandoned.add(executionKey(exec));
        return done({ version: doc.version, status: 'ABANDONED', step: 'download', behaviour });
      }
      await this.installAndCommit(run, doc, behaviour);
      if (behaviour === 'silent-after-success') {
        this.silenced = true;
        await this.options.host?.goSilent?.();
      }
      return done({ version: doc.version, status: 'SUCCEEDED', behaviour });
    } catch (err) {
      if (err instanceof Canceled || run.canceled) {
        await this.revert();
        return done({
          version: doc?.version,
          status: 'CANCELED',
          step: run.step,
          reason: run.canceled ?? (err as Error).message,
          behaviour,
        });
      }
      const failed =
        err instanceof StepFailed
          ? err
          : new StepFailed(run.step ?? 'download', 'FAILED', (err as Error).message);
      await this.revert();
      try {
        await this.report(run, failed.status, {
          step: failed.step,
          reason: detail(failed.message),
          ...(doc ? { firmware: doc.version } : {}),
          running: this.firmware,
        });
      } catch (reportErr) {
        if (reportErr instanceof Canceled || run.canceled)
          return done({
            version: doc?.version,
            status: 'CANCELED',
            step: failed.step,
            reason: failed.message,
          });
      }
      return done({
        version: doc?.version,
        status: failed.status,
        step: failed.step,
        reason: failed.message,
        behaviour,
      });
    } finally {
      this.run = undefined;
    }
  }

  private async installAndCommit(run: Run, doc: FirmwareJobDocument, behaviour: OtaBehaviour): Promise<void> {
    const common = { firmware: doc.version, ...(doc.rollback ? { rollback: 'true' } : {}) };
    const bytes = await this.step(run, 'download', common, () =>
      downloadFirmwareImage(doc.image.url, {
        maxBytes: doc.image.sizeBytes,
        timeoutMs: this.options.downloadTimeoutMs,
        signal: run.abort.signal,
      }),
    );
    await this.step(run, 'verify', common, () => {
      const verdict = verifyFirmwareImage(bytes, doc.image, this.options.publicKey);
      if (!verdict.ok) throw new StepFailed('verify', 'FAILED', `${verdict.check}: ${verdict.reason}`);
      return Promise.resolve();
    });
    const target = other(this.state.active);
    await this.step(run, 'install', common, () => {
      if (behaviour === 'fail-install')
        throw new StepFailed(
          'install',
          'FAILED',
          `writing slot ${target} failed: flash verify error (profile)`,
        );
      this.state.slots[target] = doc.version;
      return Promise.resolve();
    });
    await this.step(run, 'reboot', common, async () => {
      this.state.trial = target;
      await this.options.host?.setFirmware(doc.version);
    });
    await this.step(run, 'selftest', common, () => Promise.resolve());
    this.checkCanceled(run);
    // The service hears SUCCEEDED while the new slot is still on trial; once it has accepted, the
    // trial slot is committed. Refused because the execution was canceled meanwhile: revert.
    await this.report(run, 'SUCCEEDED', { ...common, step: 'commit', slot: target });
    this.state = { active: target, slots: { ...this.state.slots } };
  }

  /** Report IN_PROGRESS for `step` (renewing the step timer), then do it. */
  private async step<T>(run: Run, step: OtaStep, common: StatusDetails, work: () => Promise<T>): Promise<T> {
    this.checkCanceled(run);
    run.step = step;
    await this.report(run, 'IN_PROGRESS', { ...common, step, progress: STEP_PROGRESS[step] });
    this.checkCanceled(run);
    const result = await work().catch((err: unknown) => {
      this.checkCanceled(run);
      throw err;
    });
    this.checkCanceled(run);
    return result;
  }

  private checkCanceled(run: Run): void {
    if (run.canceled) throw new Canceled(run.canceled);
  }

  private async report(run: Run, status: DeviceReportedStatus, details: StatusDetails): Promise<void> {
    if (status !== 'IN_PROGRESS') run.terminal = true;
    try {
      const r = await this.jobs.updateWithVersion(run.jobId, run.versionNumber, {
        status,
        statusDetails: details,
        ...(run.executionNumber !== undefined ? { executionNumber: run.executionNumber } : {}),
        ...(status === 'IN_PROGRESS' ? { stepTimeoutInMinutes: this.stepTimeout } : {}),
      });
      run.versionNumber = r.versionNumber;
      if (r.retried) run.mismatches++;
    } catch (err) {
      if (err instanceof JobsRejectedError && GONE.has(err.code)) {
        run.canceled ??= `${err.code}: ${err.detail}`;
        throw new Canceled(run.canceled);
      }
      throw err;
    }
  }

  /** Back to the committed slot: the inactive slot is cleared; after a trial boot the old slot boots again. */
  private async revert(): Promise<void> {
    const trial = this.state.trial;
    this.state = { active: this.state.active, slots: { [this.state.active]: this.firmware } };
    if (trial) await this.options.host?.setFirmware(this.firmware);
  }
}
