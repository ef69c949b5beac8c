/**
 * MQTT 3.1.1 and MQTT 5 side by side in one run: the plan puts a share of the fleet on each
 * version (./plan.ts), and this module measures what the lab's broker does with each.
 *
 * The probe, after enrollment, on the ACTIVE units' agents (their sessions closed), in rounds:
 * 1. connect burst, one version after the other: every unit of the version reconnects as its
 *    thing, `concurrency` at a time; each connect's time (TLS + CONNACK);
 * 2. publish burst, one version after the other: every connected unit publishes
 *    `messagesPerUnit` QoS 1 messages, one in flight each, on `dt/<prefix>/<thing>/probe` (the
 *    device policy allows its own `dt/` topics, and no rule reads `probe`, so the telemetry
 *    accounting does not see them); each PUBACK's time;
 * 3. every session closed (DISCONNECT), so the next round, and then the telemetry phase, start
 *    with none.
 *
 * A first round warms the lab up and is not counted (the first burst after enrollment can run at
 * half the rate of the later ones, whichever version it is). The counted rounds let the versions
 * take turns going first (5 then 3.1.1, then 3.1.1 then 5, …), so neither gains from a lab warmed
 * up by the other, and the lab settles (`settle`: every Lambda the presence events started has
 * finished) before each burst. A version's rate is what all its counted rounds did over the time
 * they took; each round's rate is kept too (`roundsPerSecond`), to show how steady they were. The
 * simulated devices and the lab share one Node.js process, so a rate is the lab's and the
 * clients' work together, alike for both versions. The closing note of the report compares the
 * two versions' rates, measured in the same run on the same lab.
 */
import {
  classifyFailure,
  MQTT_VERSIONS,
  percentile,
  type DeviceAgent,
  type DeviceRunResult,
  type MqttVersion,
} from '../../device';
import { MQTT_BROKER_LIMITS } from '../iot/mqtt/limits';
import type { Expectation, UnitOutcome } from './expectations';

export interface MqttProbeOptions {
  /** QoS 1 messages each unit publishes in the publish burst. @default 20 */
  messagesPerUnit?: number;
  /** Units connecting at the same time in the connect burst. @default 32 */
  concurrency?: number;
  /** Counted rounds, after one warm-up round; the versions take turns going first. @default 2 */
  rounds?: number;
}

export const MQTT_PROBE_DEFAULTS = { messagesPerUnit: 20, concurrency: 32, rounds: 2 } as const;

/** The topic kind of the probe's messages: `dt/<prefix>/<thing>/probe`. No rule reads it. */
export const PROBE_TOPIC_KIND = 'probe';

/** One burst: how many, how fast, how long each took. */
export interface BurstStats {
  /** Connects or messages attempted. */
  attempted: number;
  /** Connected, or acknowledged (PUBACK). */
  succeeded: number;
  /** Failures by cause (`CONNACK refused: 0x87 Not authorized`, `publish refused on …`). */
  failures: Record<string, number>;
  /** From the first attempt to the last answer. */
  wallMs: number;
  /** `succeeded` per second of `wallMs`. */
  perSecond: number;
  /** The rate of each round, in the order they ran. */
  roundsPerSecond: number[];
  /** Time of one connect (TLS + CONNACK) or one PUBLISH (to its PUBACK), nearest rank. */
  p50Ms: number;
  p99Ms: number;
}

export interface MqttVersionSection {
  version: MqttVersion;
  /** Units of the plan on this version, every wave and case. */
  units: number;
  /** Good units on it, enrolled units, and ACTIVE ones. */
  good: number;
  enrolled: number;
  active: number;
  /** Enrollment time of its enrolled units (claim connect to thing CONNACK), nearest rank. */
  enrollP50Ms: number;
  enrollP99Ms: number;
  /** The probe's connect and publish bursts (absent when the probe did not run). */
  connect?: BurstStats;
  publish?: BurstStats;
  /** The telemetry phase for its units (absent without it). */
  stream?: { devices: number; acked: number; lost: number };
}

export interface MqttSection {
  /** Share of the plan's units on MQTT 5. */
  mqtt5Share: number;
  /** The probe's settings (absent when it did not run). */
  probe?: Required<MqttProbeOptions>;
  /** One entry per version with units in the plan, 3.1.1 first. */
  versions: MqttVersionSection[];
}

/** What the probe measured, per version. */
export type ProbeResult = Partial<Record<MqttVersion, { connect: BurstStats; publish: BurstStats }>>;

