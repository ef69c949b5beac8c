/**
 * The one builder of trail entries (the append-only Events table), shared by the registry
 * adapter and the CLI's batch writes, and the shape of the sharded enrollment index.
 *
 * - `sk` = `<at>#<random>`: time-ordered and unique within the serial.
 * - Enrollment decisions carry `enrollDay` = `<UTC day>#<shard>`, the partition key of the sparse
 *   `byEnrollmentDay` index. A burst of enrollments writes to {@link ENROLLMENT_SHARDS}
 *   partitions instead of one, so index back-pressure cannot throttle the hook's audit write;
 *   readers query every shard of a day ({@link enrollmentPartitions}) and merge by time.
 * - `expiresAt` (epoch seconds, the table's TTL attribute) is set only when the caller gives a
 *   retention, which the hook does for serials that are not on the manifest: a claim holder
 *   cannot grow the trail without bound.
 */
import { randomBytes } from 'node:crypto';
import type { DeviceEvent } from './model';

export { UNLISTED_RETENTION_DAYS } from './model';

/** Partitions per UTC day of the enrollment index. */
export const ENROLLMENT_SHARDS = 8;

/** A trail event as callers describe it; the builder sets `at` (unless given), `sk`, `enrollDay`, `expiresAt`. */
export type NewDeviceEvent = Omit<DeviceEvent, 'sk' | 'at' | 'enrollDay' | 'expiresAt'> & {
  at?: string;
  /**
   * Makes the sort key `<at>#<skSuffix>` instead of `<at>#<random>`, so writing the same fact twice
   * (a retried event) hits the append-only condition instead of adding a second entry.
   * @default - random
   */
  skSuffix?: string;
  /** Keep the entry this many days, then let TTL delete it. @default - kept for ever */
  retentionDays?: number;
};

/** The enrollment index partition of a decision made at `at`, on shard `shard`. */
export function enrollmentPartition(at: string, shard: number): string {
  return `${at.slice(0, 10)}#${shard}`;
}

/**
 * Every enrollment index partition of one UTC day (`YYYY-MM-DD`): the shards, then the bare day,
 * under which entries written before the index was sharded still sit.
 */
export function enrollmentPartitions(day: string): string[] {
  return [...Array.from({ length: ENROLLMENT_SHARDS }, (_, k) => `${day}#${k}`), day];
}

/** UTC days (YYYY-MM-DD) touched by the window [since, until). */
export function utcDays(since: string, until: string): string[] {
  const start = Date.parse(since.slice(0, 10) + 'T00:00:00.000Z');
  const end = Date.parse(until);
  const days: string[] = [];
  for (let t = start; t < end; t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

export function trailEntry(e: NewDeviceEvent, now: () => Date = () => new Date()): DeviceEvent {
  const { retentionDays, skSuffix, ...fields } = e;
  const at = fields.at ?? now().toISOString();
  const suffix = randomBytes(6);
  const event: DeviceEvent = { ...fields, at, sk: `${at}#${skSuffix ?? suffix.toString('hex')}` };
  if (e.type === 'ENROLLMENT_ALLOWED' || e.type === 'ENROLLMENT_DENIED') {
    event.enrollDay = enrollmentPartition(at, suffix[0] % ENROLLMENT_SHARDS);
  }
  if (retentionDays !== undefined) {
    event.expiresAt = Math.floor(Date.parse(at) / 1000) + Math.ceil(retentionDays * 86_400);
  }
  return event;
}
