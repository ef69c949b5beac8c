/**
 * The enrollment waves of the scenario. A wave enrolls its units through the fleet provisioning
 * MQTT API, template by template (a unit uses the template of the claim it presents), and
 * returns each unit's result; nothing is filled in for the caller.
 */
import { join } from 'node:path';
import type { CliContext } from '../../cli/context';
import { claimClientIdFor } from '../../core/model';
import {
  runFleet,
  type BackoffOptions,
  type DeviceAgent,
  type DeviceRunResult,
  type FleetResult,
  type TlsCredentials,
} from '../../device';
import type { Registry } from '../../lambda/shared/registry';
import type { LabRuntime } from '../runtime';
import type { PlannedDevice } from './plan';

/** What every wave shares. */
export interface WaveSettings {
  lab: LabRuntime;
  ctx: CliContext;
  registry: Registry;
  claims: Record<string, TlsCredentials>;
  concurrency: number;
  backoff: BackoffOptions;
  progressBar: boolean | 'auto';
  labDir: string;
  activationTimeoutMs: number;
}

export interface WaveOutcome {
  /** Each planned unit with what it got. */
  units: { planned: PlannedDevice; result: DeviceRunResult }[];
  /** Serials made ACTIVE by the lifecycle rule (waves that wait for activation). */
  active: Set<string>;
  /**
   * The enrolled units' agents by serial (waves that wait for activation), their sessions closed:
   * each holds its issued identity and can reconnect as its thing.
   */
  agents: Map<string, DeviceAgent>;
  /** Time the simulator took to enroll the units. */
  enrollMs: number;
  /** Time spent waiting for the lifecycle rule to activate them afterwards. */
  activationWaitMs: number;
  wallMs: number;
}

function templateOutput(ctx: CliContext, name: string) {
  const template = (ctx.resources.provisioningTemplates ?? []).find((t) => t.templateName === name);
  if (!template) throw new Error(`the plan uses template ${name}, which the stack does not declare`);
  return template;
}

/**
 * Enroll `units`, one template after another. With `activate`, enrolled units keep their thing
 * session until the lifecycle rule has made them ACTIVE (or the time is up), then disconnect.
 */
export async function runWave(
  s: WaveSettings,
  units: readonly PlannedDevice[],
  opts: { activate: boolean; responseTimeoutMs?: number },
): Promise<WaveOutcome> {
  const started = Date.now();
  const byTemplate = new Map<string, PlannedDevice[]>();
  for (const u of units) byTemplate.set(u.template, [...(byTemplate.get(u.template) ?? []), u]);
  const runs: FleetResult[] = [];
  try {
    for (const [name, group] of byTemplate) {
      const template = templateOutput(s.ctx, name);
      runs.push(
        await runFleet({
          endpoint: {
            host: s.lab.endpoints.mqtt.host,
            port: s.lab.endpoints.mqtt.port,
            caPem: s.lab.endpoints.mqtt.caPem,
          },
          claims: s.claims,
          templateName: template.templateName,
          claimClientIdPrefix: template.claimClientIdPrefix,
          topicPrefix: s.ctx.resources.topicPrefix,
          concurrency: s.concurrency,
          backoff: s.backoff,
          progressBar: s.progressBar,
          certDir: join(s.labDir, 'devices'),
          devices: group.map((d) => d.spec),
          keepConnected: opts.activate,
          ...(opts.responseTimeoutMs ? { responseTimeoutMs: opts.responseTimeoutMs } : {}),
        }),
      );
    }
    const results = runs.flatMap((r) => r.results);
    const resultOf = (p: PlannedDevice): DeviceRunResult => {
      const hit = results.find((r) => r.specSerial === p.spec.identity.serial);
      if (!hit) throw new Error(`the simulator returned no result for ${p.spec.identity.serial}`);
      return hit;
    };
    const outcome = units.map((planned) => ({ planned, result: resultOf(planned) }));
    const enrollMs = Date.now() - started;
    const enrolled = outcome
      .filter((u) => u.result.outcome === 'enrolled')
      .map((u) => u.planned.spec.identity.serial);
    const active = opts.activate
      ? await waitForActivation(s.lab, s.registry, enrolled, s.activationTimeoutMs)
      : new Set<string>();
    if (!opts.activate) await s.lab.idle();
    const wallMs = Date.now() - started;
    const agents = new Map<string, DeviceAgent>();
    for (const r of runs) for (const [serial, agent] of r.agents) agents.set(serial, agent);
    return { units: outcome, active, agents, enrollMs, activationWaitMs: wallMs - enrollMs, wallMs };
  } finally {
    for (const r of runs) await r.close().catch(() => undefined);
  }
}

/** The recovery wave: the lab loses each unit's first RegisterThing answer, then they enroll. */
export async function runRecoveryWave(
  s: WaveSettings,
  units: readonly PlannedDevice[],
  responseTimeoutMs: number,
): Promise<WaveOutcome> {
  if (units.length === 0)
    return { units: [], active: new Set(), agents: new Map(), enrollMs: 0, activationWaitMs: 0, wallMs: 0 };
  const faults = s.lab.iot.faults;
  if (!faults) throw new Error('this lab offers no fault injection; run the scenario without bad cases');
  for (const p of units)
    faults.loseNextRegisterThingAnswer(
      claimClientIdFor(templateOutput(s.ctx, p.template).claimClientIdPrefix, p.spec.identity.serial),
    );
  // The lost answer surfaces as a response timeout; keep it short so the retry comes soon.
  return runWave(s, units, { activate: true, responseTimeoutMs });
}

/** Poll the Devices table until every serial is ACTIVE or the time is up; returns the ACTIVE ones. */
async function waitForActivation(
  lab: LabRuntime,
  registry: Registry,
  serials: string[],
  timeoutMs: number,
): Promise<Set<string>> {
  const active = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  let pending = [...serials];
  for (;;) {
    await lab.idle();
    const still: string[] = [];
    for (let i = 0; i < pending.length; i += 25) {
      const batch = pending.slice(i, i + 25);
      const records = await Promise.all(batch.map((serial) => registry.getDevice(serial)));
      records.forEach((r, j) => (r?.status === 'ACTIVE' ? active.add(batch[j]) : still.push(batch[j])));
    }
    pending = still;
    if (pending.length === 0 || Date.now() >= deadline) return active;
    await new Promise((r) => setTimeout(r, 100));
  }
}