/** Options checked before any connection: an Error naming the option and the fix. */
export function checkProbeOptions(o: MqttProbeOptions): Required<MqttProbeOptions> {
  const messagesPerUnit = o.messagesPerUnit ?? MQTT_PROBE_DEFAULTS.messagesPerUnit;
  const concurrency = o.concurrency ?? MQTT_PROBE_DEFAULTS.concurrency;
  const rounds = o.rounds ?? MQTT_PROBE_DEFAULTS.rounds;
  // A new connection may publish a burst of this many before AWS's per-connection rate discards
  // the rest (the 3.1.1 client would not even know: its PUBACK says success).
  const quota = MQTT_BROKER_LIMITS.publishesPerSecondPerConnection;
  if (!Number.isInteger(messagesPerUnit) || messagesPerUnit < 1 || messagesPerUnit > quota)
    throw new Error(
      `mqttProbe.messagesPerUnit must be a whole number from 1 to ${quota} (AWS IoT Core's publishes per second per connection), got ${messagesPerUnit}`,
    );
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error(`mqttProbe.concurrency must be a positive whole number, got ${concurrency}`);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`mqttProbe.rounds must be a positive whole number, got ${rounds}`);
  return { messagesPerUnit, concurrency, rounds };
}

/** What one burst measured. */
interface Burst {
  attempted: number;
  /** One per success: the time it took. */
  latencies: number[];
  failures: Record<string, number>;
  wallMs: number;
}

const tenth = (ms: number): number => Math.round(ms * 10) / 10;
const perSecond = (n: number, ms: number): number => (ms > 0 ? tenth((n * 1000) / ms) : 0);

/** The rounds of one version's bursts, together. */
function combine(bursts: readonly Burst[]): BurstStats {
  const latencies = bursts.flatMap((b) => b.latencies);
  const failures: Record<string, number> = {};
  for (const b of bursts)
    for (const [cause, n] of Object.entries(b.failures)) failures[cause] = (failures[cause] ?? 0) + n;
  const wallMs = bursts.reduce((a, b) => a + b.wallMs, 0);
  return {
    attempted: bursts.reduce((a, b) => a + b.attempted, 0),
    succeeded: latencies.length,
    failures,
    wallMs: tenth(wallMs),
    perSecond: perSecond(latencies.length, wallMs),
    roundsPerSecond: bursts.map((b) => perSecond(b.latencies.length, b.wallMs)),
    p50Ms: tenth(percentile(latencies, 50)),
    p99Ms: tenth(percentile(latencies, 99)),
  };
}

function count(failures: Record<string, number>, err: unknown): void {
  const cause = classifyFailure(err).cause;
  failures[cause] = (failures[cause] ?? 0) + 1;
}

/** Every agent reconnects as its thing, `concurrency` at a time. */
async function connectBurst(agents: readonly DeviceAgent[], concurrency: number): Promise<Burst> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const queue = [...agents];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let a = queue.shift(); a; a = queue.shift()) {
        const t = performance.now();
        try {
          await a.reconnect();
          latencies.push(performance.now() - t);
        } catch (err) {
          count(failures, err);
        }
      }
    }),
  );
  return { attempted: agents.length, latencies, failures, wallMs: performance.now() - started };
}

/** Every connected agent publishes `n` QoS 1 messages, one in flight each, all agents at once. */
async function publishBurst(agents: readonly DeviceAgent[], n: number): Promise<Burst> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const connected = agents.filter((a) => a.session?.connected && a.identityAfterEnrollment);
  const started = performance.now();
  await Promise.all(
    connected.map(async (a) => {
      const session = a.session!;
      const topic = `dt/${a.topicPrefix}/${a.identityAfterEnrollment!.thingName}/${PROBE_TOPIC_KIND}`;
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        try {
          await session.publish(topic, JSON.stringify({ probe: i, ts: Date.now() }));
          latencies.push(performance.now() - t);
        } catch (err) {
          // The rest of this unit's messages count as not sent: only a closed session stops here.
          count(failures, err);
          if (!session.connected) {
            const rest = n - i - 1;
            if (rest > 0)
              failures['not sent: the session closed'] =
                (failures['not sent: the session closed'] ?? 0) + rest;
            return;
          }
        }
      }
    }),
  );
  return { attempted: agents.length * n, latencies, failures, wallMs: performance.now() - started };
}

/**
 * Run the probe on `agents` (enrolled, sessions closed), version by version. `settle` waits
 * until the lab has finished what the previous burst started. Every session is closed after.
 */
export async function runMqttProbe(
  agents: readonly DeviceAgent[],
  options: MqttProbeOptions & { settle: () => Promise<void>; log?: (line: string) => void },
): Promise<ProbeResult> {
  const { messagesPerUnit, concurrency, rounds } = checkProbeOptions(options);
  const log = options.log ?? (() => undefined);
  const groups = MQTT_VERSIONS.map((v) => [v, agents.filter((a) => a.mqttVersion === v)] as const).filter(
    ([, g]) => g.length > 0,
  );
  const connects = new Map<MqttVersion, Burst[]>();
  const publishes = new Map<MqttVersion, Burst[]>();
  log(
    `MQTT probe: ${groups.map(([v, g]) => `${g.length} units on ${v}`).join(', ')}; a warm-up round and ${rounds} counted round(s) of a connect burst (${concurrency} at a time) and a publish burst (${messagesPerUnit} QoS 1 messages per unit)`,
  );
  const keep = (into: Map<MqttVersion, Burst[]>, version: MqttVersion, burst: Burst, round: number): void => {
    if (round > 0) into.set(version, [...(into.get(version) ?? []), burst]);
  };
  // Round 0 is the warm-up.
  for (let round = 0; round <= rounds; round++) {
    const order = round % 2 === 0 ? groups : [...groups].reverse();
    try {
      for (const [version, group] of order) {
        await options.settle();
        keep(connects, version, await connectBurst(group, concurrency), round);
      }
      for (const [version, group] of order) {
        await options.settle();
        keep(publishes, version, await publishBurst(group, messagesPerUnit), round);
      }
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await options.settle();
    }
  }
  const out: ProbeResult = {};
  for (const [version] of groups)
    out[version] = { connect: combine(connects.get(version)!), publish: combine(publishes.get(version)!) };
  return out;
}

