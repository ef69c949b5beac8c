/**
 * The device lifecycle table: every status change the registry may make, and the only place
 * such a rule is written. The registry adapter derives each conditional write's guard and
 * target from it, the provisioning decision and the presence core ask it whether a step is
 * allowed, and the CLI uses its refusal messages. Pure: no I/O.
 *
 * ```
 * MANUFACTURED --enroll--> PROVISIONING --activate--> ACTIVE
 * PROVISIONING --enroll (proven retry)--> PROVISIONING
 * PROVISIONING --reset (operator)--> MANUFACTURED
 * ACTIVE --rmaOpen--> RMA --rmaNoFaultFound--> ACTIVE
 * RMA --rmaRefurbish--> MANUFACTURED     RMA --rmaScrap--> RETIRED
 * ```
 *
 * A lot on hold is not a device status: it blocks enrollment through the lot record.
 */
import type { DenyReason, DeviceEventType, DeviceStatus } from './model';

/** One allowed status change. */
export interface LifecycleTransition {
  /** Statuses the change may start from. */
  readonly from: readonly DeviceStatus[];
  /** Status after the change. */
  readonly to: DeviceStatus;
  /** Trail entry type the change appends. */
  readonly event: DeviceEventType;
  /** What causes it, for messages and docs. */
  readonly cause: string;
}

/** Every allowed status change, by name. */
export const LIFECYCLE = {
  /** The pre-provisioning hook allows an enrollment (first attempt, or a proven retry). */
  enroll: {
    from: ['MANUFACTURED', 'PROVISIONING'],
    to: 'PROVISIONING',
    event: 'ENROLLMENT_ALLOWED',
    cause: 'the pre-provisioning hook allowed an enrollment',
  },
  /** The first connection with the device's current certificate. */
  activate: {
    from: ['PROVISIONING'],
    to: 'ACTIVE',
    event: 'ACTIVATED',
    cause: 'the device connected with its new certificate',
  },
  /** An operator resets a unit stuck in PROVISIONING so that it can enroll again. */
  reset: {
    from: ['PROVISIONING'],
    to: 'MANUFACTURED',
    event: 'STATUS_RESET',
    cause: 'an operator reset a unit stuck in PROVISIONING',
  },
  /** A return is opened: the certificate is deactivated and the thing quarantined. */
  rmaOpen: {
    from: ['ACTIVE'],
    to: 'RMA',
    event: 'RMA_OPENED',
    cause: 'a return (RMA) was opened',
  },
  /** The returned unit showed no fault: its certificate is reactivated. */
  rmaNoFaultFound: {
    from: ['RMA'],
    to: 'ACTIVE',
    event: 'RMA_CLOSED',
    cause: 'the returned unit showed no fault',
  },
  /** The returned unit is refurbished: the old certificate is revoked; it enrolls anew. */
  rmaRefurbish: {
    from: ['RMA'],
    to: 'MANUFACTURED',
    event: 'RMA_CLOSED',
    cause: 'the returned unit was refurbished',
  },
  /** The returned unit is scrapped: its certificate is revoked for good. */
  rmaScrap: {
    from: ['RMA'],
    to: 'RETIRED',
    event: 'RMA_CLOSED',
    cause: 'the returned unit was scrapped',
  },
} as const satisfies Record<string, LifecycleTransition>;

export type LifecycleAction = keyof typeof LIFECYCLE;

/** Target status of an action. */
export type TargetStatus<A extends LifecycleAction> = (typeof LIFECYCLE)[A]['to'];
/** Statuses an action may start from. */
export type SourceStatus<A extends LifecycleAction> = (typeof LIFECYCLE)[A]['from'][number];

/** Whether `action` may start from `status`. */
export function canTransition<A extends LifecycleAction>(
  action: A,
  status: DeviceStatus | undefined,
): status is SourceStatus<A> {
  return status !== undefined && (LIFECYCLE[action].from as readonly DeviceStatus[]).includes(status);
}

/**
 * Why a device in each status may not enroll: the provisioning decision's reason code. A status
 * the `enroll` transition may start from has no entry.
 */
export const ENROLLMENT_DENIALS: Readonly<Record<Exclude<DeviceStatus, SourceStatus<'enroll'>>, DenyReason>> =
  {
    ACTIVE: 'DEVICE_ALREADY_ACTIVE',
    RMA: 'DEVICE_IN_RMA',
    RETIRED: 'DEVICE_RETIRED',
  };

/** What an operator can do about a device in each status (used in refusal messages). */
const STATUS_ADVICE: Readonly<Record<DeviceStatus, string>> = {
  MANUFACTURED: 'it is MANUFACTURED and can enroll with its claim certificate',
  PROVISIONING: 'it is PROVISIONING: an enrollment was allowed and the unit has not connected yet',
  ACTIVE: 'it is ACTIVE and in service',
  RMA: 'it is under RMA until the return is closed',
  RETIRED: 'it is RETIRED and can never enroll again',
};

/** Raised for a status change the lifecycle table does not allow; the message names the fix. */
export class LifecycleError extends Error {
  override readonly name = 'LifecycleError';
  constructor(
    readonly action: LifecycleAction,
    readonly serial: string,
    readonly status: DeviceStatus | undefined,
  ) {
    super(refusal(action, serial, status));
  }
}

/** One sentence: why `action` cannot apply to the device, and what to do instead. */
export function refusal(action: LifecycleAction, serial: string, status: DeviceStatus | undefined): string {
  const t: LifecycleTransition = LIFECYCLE[action];
  if (status === undefined) {
    return `device ${serial} is not in the registry; check the serial, or import it with "fleet manifest import"`;
  }
  if (status === t.to && !canTransition(action, status)) {
    return `device ${serial} is already ${status}; nothing to ${action}`;
  }
  return (
    `cannot ${action} device ${serial}: that step only applies to a device in ${t.from.join(' or ')}, ` +
    `but ${STATUS_ADVICE[status]}`
  );
}

/** Throw {@link LifecycleError} unless `action` may start from `status`. */
export function assertTransition<A extends LifecycleAction>(
  action: A,
  serial: string,
  status: DeviceStatus | undefined,
): asserts status is SourceStatus<A> {
  if (!canTransition(action, status)) throw new LifecycleError(action, serial, status);
}
