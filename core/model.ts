/**
 * Domain model shared by the Lambda handlers, the `fleet` CLI, the device simulator and the
 * local lab. This file is the single source of truth for table attribute names, index names,
 * device lifecycle states, rollout rings and provisioning reason codes.
 *
 * It has no AWS SDK import and no I/O.
 */
import type { SourceStatus } from './lifecycle';

/** Device lifecycle status stored on the Devices table (see docs/architecture.md). */
export const DEVICE_STATUSES = ['MANUFACTURED', 'PROVISIONING', 'ACTIVE', 'RMA', 'RETIRED'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

/** Lot status stored on the Lots table. A lot on HOLD blocks provisioning of its units. */
export const LOT_STATUSES = ['OK', 'HOLD'] as const;
export type LotStatus = (typeof LOT_STATUSES)[number];

/** Rollout rings, assigned at enrollment from a deterministic hash of the serial. */
export const RINGS = ['canary', 'early', 'broad'] as const;
export type Ring = (typeof RINGS)[number];

/**
 * Reason codes of the pre-provisioning decision. Every decision carries exactly one; operators
 * filter the enrollment view and the `ProvisioningDecision` metric by it.
 */
export const ALLOW_REASONS = [
  /** First enrollment of a MANUFACTURED unit. */
  'ALLOWED',
  /** Retry of an attempt in PROVISIONING with the same public key (CSR flow). */
  'ALLOWED_RETRY_SAME_KEY',
  /** Retry of an attempt in PROVISIONING proven by a valid factory-key attestation. */
  'ALLOWED_RETRY_ATTESTED',
  /** Retry of an attempt in PROVISIONING whose earlier certificate provably never became usable. */
  'ALLOWED_RETRY_PRIOR_CERT_UNUSABLE',
] as const;

export const DENY_REASONS = [
  /** The hook event or its parameters failed schema validation. */
  'INVALID_PARAMETERS',
  /** The event's template is not one this hook serves. */
  'TEMPLATE_MISMATCH',
  /** The serial is not on the manufacturing allowlist (Devices table). */
  'NOT_ON_ALLOWLIST',
  /** The device's lot has no record on the Lots table. */
  'LOT_UNKNOWN',
  /** The claim certificate was not issued for this device's lot. */
  'CLAIM_LOT_MISMATCH',
  /** The device's lot is on HOLD. */
  'LOT_ON_HOLD',
  /** The reported hardware revision differs from the manifest. */
  'HARDWARE_REVISION_MISMATCH',
  /** The lot requires attestation and the request carries no DeviceProof. */
  'ATTESTATION_REQUIRED',
  /** The DeviceProof does not verify against the factory public key. */
  'ATTESTATION_INVALID',
  /** The serial is already ACTIVE: a clone or a duplicate enrollment. */
  'DEVICE_ALREADY_ACTIVE',
  /** An earlier attempt is PROVISIONING and this request cannot prove it is the same device. */
  'DUPLICATE_IN_PROGRESS',
  /** The device is under RMA. */
  'DEVICE_IN_RMA',
  /** The device is retired. */
  'DEVICE_RETIRED',
  /** Another attempt for the same serial won the conditional write. */
  'CONCURRENT_ATTEMPT',
  /** Any unexpected failure: the hook fails closed. */
  'INTERNAL_ERROR',
] as const;

export type AllowReason = (typeof ALLOW_REASONS)[number];
export type DenyReason = (typeof DENY_REASONS)[number];
export type DecisionReason = AllowReason | DenyReason;

/** Types of entries on the append-only device event trail. */
export const EVENT_TYPES = [
  'MANUFACTURED',
  'ENROLLMENT_ALLOWED',
  'ENROLLMENT_DENIED',
  'ACTIVATED',
  'CONNECTED',
  'DISCONNECTED',
  'STATUS_RESET',
  'RMA_OPENED',
  'RMA_CLOSED',
  /** The device reported a firmware version other than the registry held. */
  'FIRMWARE_CHANGED',
  /** A staged OTA rollout recorded the device's outcome in one job (update or rollback). */
  'OTA_OUTCOME',
] as const;
export type DeviceEventType = (typeof EVENT_TYPES)[number];

/** Attribute and index names of the three registry tables. */
export const TABLES = {
  devices: {
    partitionKey: 'serial',
    byLotIndex: 'byLot',
    byLotKey: 'lot',
    byThingIndex: 'byThing',
    byThingKey: 'thingName',
    byCertificateIndex: 'byCertificate',
    byCertificateKey: 'certificateId',
  },
  lots: {
    partitionKey: 'lot',
  },
  events: {
    partitionKey: 'serial',
    sortKey: 'sk',
    /**
     * Sparse GSI holding only enrollment decisions. Its partition key is the UTC day and a shard
     * (`YYYY-MM-DD#k`, see core/trail.ts), so an enrollment burst spreads over several partitions.
     */
    enrollmentIndex: 'byEnrollmentDay',
    enrollmentPartitionKey: 'enrollDay',
    enrollmentSortKey: 'at',
    /** TTL attribute (epoch seconds): set only on entries of serials that are not on the manifest. */
    expiresAt: 'expiresAt',
  },
  /** Staged OTA rollouts: one item per rollout, its controller state guarded by `revision`. */
  rollouts: {
    partitionKey: 'rolloutId',
    /**
     * Sparse GSI of the rollouts the controller still drives: `active` is set (to
     * {@link ACTIVE_ROLLOUT_MARK}) only while the rollout is not in a final state.
     */
    activeIndex: 'byActive',
    activeKey: 'active',
    activeSortKey: 'rolloutId',
  },
} as const;

/** Value of the rollouts table's sparse `active` attribute while a rollout is not final. */
export const ACTIVE_ROLLOUT_MARK = 'ACTIVE';

/** Bounds of the retention of unlisted serials' trail entries (TTL `expiresAt`), in days. */
export const UNLISTED_RETENTION_DAYS = { min: 1, max: 3650 } as const;

/** One certificate that has belonged to a device, newest last. */
export interface CertificateLineageEntry {
  certificateId: string;
  /** ISO-8601 time the hook allowed this certificate. */
  issuedAt: string;
  /** SHA-256 fingerprint (hex) of the certificate's SubjectPublicKeyInfo. */
  publicKeyFingerprint: string;
}

/** An item of the Devices table. */
export interface DeviceRecord {
  serial: string;
  lot: string;
  hwRev: string;
  factoryFirmware: string;
  currentFirmware: string;
  status: DeviceStatus;
  /** Factory attestation public key (PEM SPKI), when the manifest carries one. */
  publicKey?: string;
  /** Set once the hook allows an enrollment. */
  thingName?: string;
  ring?: Ring;
  /** Current certificate id (present from the first allowed enrollment on). */
  certificateId?: string;
  /** Fingerprint of the current certificate's public key. */
  publicKeyFingerprint?: string;
  /** Every certificate ever allowed for this serial, oldest first. */
  certificateHistory?: CertificateLineageEntry[];
  /** Presence bookkeeping for ordered lifecycle events. */
  presenceVersion?: number;
  presenceTimestamp?: number;
  connected?: boolean;
  /** Reason of the last disconnect (AWS IoT lifecycle event `disconnectReason`). */
  disconnectReason?: string;
  /** ISO time of the last health report the registry recorded (written at most once per lastSeen interval). */
  lastSeen?: string;
  /** Health state of the last recorded report (core/health.ts DeviceHealthState). */
  healthBootId?: string;
  healthUptimeS?: number;
  /** Device time of that report, epoch ms. */
  healthTs?: number;
  createdAt: string;
  updatedAt: string;
  activatedAt?: string;
  /** Monotonic counter incremented by every status transition (optimistic concurrency). */
  revision: number;
}

/**
 * The conditional write the pre-provisioning hook must win before it may allow an enrollment:
 * produced by the decision core, applied by the registry.
 */
export interface ProvisioningTransition {
  /** Status read by the hook: MANUFACTURED (first attempt) or PROVISIONING (retry). */
  expectedStatus: SourceStatus<'enroll'>;
  /** Revision read by the hook; the write fails when anyone moved it since. */
  expectedRevision: number;
  thingName: string;
  ring: Ring;
  certificateId: string;
  publicKeyFingerprint: string;
  /** Firmware the device reported. */
  firmware: string;
  /** Append the certificate to the lineage (false when the same certificate is retried). */
  appendHistory: boolean;
}

/** An item of the Lots table. */
export interface LotRecord {
  lot: string;
  status: LotStatus;
  holdReason?: string;
  /** Claim certificate ids issued for this lot (string set on the table). */
  claimCertificateIds: string[];
  /** When true, enrollment requires a DeviceProof signed by the factory key. */
  requireAttestation: boolean;
  unitCount: number;
  createdAt: string;
  updatedAt: string;
}

/** An item of the Events (trail) table. Never updated, never deleted by the stack. */
export interface DeviceEvent {
  serial: string;
  /** `<ISO time>#<random suffix>`: time-ordered and unique within the partition. */
  sk: string;
  at: string;
  type: DeviceEventType;
  reason?: DecisionReason | string;
  lot?: string;
  /** Only on enrollment decisions: `<UTC day>#<shard>`, the sparse GSI partition. */
  enrollDay?: string;
  /** Epoch seconds after which DynamoDB TTL may delete the entry (unlisted serials only). */
  expiresAt?: number;
  detail?: Record<string, string | number | boolean>;
}

/** Parameters a device sends in its RegisterThing request (all strings, per the MQTT API). */
export const PROVISIONING_PARAMETERS = {
  serial: 'SerialNumber',
  hwRev: 'HardwareRevision',
  firmware: 'FirmwareVersion',
  proof: 'DeviceProof',
} as const;

/** Parameters the hook sets through `parameterOverrides`. */
export const OVERRIDE_PARAMETERS = {
  thingName: 'ThingName',
  ring: 'Ring',
  lot: 'Lot',
  hwRev: 'HardwareRevision',
} as const;

/** Default prefix of thing names and of every account-level fixed name. */
export const DEFAULT_THING_NAME_PREFIX = 'fleet';
/** Default MQTT topic prefix (`dt/<prefix>/<thing>/…`). */
export const DEFAULT_TOPIC_PREFIX = 'fleet';
/** Default client id prefix of claim-certificate (provisioning) connections. */
export const DEFAULT_CLAIM_CLIENT_ID_PREFIX = 'prov-';

/** Client id of a unit's claim (provisioning) connection: `<claimClientIdPrefix><serial>`. */
export function claimClientIdFor(claimClientIdPrefix: string, serial: string): string {
  return `${claimClientIdPrefix}${serial}`;
}

/** Thing name for a serial: `<prefix>-<serial>`. */
export function thingNameFor(prefix: string, serial: string): string {
  return `${prefix}-${serial}`;
}

/** Inverse of {@link thingNameFor}; undefined when the name does not carry the prefix. */
export function serialFromThingName(prefix: string, thingName: string): string | undefined {
  const head = `${prefix}-`;
  return thingName.startsWith(head) && thingName.length > head.length
    ? thingName.slice(head.length)
    : undefined;
}

/** Thing group names for rings, lots and quarantine. */
export const thingGroupNames = {
  ring: (prefix: string, ring: Ring): string => `${prefix}-ring-${ring}`,
  lot: (prefix: string, lot: string): string => `${prefix}-lot-${lot}`,
  quarantine: (prefix: string): string => `${prefix}-quarantine`,
};

/** Default format of serial numbers (overridable through FleetConfig). */
export const DEFAULT_SERIAL_PATTERN = '^[A-Z0-9][A-Z0-9-]{3,31}$';
/** Longest serial accepted, whatever the configured pattern allows (thing names: 128 bytes). */
export const MAX_SERIAL_LENGTH = 64;
/** Characters of an AWS IoT thing name. */
export const THING_NAME_CHARSET = /^[A-Za-z0-9:_-]+$/;
/** Longest AWS IoT thing name. */
export const MAX_THING_NAME_LENGTH = 128;

/**
 * Why `name` is not an AWS IoT thing name (`[a-zA-Z0-9:_-]{1,128}`), or undefined when it is one.
 * A thing name becomes a client id, policy resources and file names, so nothing else (a topic
 * wildcard, a path separator, `..`) may pass.
 */
export function thingNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_THING_NAME_LENGTH)
    return `is longer than ${MAX_THING_NAME_LENGTH} characters, so it is not an AWS IoT thing name`;
  if (!THING_NAME_CHARSET.test(name))
    return 'is not an AWS IoT thing name (only A-Z a-z 0-9 : _ -, at most 128 characters)';
  return undefined;
}

