/**
 * Telemetry of a simulated device: a sensor model that takes one reading per reading interval,
 * and the batcher that packs `readingsPerMessage` readings into one message
 * (`{ seq, readings: [{ ts, values }] }`, core/telemetry.ts). `seq` counts messages from 0 at
 * each boot, +1 per message. Every message is checked against `telemetryPayloadSchema` before
 * it leaves the batcher: a simulator bug fails loudly instead of reaching the cloud.
 */
import {
  TELEMETRY_LIMITS,
  telemetryPayloadSchema,
  type Reading,
  type TelemetryPayload,
} from '../core/telemetry';
import type { RandomFn } from './backoff';
import { conforming } from './contract';

/** Values of one reading, by name (`temperature_c`, `humidity_pct`, `battery_v`). */
export type ReadingValues = Record<string, number>;
/** Takes the values of one reading at time `ts`. */
export type Sensor = (ts: number) => ReadingValues;

const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * An indoor environment sensor: temperature on a daily cycle, humidity moving against it, a
 * slowly draining battery, each with a little noise from `random`.
 */
export function environmentSensor(random: RandomFn): Sensor {
  const baseC = 19 + random() * 4;
  const baseHumidity = 35 + random() * 15;
  let batteryV = 3.0 + random() * 0.3;
  return (ts) => {
    const day = Math.sin((2 * Math.PI * (ts % 86_400_000)) / 86_400_000);
    batteryV = Math.max(2.5, batteryV - random() * 0.0005);
    return {
      temperature_c: round(baseC + 2 * day + (random() - 0.5) * 0.4, 2),
      humidity_pct: round(Math.min(100, Math.max(0, baseHumidity - 5 * day + (random() - 0.5) * 2)), 1),
      battery_v: round(batteryV, 3),
    };
  };
}

/** Throws when `n` cannot be a batch size. */
export function checkReadingsPerMessage(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > TELEMETRY_LIMITS.maxReadingsPerMessage)
    throw new Error(
      `readingsPerMessage must be a whole number from 1 to ${TELEMETRY_LIMITS.maxReadingsPerMessage}, got ${n}`,
    );
}

/** Checks a payload against the contract; throws naming every problem. */
export function validTelemetry(payload: TelemetryPayload): TelemetryPayload {
  return conforming(telemetryPayloadSchema, payload, 'telemetry payload');
}

/** Packs readings into messages of `readingsPerMessage`. */
export class TelemetryBatcher {
  private batch: Reading[] = [];
  private nextSeq = 0;

  constructor(readonly readingsPerMessage: number) {
    checkReadingsPerMessage(readingsPerMessage);
  }

  /** Readings taken and not yet in a message. */
  get partial(): number {
    return this.batch.length;
  }

  /** Add a reading; returns the message once the batch is full. */
  add(reading: Reading): TelemetryPayload | undefined {
    this.batch.push(reading);
    return this.batch.length >= this.readingsPerMessage ? this.flush() : undefined;
  }

  /** The readings taken so far as one (shorter) message, or undefined when there are none. */
  flush(): TelemetryPayload | undefined {
    if (this.batch.length === 0) return undefined;
    const payload = validTelemetry({ seq: this.nextSeq, readings: this.batch });
    this.batch = [];
    this.nextSeq = (this.nextSeq + 1) % 2 ** 32;
    return payload;
  }

  /** A boot: the counter starts again at 0 and the readings of the batch in progress are lost. */
  reboot(): number {
    const lost = this.batch.length;
    this.batch = [];
    this.nextSeq = 0;
    return lost;
  }
}
