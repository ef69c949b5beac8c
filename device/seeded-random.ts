/**
 * Reproducible randomness for the simulator: the same seed gives the same sequence, so a run
 * (sensor values, boot ids, link drops, backoff jitter) can be replayed exactly.
 */
import { createHash } from 'node:crypto';
import type { RandomFn } from './backoff';

/** A random source in [0, 1) seeded by a string (mulberry32 over the seed's SHA-256). */
export function seededRandom(seed: string): RandomFn {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random source for one device of a run: independent of the others, same for the same seed. */
export function deviceRandom(runSeed: string, serial: string): RandomFn {
  return seededRandom(`${runSeed}\u0000${serial}`);
}

/** `bytes` random bytes as lowercase hex. */
export function randomHex(random: RandomFn, bytes: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++)
    out += Math.floor(random() * 256)
      .toString(16)
      .padStart(2, '0');
  return out;
}
