import { DeviceRecord } from '../../../core/model';
import { serialFromThingName } from '../../../core/model';
import {
  entriesOfAppliedEvent,
  isNewerPresence,
  planPresence,
  PresenceEvent,
  presenceSkSuffix,
} from '../../../core/presence-plan';

const CERT = 'a'.repeat(64);
const device = (over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  serial: 'SN-1',
  lot: 'L',
  hwRev: 'A',
  factoryFirmware: '1.0.0',
  currentFirmware: '1.0.0',
  status: 'PROVISIONING',
  certificateId: CERT,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  revision: 1,
  ...over,
});
const event = (over: Partial<PresenceEvent> = {}): PresenceEvent => ({
  clientId: 'fleet-SN-1',
  timestamp: 1000,
  eventType: 'connected',
  versionNumber: 5,
  principalIdentifier: CERT,
  sessionIdentifier: 's-1',
  ...over,
});

describe('isNewerPresence orders by (versionNumber, timestamp)', () => {
  test.each<[string, { versionNumber: number; timestamp: number }, Partial<DeviceRecord>, boolean]>([
    ['nothing stored yet', { versionNumber: 0, timestamp: 0 }, {}, true],
    [
      'higher version, older timestamp',
      { versionNumber: 6, timestamp: 1 },
      { presenceVersion: 5, presenceTimestamp: 900 },
      true,
    ],
    [
      'lower version, newer timestamp',
      { versionNumber: 4, timestamp: 9999 },
      { presenceVersion: 5, presenceTimestamp: 900 },
      false,
    ],
    [
      'same version, later timestamp',
      { versionNumber: 5, timestamp: 901 },
      { presenceVersion: 5, presenceTimestamp: 900 },
      true,
    ],
    [
      'same version, same timestamp (duplicate)',
      { versionNumber: 5, timestamp: 900 },
      { presenceVersion: 5, presenceTimestamp: 900 },
      false,
    ],
    [
      'same version, earlier timestamp',
      { versionNumber: 5, timestamp: 899 },
      { presenceVersion: 5, presenceTimestamp: 900 },
      false,
    ],
  ])('%s', (_name, e, stored, expected) => {
    expect(isNewerPresence(e, stored)).toBe(expected);
  });
});

describe('planPresence', () => {
  test.each<[string, PresenceEvent, DeviceRecord | undefined, string]>([
    ['unknown device', event(), undefined, 'ignore:UNKNOWN_DEVICE'],
    ['first connect with the current certificate activates', event(), device(), 'apply:ACTIVATED,CONNECTED'],
    [
      'connect with an older certificate does not activate',
      event({ principalIdentifier: 'b'.repeat(64) }),
      device(),
      'apply:CONNECTED',
    ],
    ['disconnect never activates', event({ eventType: 'disconnected' }), device(), 'apply:DISCONNECTED'],
    ['an ACTIVE device only records presence', event(), device({ status: 'ACTIVE' }), 'apply:CONNECTED'],
    ['RMA device is not activated by a connect', event(), device({ status: 'RMA' }), 'apply:CONNECTED'],
    [
      'a late connect still activates but leaves newer presence alone',
      event({ versionNumber: 4 }),
      device({ presenceVersion: 5, presenceTimestamp: 2000, connected: false }),
      'apply:ACTIVATED',
    ],
    [
      'a late event on an ACTIVE device is stale',
      event({ versionNumber: 4 }),
      device({ status: 'ACTIVE', presenceVersion: 5 }),
      'ignore:STALE',
    ],
    [
      'a duplicate event is stale',
      event(),
      device({ status: 'ACTIVE', presenceVersion: 5, presenceTimestamp: 1000 }),
      'ignore:STALE',
    ],
  ])('%s', (_name, e, d, expected) => {
    const plan = planPresence(e, d);
    expect(plan.kind === 'ignore' ? `ignore:${plan.why}` : `apply:${plan.events.join(',')}`).toBe(expected);
  });

  test('the plan carries the presence fields of the event', () => {
    const plan = planPresence(
      event({ eventType: 'disconnected', versionNumber: 7, timestamp: 42 }),
      device(),
    );
    expect(plan).toMatchObject({
      kind: 'apply',
      activate: false,
      updatePresence: true,
      presence: { connected: false, versionNumber: 7, timestamp: 42 },
    });
  });
});

describe('entriesOfAppliedEvent: what a retried or duplicated event already did', () => {
  const at = new Date(1000).toISOString();
  const applied = device({
    status: 'ACTIVE',
    activatedAt: at,
    connected: true,
    presenceVersion: 5,
    presenceTimestamp: 1000,
  });
  test.each<[string, PresenceEvent, DeviceRecord, string[]]>([
    ['the activating connect, presence included', event(), applied, ['ACTIVATED', 'CONNECTED']],
    [
      'the activating connect, presence since moved on',
      event(),
      device({ status: 'ACTIVE', activatedAt: at, presenceVersion: 6, presenceTimestamp: 2000 }),
      ['ACTIVATED'],
    ],
    [
      'a connect with another certificate',
      event({ principalIdentifier: 'b'.repeat(64) }),
      applied,
      ['CONNECTED'],
    ],
    ['a connect at another time', event({ timestamp: 999 }), applied, []],
    // One activation per time and certificate: its entry's sort key says so too.
    ['another version at the same time and certificate', event({ versionNumber: 4 }), applied, ['ACTIVATED']],
    [
      'a device never activated',
      event(),
      device({ presenceVersion: 5, presenceTimestamp: 1000, connected: true }),
      ['CONNECTED'],
    ],
    [
      'the disconnect whose state is stored',
      event({ eventType: 'disconnected' }),
      device({ status: 'ACTIVE', connected: false, presenceVersion: 5, presenceTimestamp: 1000 }),
      ['DISCONNECTED'],
    ],
    ['a disconnect while the stored state is connected', event({ eventType: 'disconnected' }), applied, []],
  ])('%s', (_name, e, d, expected) => {
    expect(entriesOfAppliedEvent(e, d)).toEqual(expected);
  });

  test.each([
    ['ACTIVATED', 7, 'ACTIVATED'],
    ['CONNECTED', 7, 'CONNECTED#7'],
    ['DISCONNECTED', 8, 'DISCONNECTED#8'],
  ] as const)('the %s entry of version %s has the sort-key suffix %s', (type, version, suffix) => {
    expect(presenceSkSuffix(type, version)).toBe(suffix);
  });
});

describe('serialFromThingName (device client ids)', () => {
  test.each([
    ['fleet-SN-1', 'SN-1'],
    ['prov-1234', undefined],
    ['fleet-', undefined],
    ['other-SN-1', undefined],
  ])('%s -> %s', (clientId, serial) => {
    expect(serialFromThingName('fleet', clientId)).toBe(serial);
  });
});
