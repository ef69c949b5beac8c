import {
  assertTransition,
  canTransition,
  ENROLLMENT_DENIALS,
  LIFECYCLE,
  LifecycleAction,
  LifecycleError,
  refusal,
} from '../../../core/lifecycle';
import { DEVICE_STATUSES, DeviceStatus, EVENT_TYPES } from '../../../core/model';

const ALLOWED: Array<[LifecycleAction, DeviceStatus, DeviceStatus]> = [
  ['enroll', 'MANUFACTURED', 'PROVISIONING'],
  ['enroll', 'PROVISIONING', 'PROVISIONING'],
  ['activate', 'PROVISIONING', 'ACTIVE'],
  ['reset', 'PROVISIONING', 'MANUFACTURED'],
  ['rmaOpen', 'ACTIVE', 'RMA'],
  ['rmaNoFaultFound', 'RMA', 'ACTIVE'],
  ['rmaRefurbish', 'RMA', 'MANUFACTURED'],
  ['rmaScrap', 'RMA', 'RETIRED'],
];

test.each(ALLOWED)('%s is allowed from %s and leads to %s', (action, from, to) => {
  expect(canTransition(action, from)).toBe(true);
  expect(LIFECYCLE[action].to).toBe(to);
});

test('every other (action, status) pair is refused, with a message naming the status', () => {
  const allowed = new Set(ALLOWED.map(([a, f]) => `${a}/${f}`));
  let refused = 0;
  for (const action of Object.keys(LIFECYCLE) as LifecycleAction[]) {
    for (const status of DEVICE_STATUSES) {
      if (allowed.has(`${action}/${status}`)) continue;
      refused++;
      expect(canTransition(action, status)).toBe(false);
      expect(() => assertTransition(action, 'SN-1', status)).toThrow(LifecycleError);
      expect(refusal(action, 'SN-1', status)).toContain(status);
    }
  }
  expect(refused).toBe(Object.keys(LIFECYCLE).length * DEVICE_STATUSES.length - ALLOWED.length);
});

test('an unknown device is refused with the import fix', () => {
  expect(canTransition('activate', undefined)).toBe(false);
  expect(refusal('activate', 'SN-9', undefined)).toMatch(/not in the registry.*fleet manifest import/);
});

test('a device already in the target status is told so', () => {
  expect(refusal('reset', 'SN-1', 'MANUFACTURED')).toBe(
    'device SN-1 is already MANUFACTURED; nothing to reset',
  );
});

test('every status that may not enroll has its own deny reason, and no enrollable status has one', () => {
  for (const status of DEVICE_STATUSES) {
    const reason = (ENROLLMENT_DENIALS as Partial<Record<DeviceStatus, string>>)[status];
    expect(reason === undefined).toBe(canTransition('enroll', status));
  }
});

test('every transition appends a known trail event type', () => {
  for (const t of Object.values(LIFECYCLE)) expect(EVENT_TYPES).toContain(t.event);
});
