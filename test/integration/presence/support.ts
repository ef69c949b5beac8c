/** What the presence tests share: the certificate their devices enrolled with, and an activated device. */
import type { DeviceRecord } from '../../../core/model';
import { deviceRecord } from '../hook/fixtures';

/** The certificate the devices enrolled with (the lifecycle events' principal). */
export const CERT = 'c'.repeat(64);
/** When the stored presence was recorded, epoch ms. */
export const T = 1_760_000_000_000;

/**
 * A device of LOT-A enrolled on {@link CERT} and activated (revision 2), connected, its presence
 * at version 1 from {@link T}; `over` changes any of it.
 */
export function activeDevice(serial: string, over: Partial<DeviceRecord> = {}): DeviceRecord {
  return deviceRecord(serial, 'LOT-A', {
    status: 'ACTIVE',
    certificateId: CERT,
    revision: 2,
    connected: true,
    presenceVersion: 1,
    presenceTimestamp: T,
    ...over,
  });
}
