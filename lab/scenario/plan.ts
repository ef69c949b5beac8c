/**
 * The enrollment scenario's plan: lots, factory identities, the manifest, and what each
 * simulated unit is expected to get. Pure apart from key generation (no I/O, no lab).
 *
 * Lots:
 *   LAB-A    hardware revisions A and B, no attestation. The clone copies one of its units.
 *   LAB-B    hardware revisions A and B, no attestation. One unit uses LAB-A's claim.
 *   LAB-ATT  requires attestation (DeviceProof signed by the factory key).
 *   LAB-HOLD put on hold after the manifest import.
 *
 * Bad cases (each one expected to be denied with its own reason code by the hook):
 *   unknown serials                 → NOT_ON_ALLOWLIST
 *   a lot-B serial with lot-A claim → CLAIM_LOT_MISMATCH
 *   a unit of the lot on hold       → LOT_ON_HOLD
 *   a bad DeviceProof in LAB-ATT    → ATTESTATION_INVALID
 *   a clone of an enrolled LAB-A serial, enrolling after the original is ACTIVE,
 *   with another key and no factory secret (so no DeviceProof) → DEVICE_ALREADY_ACTIVE
 *
 * Templates: each lot's claim certificate belongs to one provisioning template, and a unit
 * enrolls through the template of the claim it presents. With several templates the lots are
 * dealt out in turn (LAB-A to the first, LAB-B to the second, …); a template left without a
 * lot of good units gets its own lot (`LAB-T<n>`), so every template sees good units enroll
 * while every bad case still appears once per plan.
 *
 * Recovery case (expected to end enrolled and ACTIVE):
 *   a LAB-B unit without a factory key whose RegisterThing answer is lost: its first attempt is
 *   allowed (ALLOWED), the device times out, retries with the same key and is allowed again as the
 *   same device → ALLOWED_RETRY_SAME_KEY. A genuine retry is never stranded.
 *
 * MQTT versions: a share of the units (`mqtt5Share`, half by default) runs every session on
 * MQTT 5, the rest on 3.1.1, spread evenly over the good units and, apart, over the bad and
 * recovery cases, so both versions enroll good units and meet denials.
 */
import {
  generateIdentities,
  MQTT_VERSIONS,
  toManifestEntry,
  type DeviceSpec,
  type FactoryIdentity,
  type MqttVersion,
} from '../../device';
import type { AllowReason, DenyReason } from '../../core/model';

export const LAB_LOTS = {
  a: 'LAB-A',
  b: 'LAB-B',
  attested: 'LAB-ATT',
  hold: 'LAB-HOLD',
} as const;

export interface PlannedLot {
  lot: string;
  requireAttestation: boolean;
  hold: boolean;
  hwRevs: string[];
  /** Provisioning template the lot's claim certificate is created for. */
  template: string;
}

export type BadCase = 'unknownSerial' | 'wrongLotClaim' | 'lotOnHold' | 'badAttestation' | 'clone';

export const BAD_CASE_REASON: Record<BadCase, DenyReason> = {
  unknownSerial: 'NOT_ON_ALLOWLIST',
  wrongLotClaim: 'CLAIM_LOT_MISMATCH',
  lotOnHold: 'LOT_ON_HOLD',
  badAttestation: 'ATTESTATION_INVALID',
  clone: 'DEVICE_ALREADY_ACTIVE',
};

export type RecoveryCase = 'lostAnswer';

/** The allow reason the hook must record for the retry of a recovery case. */
export const RECOVERY_CASE_REASON: Record<RecoveryCase, AllowReason> = {
  lostAnswer: 'ALLOWED_RETRY_SAME_KEY',
};

/** One simulated unit and what it should get. */
export interface PlannedDevice {
  spec: DeviceSpec;
  /** `good`: allowlisted unit (enrolls, then activates); otherwise the bad or recovery case. */
  kind: 'good' | BadCase | RecoveryCase;
  /** Reason code the hook must record (bad cases: the denial; recovery cases: the retry's allow). */
  expectedReason?: DenyReason | AllowReason;
  /** For the clone: serial of the original unit. */
  cloneOf?: string;
  /** Provisioning template the unit enrolls through (its claim's). */
  template: string;
}

