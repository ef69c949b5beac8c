/**
 * Runs many simulated devices in one process with bounded concurrency and summarizes the
 * enrollment: attempted, enrolled, denied by reason, gave up, retries, p50/p99 enrollment time.
 */
import { SingleBar, Presets } from 'cli-progress';
import type { BackoffOptions, RandomFn, SleepFn } from './backoff';
import {
  DeviceAgent,
  type AgentEvent,
  type DeviceFaults,
  type EnrollmentResult,
  type Endpoint,
  type GaveUpResult,
  type MqttVersion,
  type TlsCredentials,
} from './agent';
import { classifyFailure } from './enrollment';
import { faultAgentOptions } from './faults';
import { generateFactoryKey, type FactoryIdentity } from './identity';
import { DEFAULT_MQTT_VERSION, MQTT_VERSIONS } from './mqtt-protocol';

/** One device of a fleet run: its factory identity, optional fault modes and MQTT version. */
export interface DeviceSpec {
  identity: FactoryIdentity;
  faults?: DeviceFaults;
  /** MQTT version of this device's sessions. @default the run's `mqttVersion` */
  mqttVersion?: MqttVersion;
}

export interface ProgressEvent {
  done: number;
  total: number;
  result: DeviceRunResult;
}

export interface RunFleetOptions {
  devices: DeviceSpec[];
  endpoint: Endpoint;
  /** Claim credentials per lot. A device uses its lot's claim (or `faults.wrongLotClaim`'s). */
  claims: Record<string, TlsCredentials>;
  templateName: string;
  /** Devices enrolling at the same time. @default 16 */
  concurrency?: number;
  backoff?: Partial<BackoffOptions>;
  /** Called after each device finishes. */
  onProgress?: (event: ProgressEvent) => void;
  /** Draw a cli-progress bar on stdout: `'auto'` only when stdout is a TTY. @default false */
  progressBar?: boolean | 'auto';
  /** Client id prefix of the claim sessions. @default DEFAULT_CLAIM_CLIENT_ID_PREFIX of core/model.ts */
  claimClientIdPrefix?: string;
  /** Topic prefix of the `dt/<prefix>/<thing>/…` topics. @default DEFAULT_TOPIC_PREFIX of core/model.ts */
  topicPrefix?: string;
  /** @default true */
  lastWill?: boolean;
  /** Directory for the issued certificates and keys (mode 0600). */
  certDir?: string;
  /** Keep each enrolled device's thing session open; close them with `result.close()`. @default false */
  keepConnected?: boolean;
  /** Enroll `cloneOf` devices after all the others, as a clone shows up after the original. @default true */
  clonesLast?: boolean;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
  /** MQTT version of the devices whose spec names none. @default '3.1.1' */
  mqttVersion?: MqttVersion;
  /** Per-device random delay before its first connect (see AgentOptions). @default 0 */
  startupJitterMs?: number;
  random?: RandomFn;
  sleep?: SleepFn;
  now?: () => number;
  onEvent?: (event: AgentEvent) => void;
}

/** A device's result, with the spec's own serial, the fault modes and MQTT version it ran with. */
export type DeviceRunResult = EnrollmentResult & {
  /** Serial of the spec (differs from `serial` for a clone, which presents another serial). */
  specSerial: string;
  faults?: DeviceFaults;
  mqttVersion: MqttVersion;
};

export interface FleetSummary {
  attempted: number;
  enrolled: number;
  /** Final rejections keyed by reason code (`[CODE]` in errorMessage), else message, else errorCode. */
  deniedByReason: Record<string, number>;
  gaveUp: number;
  /** Give-ups keyed by their cause (see {@link giveUpCause}), e.g. `ECONNREFUSED 127.0.0.1:8883`. */
  gaveUpByCause: Record<string, number>;
  /** Retries across all devices. */
  retries: number;
  /** Enrollment time percentiles over enrolled devices (nearest rank); 0 when none enrolled. */
  p50Ms: number;
  p99Ms: number;
  /** Wall time of the whole run. */
  wallMs: number;
  /** Devices per MQTT version (of the results that name theirs). */
  mqttVersions: Partial<Record<MqttVersion, number>>;
}

export interface FleetResult {
  results: DeviceRunResult[];
  summary: FleetSummary;
  /** Connected agents by spec serial (only with `keepConnected`). */
  agents: Map<string, DeviceAgent>;
  /** Close every thing session kept open. */
  close(): Promise<void>;
}

