/**
 * Pure core of the presence (activation) Lambda: what one AWS IoT lifecycle event
 * (`$aws/events/presence/connected|disconnected/<clientId>`) does to a device record.
 * No AWS SDK import, no I/O.
 *
 * - A `connected` event from the device's current certificate while it is PROVISIONING
 *   activates it (PROVISIONING -> ACTIVE).
 * - The connectivity fields move only forward in (versionNumber, timestamp) order: AWS documents
 *   that lifecycle messages may arrive out of order or twice, so a late or duplicate event never
 *   rolls them back. The registry enforces the same order in its conditional write.
 * - They include the disconnect reason (stored by a disconnect, removed by a connect) and, on a
 *   connect newer than the stored lastSeen, lastSeen itself: the same write, at no extra cost.
 *   lastSeen is shared with the health consumer, so it only ever moves forward (the registry
 *   guards it too).
 */
import { canTransition, LIFECYCLE } from './lifecycle';
import { DeviceEventType, DeviceRecord } from './model';

/** The lifecycle event fields the Lambda relies on (AWS IoT Core developer guide, lifecycle events). */
export interface PresenceEvent {
  clientId: string;
  /** Epoch milliseconds. */
  timestamp: number;
  eventType: 'connected' | 'disconnected';
  versionNumber: number;
  sessionIdentifier?: string;
  /** Certificate id for X.509 connections. */
  principalIdentifier?: string;
  disconnectReason?: string;
  clientInitiatedDisconnect?: boolean;
}

/** `a` is strictly newer than the stored (version, timestamp). */
export function isNewerPresence(
  a: { versionNumber: number; timestamp: number },
  stored: Pick<DeviceRecord, 'presenceVersion' | 'presenceTimestamp'>,
): boolean {
  if (stored.presenceVersion === undefined) return true;
  if (a.versionNumber !== stored.presenceVersion) return a.versionNumber > stored.presenceVersion;
  return a.timestamp > (stored.presenceTimestamp ?? -1);
}

/** The connectivity fields a presence event writes. */
export interface PresenceFields {
  connected: boolean;
  versionNumber: number;
  /** Event time, epoch milliseconds. */
  timestamp: number;
  /** The event's disconnect reason (disconnects only); a connect clears the stored one. */
  disconnectReason?: string;
  /** ISO event time, set on a connect newer than the stored lastSeen. */
  lastSeen?: string;
}

export type PresencePlan =
  | { kind: 'ignore'; why: 'UNKNOWN_DEVICE' | 'STALE' }
  | {
      kind: 'apply';
      /** PROVISIONING -> ACTIVE with this event. */
      activate: boolean;
      /** The connectivity fields move to this event. */
      updatePresence: boolean;
      presence: PresenceFields;
      /** Trail entries to append once the write succeeded. */
      events: DeviceEventType[];
    };

/** The connectivity fields of `event` written over `device`. */
export function presenceFields(event: PresenceEvent, device: Pick<DeviceRecord, 'lastSeen'>): PresenceFields {
  const connected = event.eventType === 'connected';
  const fields: PresenceFields = {
    connected,
    versionNumber: event.versionNumber,
    timestamp: event.timestamp,
  };
  if (!connected && event.disconnectReason) fields.disconnectReason = event.disconnectReason;
  const at = new Date(event.timestamp).toISOString();
  if (connected && (device.lastSeen === undefined || device.lastSeen < at)) fields.lastSeen = at;
  return fields;
}

export function planPresence(event: PresenceEvent, device: DeviceRecord | undefined): PresencePlan {
  if (!device) return { kind: 'ignore', why: 'UNKNOWN_DEVICE' };
  const connected = event.eventType === 'connected';
  const activate =
    connected &&
    canTransition('activate', device.status) &&
    device.certificateId !== undefined &&
    event.principalIdentifier === device.certificateId;
  const updatePresence = isNewerPresence(event, device);
  if (!activate && !updatePresence) return { kind: 'ignore', why: 'STALE' };
  const events: DeviceEventType[] = [];
  if (activate) events.push('ACTIVATED');
  if (updatePresence) events.push(connected ? 'CONNECTED' : 'DISCONNECTED');
  return {
    kind: 'apply',
    activate,
    updatePresence,
    presence: presenceFields(event, device),
    events,
  };
}

/**
 * The trail entries a presence event produced, by their deterministic sort-key suffix, so that a
 * retried or duplicated event can only ever find them written: the activation is identified by
 * its time (`<activatedAt>#ACTIVATED`, one per activation), a connectivity change by the event's
 * time and version (`<at>#CONNECTED#<versionNumber>`).
 */
export function presenceSkSuffix(type: DeviceEventType, versionNumber: number): string {
  return type === LIFECYCLE.activate.event ? type : `${type}#${versionNumber}`;
}

/**
 * The entries of an event that the device record shows was already applied: a retry after the
 * write committed but an append failed, or a duplicate delivery. The activation is this event's
 * when it happened at the event's time with the event's certificate; the connectivity fields are
 * this event's when they hold exactly its version, time and state.
 */
export function entriesOfAppliedEvent(e: PresenceEvent, device: DeviceRecord): DeviceEventType[] {
  const connected = e.eventType === 'connected';
  const at = new Date(e.timestamp).toISOString();
  const types: DeviceEventType[] = [];
  if (
    connected &&
    device.activatedAt === at &&
    device.certificateId !== undefined &&
    device.certificateId === e.principalIdentifier
  ) {
    types.push(LIFECYCLE.activate.event);
  }
  if (
    device.presenceVersion === e.versionNumber &&
    device.presenceTimestamp === e.timestamp &&
    device.connected === connected
  ) {
    types.push(connected ? 'CONNECTED' : 'DISCONNECTED');
  }
  return types;
}
