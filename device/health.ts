/**
 * Health of a simulated device: one {@link Boot} per boot (boot id, reset reason, firmware, the
 * time it started) and the report it sends right after connecting and every health interval:
 * `{ ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm }` (core/telemetry.ts),
 * checked against `healthReportSchema` before it is sent.
 *
 * Heap and signal follow the device's {@link DeviceConditions}: a crash-looping firmware leaks
 * heap until it dies, a flaky unit sits on a weak link.
 */
import { healthReportSchema, type HealthReport, type ResetReason } from '../core/telemetry';
import type { RandomFn } from './backoff';
import { conforming } from './contract';
import type { BehaviourProfile } from './profiles';
import { randomHex } from './seeded-random';

export interface DeviceConditions {
  /** Free heap right after boot, bytes. */
  heapAtBootB: number;
  /** Heap lost per second of uptime (a leak), bytes. */
  heapLeakBPerS: number;
  /** Noise on the free heap, bytes. */
  heapJitterB: number;
  /** Typical received signal strength, dBm. */
  rssiDbm: number;
  /** Noise on the signal strength, dB. */
  rssiJitterDb: number;
}

/** Conditions of each behaviour profile. */
export const PROFILE_CONDITIONS: Readonly<Record<BehaviourProfile, DeviceConditions>> = {
  healthy: { heapAtBootB: 120_000, heapLeakBPerS: 0, heapJitterB: 4_000, rssiDbm: -62, rssiJitterDb: 4 },
  flaky: { heapAtBootB: 118_000, heapLeakBPerS: 0, heapJitterB: 4_000, rssiDbm: -88, rssiJitterDb: 6 },
  'crash-looping': {
    heapAtBootB: 48_000,
    heapLeakBPerS: 1_600,
    heapJitterB: 1_000,
    rssiDbm: -64,
    rssiJitterDb: 4,
  },
};

/** A new boot id: 16 hex characters. */
export function newBootId(random: RandomFn): string {
  return randomHex(random, 8);
}

/** Checks a report against the contract; throws naming every problem. */
export function validHealth(report: HealthReport): HealthReport {
  return conforming(healthReportSchema, report, 'health report');
}

/** One boot of a device: what its health reports say until the next boot. */
export class Boot {
  private heapMinB = Number.POSITIVE_INFINITY;

  constructor(
    readonly bootId: string,
    /** Epoch milliseconds the boot started. */
    readonly bootAt: number,
    readonly resetReason: ResetReason,
    readonly fw: string,
    readonly conditions: DeviceConditions,
  ) {}

  /** Whole seconds since the boot at `now`. */
  uptimeS(now: number): number {
    return Math.max(0, Math.floor((now - this.bootAt) / 1000));
  }

  /** The health report at `ts` (validated). */
  report(ts: number, random: RandomFn): HealthReport {
    const c = this.conditions;
    const leaked = c.heapLeakBPerS * ((ts - this.bootAt) / 1000);
    const heapFreeB = Math.max(0, Math.round(c.heapAtBootB - leaked + (random() - 0.5) * c.heapJitterB));
    this.heapMinB = Math.min(this.heapMinB, heapFreeB);
    const rssiDbm = Math.min(
      0,
      Math.max(-150, Math.round(c.rssiDbm + (random() - 0.5) * 2 * c.rssiJitterDb)),
    );
    return validHealth({
      ts,
      fw: this.fw,
      bootId: this.bootId,
      uptimeS: this.uptimeS(ts),
      resetReason: this.resetReason,
      heapFreeB,
      heapMinB: this.heapMinB,
      rssiDbm,
    });
  }
}
