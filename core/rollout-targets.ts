/**
 * Target selection of a rollout stage, pure and deterministic: which devices a stage's job
 * targets, which are excluded and why, and the stratified canary draw.
 *
 * Exclusions (in this order, one reason per device): an explicit thing the registry does not
 * know, a device already targeted by an earlier stage, RMA and RETIRED units, units not yet
 * ACTIVE, lots on hold, hardware revisions the release does not run on, units already on the
 * release.
 *
 * The canary: a stage with `canary` takes its own targets (usually the canary ring) and then
 * tops up every hardware revision × lot stratum of the rollout's whole eligible set to
 * `minPerStratum` devices (fewer only when the stratum has fewer), ranked by the serial's hash
 * (`ringHash` of core/rings.ts), so every stratum is represented and a rerun draws the same
 * devices.
 */
import type { ReleaseRecord } from './ota';
import type { DeviceStatus, Ring } from './model';
import { ringHash } from './rings';
import type { RolloutPlan, Stage } from './rollout-plan';

/** A device the selection may target (a registry row with its lot's hold flag). */
export interface RolloutCandidate {
  thing: string;
  serial: string;
  lot: string;
  hwRev: string;
  ring: Ring;
  status: DeviceStatus;
  /** Firmware the device runs now (the version a rollback returns it to). */
  firmware: string;
  lotOnHold: boolean;
}

/** Why a device is not targeted. */
export type ExclusionReason =
  | 'UNKNOWN_THING'
  | 'ALREADY_TARGETED'
  | 'DEVICE_RMA'
  | 'DEVICE_RETIRED'
  | 'NOT_ACTIVE'
  | 'LOT_ON_HOLD'
  | 'INCOMPATIBLE_HW_REV'
  | 'ALREADY_ON_VERSION';

/** A targeted device, with what a rollback needs. */
export interface StageTarget {
  thing: string;
  serial: string;
  lot: string;
  hwRev: string;
  ring: Ring;
  previousFirmware: string;
}

/** The outcome of a selection. */
export interface TargetSelection {
  /** Sorted by thing name. */
  targets: StageTarget[];
  excluded: { thing: string; reason: ExclusionReason }[];
}

/** The exclusion reason of one candidate, or undefined when it is eligible. */
export function exclusionOf(
  c: RolloutCandidate,
  release: Pick<ReleaseRecord, 'version' | 'hwRevs'>,
): ExclusionReason | undefined {
  if (c.status === 'RMA') return 'DEVICE_RMA';
  if (c.status === 'RETIRED') return 'DEVICE_RETIRED';
  if (c.status !== 'ACTIVE') return 'NOT_ACTIVE';
  if (c.lotOnHold) return 'LOT_ON_HOLD';
  if (!release.hwRevs.includes(c.hwRev)) return 'INCOMPATIBLE_HW_REV';
  if (c.firmware === release.version) return 'ALREADY_ON_VERSION';
  return undefined;
}

const toTarget = (c: RolloutCandidate): StageTarget => ({
  thing: c.thing,
  serial: c.serial,
  lot: c.lot,
  hwRev: c.hwRev,
  ring: c.ring,
  previousFirmware: c.firmware,
});

/** The hardware revision × lot stratum key of a device. */
export function stratumKey(d: Pick<RolloutCandidate, 'hwRev' | 'lot'>): string {
  return `${d.hwRev}\u0000${d.lot}`;
}

const byHash = (a: RolloutCandidate, b: RolloutCandidate) =>
  ringHash(a.serial) - ringHash(b.serial) || a.serial.localeCompare(b.serial);

/** Rings any stage of the plan targets: the universe the canary represents. */
export function planRings(plan: RolloutPlan): Set<Ring> {
  return new Set(plan.stages.flatMap((s) => s.targets.rings ?? []));
}

/**
 * Select the targets of `stage`. `alreadyTargeted` holds the things of earlier stages (they are
 * never targeted twice). `universeRings` are the rings of the whole rollout; a canary stage
 * represents every stratum of their eligible devices.
 */
export function selectStageTargets(
  stage: Stage,
  candidates: readonly RolloutCandidate[],
  release: Pick<ReleaseRecord, 'version' | 'hwRevs'>,
  alreadyTargeted: ReadonlySet<string> = new Set(),
  universeRings: ReadonlySet<Ring> = new Set(stage.targets.rings ?? []),
): TargetSelection {
  const excluded: TargetSelection['excluded'] = [];
  const byThing = new Map(candidates.map((c) => [c.thing, c]));
  const chosen = new Map<string, RolloutCandidate>();
  const consider = (c: RolloutCandidate) => {
    const reason = alreadyTargeted.has(c.thing) ? 'ALREADY_TARGETED' : exclusionOf(c, release);
    if (reason) excluded.push({ thing: c.thing, reason });
    else chosen.set(c.thing, c);
  };
  if (stage.targets.things) {
    for (const thing of stage.targets.things) {
      const c = byThing.get(thing);
      if (c) consider(c);
      else excluded.push({ thing, reason: 'UNKNOWN_THING' });
    }
  } else {
    const rings = new Set(stage.targets.rings);
    for (const c of candidates) if (rings.has(c.ring)) consider(c);
  }
  if (stage.canary) {
    const strata = new Map<string, RolloutCandidate[]>();
    for (const c of candidates) {
      if (!universeRings.has(c.ring) || alreadyTargeted.has(c.thing) || exclusionOf(c, release)) continue;
      const key = stratumKey(c);
      strata.set(key, [...(strata.get(key) ?? []), c]);
    }
    const have = new Map<string, number>();
    for (const c of chosen.values()) have.set(stratumKey(c), (have.get(stratumKey(c)) ?? 0) + 1);
    for (const [key, list] of strata) {
      let n = have.get(key) ?? 0;
      for (const c of [...list].sort(byHash)) {
        if (n >= stage.canary.minPerStratum) break;
        if (chosen.has(c.thing)) continue;
        chosen.set(c.thing, c);
        n++;
      }
    }
  }
  const targets = [...chosen.values()].map(toTarget).sort((a, b) => a.thing.localeCompare(b.thing));
  return { targets, excluded };
}