/** Reason of a final rejection: a `[REASON_CODE]` token in errorMessage, the message, or errorCode. */
export function denialReason(result: { errorMessage?: string; errorCode?: string }): string {
  const msg = result.errorMessage ?? '';
  const token = /\[([A-Z][A-Z0-9_]*)\]/.exec(msg);
  if (token) return token[1];
  if (/^[A-Z][A-Z0-9_]+$/.test(msg.trim())) return msg.trim();
  if (msg.trim()) return msg.trim();
  return result.errorCode || 'UNKNOWN';
}

/**
 * Cause of a give-up, the same for every unit that failed the same way: the short form of the
 * last failure (`GaveUpResult.cause`, e.g. `ECONNREFUSED 127.0.0.1:8883`); a unit that registered
 * but then could not connect as its thing says so.
 */
export function giveUpCause(result: Pick<GaveUpResult, 'phase' | 'cause' | 'lastError'>): string {
  const cause = result.cause.trim() || result.lastError.trim() || 'no error recorded';
  return result.phase === 'thingConnect'
    ? `registered, then connecting as the thing failed: ${cause}`
    : cause;
}

/** Nearest-rank percentile of unsorted values; 0 for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export function summarize(
  results: Array<EnrollmentResult & { mqttVersion?: MqttVersion }>,
  wallMs = 0,
): FleetSummary {
  const deniedByReason: Record<string, number> = {};
  const mqttVersions: FleetSummary['mqttVersions'] = {};
  const gaveUpByCause: Record<string, number> = {};
  const times: number[] = [];
  let enrolled = 0;
  let gaveUp = 0;
  let retries = 0;
  for (const r of results) {
    retries += r.retries;
    if (r.mqttVersion) mqttVersions[r.mqttVersion] = (mqttVersions[r.mqttVersion] ?? 0) + 1;
    if (r.outcome === 'enrolled') {
      enrolled++;
      times.push(r.enrollMs);
    } else if (r.outcome === 'denied') {
      const reason = denialReason(r);
      deniedByReason[reason] = (deniedByReason[reason] ?? 0) + 1;
    } else {
      gaveUp++;
      const cause = giveUpCause(r);
      gaveUpByCause[cause] = (gaveUpByCause[cause] ?? 0) + 1;
    }
  }
  return {
    attempted: results.length,
    enrolled,
    deniedByReason,
    gaveUp,
    gaveUpByCause,
    retries,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    wallMs,
    mqttVersions,
  };
}

/** Readable multi-line summary. */
export function formatSummary(summary: FleetSummary): string {
  const lines = [
    `Enrollment: ${summary.enrolled}/${summary.attempted} enrolled, ${sumValues(summary.deniedByReason)} denied, ${summary.gaveUp} gave up, ${summary.retries} retries`,
    `  enroll time: p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms; wall ${(summary.wallMs / 1000).toFixed(1)} s${mqttNote(summary.mqttVersions)}`,
  ];
  const reasons = Object.entries(summary.deniedByReason).sort(
    (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
  );
  if (reasons.length > 0) {
    lines.push('  denied by reason:');
    const width = Math.max(...reasons.map(([r]) => r.length));
    for (const [reason, n] of reasons) lines.push(`    ${reason.padEnd(width)}  ${n}`);
  }
  // One line per distinct cause, most frequent first: `gave up: 3 (CONNECT_FAILED: ...)`.
  const causes = Object.entries(summary.gaveUpByCause).sort(
    (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
  );
  for (const [cause, n] of causes) lines.push(`  gave up: ${n} (${cause})`);
  return lines.join('\n');
}

/** `; MQTT 5` for a run on one version, `; MQTT 3.1.1 ×3, 5 ×2` for a mixed one. */
function mqttNote(versions: FleetSummary['mqttVersions']): string {
  const used = MQTT_VERSIONS.flatMap((v) => (versions[v] ? [[v, versions[v]] as const] : []));
  if (used.length === 0) return '';
  if (used.length === 1) return `; MQTT ${used[0][0]}`;
  return `; MQTT ${used.map(([v, n]) => `${v} ×${n}`).join(', ')}`;
}

function sumValues(m: Record<string, number>): number {
  return Object.values(m).reduce((a, b) => a + b, 0);
}

/**
 * The identity and claim a spec presents, after its fault modes: a clone presents the original's
 * serial/lot/revision/firmware with its own (different) factory key; `wrongLotClaim` swaps the claim.
 */
export function resolvePresentation(
  spec: DeviceSpec,
  bySerial: ReadonlyMap<string, FactoryIdentity>,
  claims: Record<string, TlsCredentials>,
): { identity: FactoryIdentity; claim: TlsCredentials } {
  let identity = spec.identity;
  const f = spec.faults ?? {};
  if (f.cloneOf) {
    const original = bySerial.get(f.cloneOf);
    const base = original ?? { ...spec.identity, serial: f.cloneOf };
    let factoryKey = spec.identity.factoryKey;
    if (!factoryKey || factoryKey.publicKeyPem === original?.factoryKey?.publicKeyPem)
      factoryKey = generateFactoryKey();
    identity = { ...base, factoryKey };
  }
  const claimLot = f.wrongLotClaim ?? identity.lot;
  const claim = claims[claimLot];
  if (!claim) {
    throw new Error(
      `No claim credentials for lot '${claimLot}' (device ${spec.identity.serial}); pass claims['${claimLot}']`,
    );
  }
  return { identity, claim };
}

/** Enroll every device with at most `concurrency` in flight. */
export async function runFleet(options: RunFleetOptions): Promise<FleetResult> {
  const now = options.now ?? Date.now;
  const started = now();
  const bySerial = new Map(options.devices.map((d) => [d.identity.serial, d.identity]));
  // Resolve up front so a missing claim fails before any device connects.
  const planned = options.devices.map((spec) => ({
    spec,
    ...resolvePresentation(spec, bySerial, options.claims),
  }));
  const ordered =
    options.clonesLast === false
      ? planned
      : [...planned.filter((p) => !p.spec.faults?.cloneOf), ...planned.filter((p) => p.spec.faults?.cloneOf)];

  const total = ordered.length;
  const results: DeviceRunResult[] = new Array(total);
  const agents = new Map<string, DeviceAgent>();
  const useBar =
    options.progressBar === true || (options.progressBar === 'auto' && process.stdout.isTTY === true);
  const bar = useBar
    ? new SingleBar(
        {
          format: 'enroll [{bar}] {value}/{total} | enrolled {enrolled} denied {denied} gaveUp {gaveUp}',
          hideCursor: true,
          stream: process.stdout,
        },
        Presets.shades_classic,
      )
    : undefined;
  const counts = { enrolled: 0, denied: 0, gaveUp: 0 };
  bar?.start(total, 0, counts);

  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const index = next++;
      const { spec, identity, claim } = ordered[index];
      const mqttVersion = spec.mqttVersion ?? options.mqttVersion ?? DEFAULT_MQTT_VERSION;
      const agent = new DeviceAgent({
        identity,
        claim,
        endpoint: options.endpoint,
        templateName: options.templateName,
        ...faultAgentOptions(spec.faults),
        claimClientIdPrefix: options.claimClientIdPrefix,
        backoff: options.backoff,
        connectTimeoutMs: options.connectTimeoutMs,
        responseTimeoutMs: options.responseTimeoutMs,
        mqttVersion,
        startupJitterMs: options.startupJitterMs,
        topicPrefix: options.topicPrefix,
        lastWill: options.lastWill,
        certDir: options.certDir,
        keepConnected: options.keepConnected,
        random: options.random,
        sleep: options.sleep,
        now: options.now,
        onEvent: options.onEvent,
      });
      let result: EnrollmentResult;
      try {
        result = await agent.enroll();
      } catch (err) {
        result = {
          outcome: 'gaveUp',
          serial: identity.serial,
          phase: 'provisioning',
          lastError: err instanceof Error ? err.message : String(err),
          cause: classifyFailure(err).cause,
          elapsedMs: 0,
          retries: 0,
        };
      }
      if (options.keepConnected && result.outcome === 'enrolled') agents.set(spec.identity.serial, agent);
      const runResult: DeviceRunResult = {
        ...result,
        specSerial: spec.identity.serial,
        ...(spec.faults ? { faults: spec.faults } : {}),
        mqttVersion,
      };
      results[index] = runResult;
      done++;
      counts[result.outcome]++;
      bar?.increment(1, counts);
      options.onProgress?.({ done, total, result: runResult });
    }
  };
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 16, total || 1));
  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    bar?.stop();
  }
  return {
    results,
    summary: summarize(results, now() - started),
    agents,
    close: async () => {
      await Promise.all([...agents.values()].map((a) => a.close()));
      agents.clear();
    },
  };
}