/** The per-version section of the report, from the units, the probe and the telemetry phase. */
export function mqttSection(input: {
  mqtt5Share: number;
  units: readonly UnitOutcome[];
  active: ReadonlySet<string>;
  probe?: { result: ProbeResult } & Required<MqttProbeOptions>;
  stream?: Partial<Record<MqttVersion, { devices: number; acked: number; lost: number }>>;
}): MqttSection {
  const versionOf = (u: UnitOutcome): MqttVersion => u.result.mqttVersion;
  const versions = MQTT_VERSIONS.flatMap((version): MqttVersionSection[] => {
    const mine = input.units.filter((u) => versionOf(u) === version);
    if (mine.length === 0) return [];
    const enrolled = mine.filter((u) => u.result.outcome === 'enrolled');
    const times = enrolled.map(
      (u) => (u.result as Extract<DeviceRunResult, { outcome: 'enrolled' }>).enrollMs,
    );
    const probe = input.probe?.result[version];
    const stream = input.stream?.[version];
    return [
      {
        version,
        units: mine.length,
        good: mine.filter((u) => u.planned.kind === 'good').length,
        enrolled: enrolled.length,
        active: enrolled.filter((u) => input.active.has(u.planned.spec.identity.serial)).length,
        enrollP50Ms: percentile(times, 50),
        enrollP99Ms: percentile(times, 99),
        ...(probe ? { connect: probe.connect, publish: probe.publish } : {}),
        ...(stream ? { stream } : {}),
      },
    ];
  });
  return {
    mqtt5Share: input.mqtt5Share,
    ...(input.probe
      ? {
          probe: {
            messagesPerUnit: input.probe.messagesPerUnit,
            concurrency: input.probe.concurrency,
            rounds: input.probe.rounds,
          },
        }
      : {}),
    versions,
  };
}

const failureList = (f: Record<string, number>): string =>
  Object.entries(f)
    .map(([cause, n]) => `${n}× ${cause}`)
    .join('; ');

/** What each version must show: good units enrolled and ACTIVE, every probe connect and message through, nothing lost. */
export function mqttExpectations(section: MqttSection, units: readonly UnitOutcome[]): Expectation[] {
  const out: Expectation[] = [];
  if (section.mqtt5Share > 0 && section.mqtt5Share < 1) {
    const ran = section.versions.filter((v) => v.active > 0).map((v) => v.version);
    out.push({
      name: 'MQTT 3.1.1 and 5: both versions enrolled and activated units in the same run',
      ok: MQTT_VERSIONS.every((v) => ran.includes(v)),
      detail: section.versions.map((v) => `${v.version}: ${v.active} ACTIVE`).join(', '),
    });
  }
  for (const v of section.versions) {
    const good = units.filter((u) => u.result.mqttVersion === v.version && u.planned.kind === 'good');
    const enrolled = good.filter((u) => u.result.outcome === 'enrolled');
    // Give-ups are counted against their own allowance (checkExpectations); anything else is a miss.
    const missed = good.filter((u) => u.result.outcome !== 'enrolled' && u.result.outcome !== 'gaveUp');
    out.push({
      name: `MQTT ${v.version}: every good unit on it enrolled`,
      ok: missed.length === 0 && (good.length === 0 || enrolled.length > 0),
      detail: `${enrolled.length}/${good.length}`,
    });
    if (v.connect && v.publish) {
      const c = v.connect;
      const p = v.publish;
      out.push({
        name: `MQTT ${v.version}: the probe connected every ACTIVE unit and every message was acknowledged`,
        ok: c.succeeded === c.attempted && p.succeeded === p.attempted && c.attempted > 0,
        detail:
          `${c.succeeded}/${c.attempted} connected, ${p.succeeded}/${p.attempted} acknowledged` +
          (Object.keys(c.failures).length + Object.keys(p.failures).length > 0
            ? `: ${failureList({ ...c.failures, ...p.failures })}`
            : ''),
      });
    }
    if (v.stream)
      out.push({
        name: `MQTT ${v.version}: its units streamed and nothing they published was lost`,
        ok: v.stream.devices > 0 && v.stream.acked > 0 && v.stream.lost === 0,
        detail: `${v.stream.devices} units, ${v.stream.acked} acknowledged, ${v.stream.lost} lost`,
      });
  }
  return out;
}
