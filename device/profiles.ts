/**
 * Behaviour profiles of a streaming device, chosen by the firmware it runs, so a scenario can
 * give a release candidate a fault the stable release does not have:
 *
 * - `healthy`: stays connected; reconnects with backoff only if the link drops by itself.
 * - `flaky`: the link drops abruptly every `dropEveryMs` (±50 %): the socket dies without
 *   DISCONNECT, so the broker publishes the Last Will. The device keeps taking readings into its
 *   buffer, reconnects after `offlineMs` (then full-jitter backoff while connecting fails) and
 *   re-sends what it buffered, oldest first.
 * - `crash-looping`: the device crashes `crashEveryMs` after each boot: the session dies abruptly
 *   (Last Will), the device is down for `rebootMs`, then boots with a new boot id, uptime from 0
 *   and reset reason `crashReason` (WATCHDOG by default), reconnects and reports health at once.
 */
import { FIRMWARE_PATTERN } from '../core/model';

export const BEHAVIOUR_PROFILES = ['healthy', 'flaky', 'crash-looping'] as const;
export type BehaviourProfile = (typeof BEHAVIOUR_PROFILES)[number];

/** Firmware version → profile. A version not listed runs the default profile. */
export type FirmwareProfiles = Readonly<Record<string, BehaviourProfile>>;

export interface ProfileSettings {
  flaky: {
    /** Mean time online between two link drops (each drawn uniformly in [0.5, 1.5] × this). */
    dropEveryMs: number;
    /** How long the link stays down before the first reconnect attempt. */
    offlineMs: number;
  };
  crashLooping: {
    /** Time from each boot to the next crash. */
    crashEveryMs: number;
    crashReason: 'WATCHDOG' | 'PANIC';
  };
  /** Time a rebooting device is down (crash or requested reboot) before it boots again. */
  rebootMs: number;
}

export const DEFAULT_PROFILE_SETTINGS: ProfileSettings = {
  flaky: { dropEveryMs: 15_000, offlineMs: 4_000 },
  crashLooping: { crashEveryMs: 20_000, crashReason: 'WATCHDOG' },
  rebootMs: 2_000,
};

/** Settings over the defaults, each part merged on its own. */
export function resolveProfileSettings(partial?: {
  flaky?: Partial<ProfileSettings['flaky']>;
  crashLooping?: Partial<ProfileSettings['crashLooping']>;
  rebootMs?: number;
}): ProfileSettings {
  const s: ProfileSettings = {
    flaky: { ...DEFAULT_PROFILE_SETTINGS.flaky, ...partial?.flaky },
    crashLooping: { ...DEFAULT_PROFILE_SETTINGS.crashLooping, ...partial?.crashLooping },
    rebootMs: partial?.rebootMs ?? DEFAULT_PROFILE_SETTINGS.rebootMs,
  };
  for (const [name, v] of [
    ['flaky.dropEveryMs', s.flaky.dropEveryMs],
    ['flaky.offlineMs', s.flaky.offlineMs],
    ['crashLooping.crashEveryMs', s.crashLooping.crashEveryMs],
    ['rebootMs', s.rebootMs],
  ] as const) {
    if (!Number.isFinite(v) || v < 0)
      throw new Error(`profile setting ${name} must be a number ≥ 0, got ${v}`);
  }
  if (s.flaky.dropEveryMs === 0 || s.crashLooping.crashEveryMs === 0)
    throw new Error('profile settings flaky.dropEveryMs and crashLooping.crashEveryMs must be > 0');
  return s;
}

export function isBehaviourProfile(value: string): value is BehaviourProfile {
  return (BEHAVIOUR_PROFILES as readonly string[]).includes(value);
}

/** The profile a firmware version runs. */
export function profileFor(
  firmware: string,
  profiles: FirmwareProfiles | undefined,
  fallback: BehaviourProfile = 'healthy',
): BehaviourProfile {
  return profiles?.[firmware] ?? fallback;
}

/**
 * Parse `<firmware>=<profile>` (e.g. `1.1.0-rc1=crash-looping`). Throws an Error that names what
 * is wrong and what would be right.
 */
export function parseProfileAssignment(text: string): [string, BehaviourProfile] {
  const m = /^\s*([^=\s]+)\s*=\s*([^=\s]+)\s*$/.exec(text);
  if (!m)
    throw new Error(
      `"${text}" is not <firmware>=<profile>; e.g. 1.1.0-rc1=crash-looping (profiles: ${BEHAVIOUR_PROFILES.join(', ')})`,
    );
  const [, firmware, profile] = m;
  if (!FIRMWARE_PATTERN.test(firmware))
    throw new Error(`"${firmware}" is not a firmware version; use MAJOR.MINOR.PATCH[-pre], e.g. 1.1.0-rc1`);
  if (!isBehaviourProfile(profile))
    throw new Error(`"${profile}" is not a profile; use one of ${BEHAVIOUR_PROFILES.join(', ')}`);
  return [firmware, profile];
}

/** Parse several assignments into a map; the same firmware twice with different profiles is an error. */
export function parseFirmwareProfiles(texts: readonly string[]): Record<string, BehaviourProfile> {
  const out: Record<string, BehaviourProfile> = {};
  for (const text of texts) {
    const [fw, profile] = parseProfileAssignment(text);
    if (out[fw] && out[fw] !== profile)
      throw new Error(`firmware ${fw} is given two profiles (${out[fw]} and ${profile}); give it one`);
    out[fw] = profile;
  }
  return out;
}