export interface ScenarioPlan {
  lots: PlannedLot[];
  /** Identities on the manufacturing manifest (good units and allowlisted bad cases). */
  manifest: FactoryIdentity[];
  /** Enrolled in the first wave. */
  firstWave: PlannedDevice[];
  /** Enrolled after every first-wave unit is ACTIVE (clones). */
  secondWave: PlannedDevice[];
  /** Enrolled last, with a fault injected into their RegisterThing answer. */
  recoveryWave: PlannedDevice[];
  counts: {
    devices: number;
    good: number;
    bad: Record<BadCase, number>;
    recovery: number;
    /** Units per MQTT version (every unit of every wave). */
    mqtt: Record<MqttVersion, number>;
  };
}

export interface PlanOptions {
  /** Simulated units in total, bad cases included. @default 200 */
  devices?: number;
  /** Include the deliberate bad cases. @default true */
  badCases?: boolean;
  /** Provisioning template names of the stack, in order (from its ProvisioningTemplates output). */
  templates: readonly string[];
  /** Share of the units on MQTT 5 (0 to 1), the others on 3.1.1. @default {@link DEFAULT_MQTT5_SHARE} */
  mqtt5Share?: number;
}

/** Half the fleet on MQTT 5, half on 3.1.1: both versions in every run. */
export const DEFAULT_MQTT5_SHARE = 0.5;

/** Why `share` is not a share of the fleet (a number from 0 to 1), or undefined. */
export function mqtt5ShareProblem(share: number): string | undefined {
  return Number.isFinite(share) && share >= 0 && share <= 1
    ? undefined
    : `the MQTT 5 share must be a number from 0 to 1 (got ${share}); e.g. 0.5 for half the units`;
}

/**
 * The i-th of a run of units is on MQTT 5 when the count of MQTT 5 units reaches the next whole
 * number there: `share` 0.5 alternates 3.1.1, 5, 3.1.1, …; 0.25 puts every fourth unit on 5.
 */
function spreadMqttVersions(units: PlannedDevice[], share: number): PlannedDevice[] {
  return units.map((u, i) => {
    const five = Math.floor((i + 1) * share + 1e-9) > Math.floor(i * share + 1e-9);
    const mqttVersion: MqttVersion = five ? '5' : '3.1.1';
    return { ...u, spec: { ...u.spec, mqttVersion } };
  });
}

/** Smallest fleet that holds one good unit per lot, one of each bad case and the recovery case. */
export const MIN_DEVICES_WITH_BAD_CASES = 9;

/** Bad cases per kind: about 2 % of the fleet each, at least one. */
export function badCasesPerKind(devices: number): number {
  return Math.max(1, Math.round(devices * 0.02));
}

/** The plan does not fit the fleet size: the message names the minimum. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/** Lots of good units open to enrollment besides LAB-A and LAB-B: one per template they leave uncovered. */
function extraLots(templates: readonly string[]): PlannedLot[] {
  // LAB-A, LAB-B and LAB-ATT (good units) go to templates 0, 1 and 2 (modulo the count).
  return templates.slice(3).map((template, i) => ({
    lot: `LAB-T${i + 4}`,
    requireAttestation: false,
    hold: false,
    hwRevs: ['A', 'B'],
    template,
  }));
}

/** Fewest devices for a plan with bad cases over `templateCount` templates. */
export function minimumDevices(templateCount = 1): number {
  const openLots = 2 + Math.max(0, templateCount - 3);
  for (let devices = MIN_DEVICES_WITH_BAD_CASES; ; devices++) {
    const good = devices - 4 * badCasesPerKind(devices) - 2;
    if (good - Math.max(1, Math.floor(good / 5)) >= openLots && good >= 3) return devices;
  }
}

/** Devices, bad cases on or off, and templates, checked: a fleet too small is a PlanError naming the fix. */
function planSettings(options: PlanOptions): {
  devices: number;
  withBad: boolean;
  templates: readonly string[];
  mqtt5Share: number;
} {
  const devices = options.devices ?? 200;
  const withBad = options.badCases ?? true;
  const templates = options.templates;
  const mqtt5Share = options.mqtt5Share ?? DEFAULT_MQTT5_SHARE;
  const shareProblem = mqtt5ShareProblem(mqtt5Share);
  if (shareProblem) throw new PlanError(shareProblem);
  if (templates.length === 0)
    throw new PlanError('the stack declares no provisioning template; the scenario needs one');
  if (!Number.isInteger(devices) || devices < 1)
    throw new PlanError(`devices must be a positive whole number (got ${devices})`);
  const minimum = withBad ? minimumDevices(templates.length) : 3;
  if (devices < minimum) {
    throw new PlanError(
      `a scenario${withBad ? ' with bad cases' : ''} over ${templates.length} template(s) needs at least ${minimum} devices (got ${devices}); use --devices ${minimum} or more`,
    );
  }
  return { devices, withBad, templates, mqtt5Share };
}

