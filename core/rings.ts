/**
 * Rollout ring assignment. Pure and deterministic: the same serial always lands in the same
 * ring for the same shares.
 *
 * Two entry points share one hash:
 * - {@link assignRings} stratifies a manifest batch across lot x hardware revision. Within each
 *   stratum the units are ranked by the hash of their serial and the first ones become canary,
 *   the next ones early, the rest broad. Every non-empty stratum gets at least one canary unit
 *   (when the canary share is non-zero), so the canary ring is representative.
 * - {@link ringForSerial} maps one serial by its hash alone. The hook uses it only for devices
 *   whose manifest row carries no ring.
 */
import { createHash } from 'node:crypto';
import { Ring } from './model';

export interface RingShares {
  /** Percent of units in the canary ring (0-100). */
  canaryPercent: number;
  /** Percent of units in the early ring (0-100); broad takes the rest. */
  earlyPercent: number;
}

export class RingSharesError extends Error {}

/** Parse the `FLEET_RING_SHARES` form `<canary>:<early>`, e.g. `2:18`. */
export function parseRingShares(text: string): RingShares {
  const m = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$/.exec(text.trim());
  if (!m) {
    throw new RingSharesError(
      `ring shares "${text}" are malformed; use "<canaryPercent>:<earlyPercent>", e.g. "2:18"`,
    );
  }
  const shares = { canaryPercent: Number(m[1]), earlyPercent: Number(m[2]) };
  if (shares.canaryPercent + shares.earlyPercent > 100) {
    throw new RingSharesError(
      `ring shares "${text}" add up to more than 100; lower the canary or early percent`,
    );
  }
  return shares;
}

/** The `<canary>:<early>` text form read by {@link parseRingShares} (env variable, stack output). */
export function formatRingShares(shares: RingShares): string {
  return `${shares.canaryPercent}:${shares.earlyPercent}`;
}

/** Uniform value in [0, 1) derived from the serial. */
export function ringHash(serial: string): number {
  const digest = createHash('sha256').update(`ring:${serial}`).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** Ring of one serial by hash alone. */
export function ringForSerial(serial: string, shares: RingShares): Ring {
  const u = ringHash(serial) * 100;
  if (u < shares.canaryPercent) return 'canary';
  if (u < shares.canaryPercent + shares.earlyPercent) return 'early';
  return 'broad';
}

export interface RingUnit {
  serial: string;
  lot: string;
  hwRev: string;
}

/** Stratified assignment for a batch of units; returns serial -> ring. */
export function assignRings(units: readonly RingUnit[], shares: RingShares): Map<string, Ring> {
  const strata = new Map<string, RingUnit[]>();
  for (const unit of units) {
    const key = `${unit.lot}\u0000${unit.hwRev}`;
    const list = strata.get(key);
    if (list) list.push(unit);
    else strata.set(key, [unit]);
  }
  const out = new Map<string, Ring>();
  for (const list of strata.values()) {
    const ranked = [...list].sort(
      (a, b) => ringHash(a.serial) - ringHash(b.serial) || a.serial.localeCompare(b.serial),
    );
    const n = ranked.length;
    const canary = shares.canaryPercent > 0 ? Math.max(1, Math.round((n * shares.canaryPercent) / 100)) : 0;
    const early = Math.min(n - canary, Math.round((n * shares.earlyPercent) / 100));
    ranked.forEach((unit, i) =>
      out.set(unit.serial, i < canary ? 'canary' : i < canary + early ? 'early' : 'broad'),
    );
  }
  return out;
}
