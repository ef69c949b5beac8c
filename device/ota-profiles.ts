/**
 * How a simulated device behaves when a job asks it to install a firmware version, chosen by that
 * version, so a scenario can release one good version and one bad version of each kind:
 *
 * - `good`: installs, self-tests, reports SUCCEEDED.
 * - `install-failure` (`:P`): in P % of devices (all when P is omitted) the install fails: FAILED
 *   with a reason, and the device stays on its previous slot. Which devices fail is decided by
 *   the seed and the serial, so a run can be replayed.
 * - `never-answers`: starts the execution (with its step timeout), then never reports again, so
 *   the service ends it as TIMED_OUT.
 * - `crash-after-success`: installs and reports SUCCEEDED, then crash-loops (the streaming
 *   device's `crash-looping` profile for that version): only the health gate can catch it.
 * - `silent-after-success`: installs and reports SUCCEEDED, then sends nothing more, neither
 *   health nor telemetry: only the silence gate can catch it.
 */
import { FIRMWARE_PATTERN } from '../core/model';
import type { RandomFn } from './backoff';
import type { FirmwareProfiles } from './profiles';
import { seededRandom } from './seeded-random';

/** Names of the OTA firmware profiles. */
export const OTA_PROFILES = [
  'good',
  'install-failure',
  'never-answers',
  'crash-after-success',
  'silent-after-success',
] as const;

/** One OTA firmware profile name. */
export type OtaProfileName = (typeof OTA_PROFILES)[number];

/** A profile and, for `install-failure`, the share of devices that fail. */
export interface OtaProfile {
  name: OtaProfileName;
  /** `install-failure` only: percent of devices (0–100) whose install fails. @default 100 */
  failurePercent?: number;
}

/** Firmware version → OTA profile. A version not listed is `good`. */
export type OtaFirmwareProfiles = Readonly<Record<string, OtaProfile>>;

/** What one device does with one version, once drawn: the agent acts on this. */
export type OtaBehaviour =
  'install' | 'fail-install' | 'hang' | 'crash-after-success' | 'silent-after-success';

/** Whether `value` names an OTA profile. */
export function isOtaProfileName(value: string): value is OtaProfileName {
  return (OTA_PROFILES as readonly string[]).includes(value);
}

/** The profile of `version` (`good` when the map does not name it). */
export function otaProfileFor(version: string, profiles: OtaFirmwareProfiles | undefined): OtaProfile {
  return profiles?.[version] ?? { name: 'good' };
}

/**
 * The random draw of one device for one version: the same `seed`, serial and version always give
 * the same value, whatever else the run does.
 */
export function otaDraw(seed: string, serial: string, version: string): RandomFn {
  return seededRandom(`ota\u0000${seed}\u0000${serial}\u0000${version}`);
}

/** What a device with this draw does under `profile` (pure). */
export function decideOtaBehaviour(profile: OtaProfile, random: RandomFn): OtaBehaviour {
  switch (profile.name) {
    case 'good':
      return 'install';
    case 'install-failure':
      return random() * 100 < (profile.failurePercent ?? 100) ? 'fail-install' : 'install';
    case 'never-answers':
      return 'hang';
    case 'crash-after-success':
      return 'crash-after-success';
    case 'silent-after-success':
      return 'silent-after-success';
  }
}

/**
 * The streaming profiles the same fleet needs: every `crash-after-success` version runs the
 * `crash-looping` streaming profile once installed. Pass the result (merged with any other
 * assignments) as the streaming device's `profiles`.
 */
export function streamingProfilesFor(profiles: OtaFirmwareProfiles): FirmwareProfiles {
  const out: Record<string, 'crash-looping'> = {};
  for (const [version, p] of Object.entries(profiles))
    if (p.name === 'crash-after-success') out[version] = 'crash-looping';
  return out;
}

/**
 * Parses `<firmware>=<profile>[:<percent>]`, e.g. `3.0.0=install-failure:30` or
 * `4.0.0=crash-after-success`. Throws an Error naming what is wrong and what would be right.
 */
export function parseOtaProfileAssignment(text: string): [string, OtaProfile] {
  const m = /^\s*([^=\s]+)\s*=\s*([a-z-]+)(?::([0-9]+(?:\.[0-9]+)?))?\s*$/.exec(text);
  if (!m)
    throw new Error(
      `"${text}" is not <firmware>=<profile>[:<percent>]; e.g. 3.0.0=install-failure:30 (profiles: ${OTA_PROFILES.join(', ')})`,
    );
  const [, firmware, name, percent] = m;
  if (!FIRMWARE_PATTERN.test(firmware))
    throw new Error(`"${firmware}" is not a firmware version; use MAJOR.MINOR.PATCH[-pre], e.g. 3.0.0`);
  if (!isOtaProfileName(name))
    throw new Error(`"${name}" is not an OTA profile; use one of ${OTA_PROFILES.join(', ')}`);
  if (percent !== undefined) {
    if (name !== 'install-failure')
      throw new Error(`only install-failure takes a percent (${firmware}=install-failure:${percent})`);
    const p = Number(percent);
    if (p > 100) throw new Error(`install-failure percent must be 0 to 100, got ${percent}`);
    return [firmware, { name, failurePercent: p }];
  }
  return [firmware, { name }];
}

/** Parses several assignments; the same version twice with different profiles is an error. */
export function parseOtaProfiles(texts: readonly string[]): Record<string, OtaProfile> {
  const out: Record<string, OtaProfile> = {};
  for (const text of texts) {
    const [fw, p] = parseOtaProfileAssignment(text);
    const prev = out[fw];
    if (prev && (prev.name !== p.name || prev.failurePercent !== p.failurePercent))
      throw new Error(`firmware ${fw} is given two OTA profiles; give it one`);
    out[fw] = p;
  }
  return out;
}