/** The lots, their templates dealt round-robin; the lot on hold only with bad cases. */
function plannedLots(templates: readonly string[], withBad: boolean): PlannedLot[] {
  const dealt = (i: number): string => templates[i % templates.length];
  const lots: PlannedLot[] = [
    { lot: LAB_LOTS.a, requireAttestation: false, hold: false, hwRevs: ['A', 'B'], template: dealt(0) },
    { lot: LAB_LOTS.b, requireAttestation: false, hold: false, hwRevs: ['A', 'B'], template: dealt(1) },
    { lot: LAB_LOTS.attested, requireAttestation: true, hold: false, hwRevs: ['B'], template: dealt(2) },
    ...extraLots(templates),
  ];
  if (withBad)
    lots.push({
      lot: LAB_LOTS.hold,
      requireAttestation: false,
      hold: true,
      hwRevs: ['A'],
      template: dealt(3),
    });
  return lots;
}

/** How many units of each kind. */
function unitCounts(devices: number, withBad: boolean): Omit<ScenarioPlan['counts'], 'mqtt'> {
  const perKind = withBad ? badCasesPerKind(devices) : 0;
  const bad: Record<BadCase, number> = {
    unknownSerial: perKind,
    wrongLotClaim: perKind,
    lotOnHold: perKind,
    badAttestation: perKind,
    clone: withBad ? 1 : 0,
  };
  const badTotal = Object.values(bad).reduce((a, b) => a + b, 0);
  const recovery = withBad ? 1 : 0;
  return { devices, good: devices - badTotal - recovery, bad, recovery };
}

/** Good units: spread over the enrollable lots; open lots alternate hardware revisions. */
function goodIdentities(
  good: number,
  templates: readonly string[],
): { open: FactoryIdentity[]; attested: FactoryIdentity[] } {
  const open = generateIdentities({
    count: good - Math.max(1, Math.floor(good / 5)),
    lots: [LAB_LOTS.a, LAB_LOTS.b, ...extraLots(templates).map((l) => l.lot)],
    hwRevs: ['A', 'B'],
    serialPrefix: 'LABG',
  });
  const attested = generateIdentities({
    count: Math.max(1, Math.floor(good / 5)),
    lots: [LAB_LOTS.attested],
    hwRevs: ['B'],
    serialPrefix: 'LABT',
  });
  return { open, attested };
}

/** First-wave bad cases: who they are, whether the manifest lists them, which fault they carry. */
const FIRST_WAVE_BAD: {
  kind: Exclude<BadCase, 'clone'>;
  lot: string;
  hwRev: string;
  serialPrefix: string;
  onManifest: boolean;
  faults?: DeviceSpec['faults'];
}[] = [
  // Not on the manifest; they hold LAB-A's claim (a leaked claim on an unknown board).
  { kind: 'unknownSerial', lot: LAB_LOTS.a, hwRev: 'A', serialPrefix: 'LABX', onManifest: false },
  // LAB-B units on the manifest that present LAB-A's claim certificate.
  {
    kind: 'wrongLotClaim',
    lot: LAB_LOTS.b,
    hwRev: 'A',
    serialPrefix: 'LABW',
    onManifest: true,
    faults: { wrongLotClaim: LAB_LOTS.a },
  },
  { kind: 'lotOnHold', lot: LAB_LOTS.hold, hwRev: 'A', serialPrefix: 'LABH', onManifest: true },
  {
    kind: 'badAttestation',
    lot: LAB_LOTS.attested,
    hwRev: 'B',
    serialPrefix: 'LABY',
    onManifest: true,
    faults: { badAttestation: true },
  },
];

/** The first wave's bad units and the identities of theirs the manifest lists. */
function firstWaveBadUnits(
  bad: Record<BadCase, number>,
  templateOf: (spec: DeviceSpec) => string,
): { units: PlannedDevice[]; onManifest: FactoryIdentity[] } {
  const units: PlannedDevice[] = [];
  const onManifest: FactoryIdentity[] = [];
  for (const c of FIRST_WAVE_BAD) {
    for (const identity of generateIdentities({
      count: bad[c.kind],
      lots: [c.lot],
      hwRevs: [c.hwRev],
      serialPrefix: c.serialPrefix,
    })) {
      if (c.onManifest) onManifest.push(identity);
      const spec: DeviceSpec = c.faults ? { identity, faults: c.faults } : { identity };
      units.push({ spec, kind: c.kind, expectedReason: BAD_CASE_REASON[c.kind], template: templateOf(spec) });
    }
  }
  return { units, onManifest };
}