/**
 * Why `serial` can never be part of a thing name, or undefined when it can (independent of the
 * configured pattern): at most {@link MAX_SERIAL_LENGTH} of the thing name characters, so
 * `<prefix>-<serial>` is a thing name and never puts a topic wildcard or level separator into a
 * policy resource.
 */
export function unsafeSerialProblem(serial: string): string | undefined {
  if (serial.length > MAX_SERIAL_LENGTH) return `is longer than ${MAX_SERIAL_LENGTH} characters`;
  if (!THING_NAME_CHARSET.test(serial))
    return 'holds characters a thing name cannot (only A-Z a-z 0-9 : _ -)';
  return undefined;
}
/** Lot identifiers: short, safe for thing-group names. */
export const LOT_PATTERN = /^[A-Za-z0-9_-]{1,48}$/;
/** Hardware revisions, e.g. `A`, `rev2`, `B-1`. */
export const HW_REV_PATTERN = /^[A-Za-z0-9._-]{1,16}$/;
/**
 * Firmware versions: MAJOR.MINOR.PATCH with an optional pre-release suffix. Semantic-version
 * build metadata (`+…`) is not accepted because AWS IoT thing attribute values cannot hold `+`,
 * and the firmware version becomes a thing attribute at enrollment.
 */
export const FIRMWARE_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;