/**
 * The clone copies a good LAB-A unit's printed identity (serial, lot, revision, firmware) but
 * not its factory secret: it enrolls with its own new key and sends no DeviceProof.
 */
function cloneUnit(goodOpen: FactoryIdentity[], templateOf: (spec: DeviceSpec) => string): PlannedDevice {
  const original = goodOpen.find((i) => i.lot === LAB_LOTS.a) as FactoryIdentity;
  const { factoryKey: _secret, ...printed } = original;
  return {
    spec: { identity: printed },
    kind: 'clone',
    expectedReason: BAD_CASE_REASON.clone,
    cloneOf: original.serial,
    template: templateOf({ identity: printed }),
  };
}

/** Recovery units: no factory key, so no DeviceProof: only the same public key can prove the retry. */
function recoveryIdentities(recovery: number): FactoryIdentity[] {
  if (recovery === 0) return [];
  return generateIdentities({
    count: recovery,
    lots: [LAB_LOTS.b],
    hwRevs: ['A'],
    serialPrefix: 'LABR',
    withFactoryKey: false,
  });
}

export function buildPlan(options: PlanOptions): ScenarioPlan {
  const { devices, withBad, templates, mqtt5Share } = planSettings(options);
  const lots = plannedLots(templates, withBad);
  const templateOfLot = new Map(lots.map((l) => [l.lot, l.template]));
  /** A unit enrolls through the template of the claim it presents. */
  const templateOf = (spec: DeviceSpec): string =>
    templateOfLot.get(spec.faults?.wrongLotClaim ?? spec.identity.lot) as string;
  const counts = unitCounts(devices, withBad);

  const good = goodIdentities(counts.good, templates);
  const goodUnits: PlannedDevice[] = [...good.open, ...good.attested].map((identity) => ({
    spec: { identity },
    kind: 'good',
    template: templateOf({ identity }),
  }));
  const firstBad = withBad ? firstWaveBadUnits(counts.bad, templateOf) : { units: [], onManifest: [] };
  const secondWave = withBad ? [cloneUnit(good.open, templateOf)] : [];
  const recovering = recoveryIdentities(counts.recovery);
  const recoveryWave: PlannedDevice[] = recovering.map((identity) => ({
    spec: { identity },
    kind: 'lostAnswer',
    expectedReason: RECOVERY_CASE_REASON.lostAnswer,
    template: templateOf({ identity }),
  }));

  // Versions: spread over the good units, and apart over the bad and recovery cases in plan order.
  const good5 = spreadMqttVersions(goodUnits, mqtt5Share);
  const others = spreadMqttVersions([...firstBad.units, ...secondWave, ...recoveryWave], mqtt5Share);
  const [bad5, clones5, recovery5] = [
    others.slice(0, firstBad.units.length),
    others.slice(firstBad.units.length, firstBad.units.length + secondWave.length),
    others.slice(firstBad.units.length + secondWave.length),
  ];
  const all = [...good5, ...others];
  const mqtt = Object.fromEntries(
    MQTT_VERSIONS.map((v) => [v, all.filter((u) => u.spec.mqttVersion === v).length]),
  ) as Record<MqttVersion, number>;

  return {
    lots,
    manifest: [...good.open, ...good.attested, ...firstBad.onManifest, ...recovering],
    firstWave: [...good5, ...bad5],
    secondWave: clones5,
    recoveryWave: recovery5,
    counts: { ...counts, mqtt },
  };
}

/** The manifest as CSV (`serial,lot,hwRev,factoryFirmware,publicKey`; the key as base64 SPKI DER). */
export function manifestCsv(identities: readonly FactoryIdentity[]): string {
  const lines = ['serial,lot,hwRev,factoryFirmware,publicKey'];
  for (const identity of identities) {
    const e = toManifestEntry(identity);
    const key = e.publicKey ? pemBody(e.publicKey) : '';
    lines.push([e.serial, e.lot, e.hwRev, e.firmware, key].join(','));
  }
  return `${lines.join('\n')}\n`;
}

function pemBody(pem: string): string {
  return pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
}
