/**
 * The health consumer's hand-written fast path (`isHealthRecord`, core/telemetry.ts) against the
 * schema it stands in for (`healthRecordSchema`): the same answer for every record below, each a
 * valid record with one field changed to a value at, inside or past what the schema allows. The
 * fields are read from the schema, so a field added to it without its check in the fast path
 * fails here.
 */
import * as z from 'zod/mini';
import {
  healthRecordSchema,
  isHealthRecord,
  parseHealthRecord,
  RESET_REASONS,
  TELEMETRY_LIMITS,
} from '../../../core/telemetry';

const T = 1_760_000_000_000;
const MIN_EPOCH_MS = Date.UTC(2020, 0, 1);

const valid = (): Record<string, unknown> => ({
  ts: T,
  fw: '1.2.3',
  bootId: 'b-1',
  uptimeS: 60,
  resetReason: 'POWER_ON',
  heapFreeB: 50_000,
  heapMinB: 40_000,
  rssiDbm: -70,
  type: 'health',
  thing: 'fleet-SN-1',
  clientId: 'fleet-SN-1',
  principal: 'c'.repeat(64),
  receivedAt: T + 500,
  traceId: '00000000-0000-4000-8000-000000000000',
  replayed: true,
});

/** Values any field is tried with. */
const ANY: unknown[] = [
  undefined,
  null,
  '',
  'x',
  '1',
  0,
  -0,
  1,
  -1,
  1.5,
  2 ** 53,
  2 ** 53 - 1,
  -(2 ** 53),
  1e300,
  true,
  false,
  {},
  [],
  [1],
];

/** Boundary values of each field, on both sides. */
const EDGES: Record<string, unknown[]> = {
  ts: [MIN_EPOCH_MS - 1, MIN_EPOCH_MS, MIN_EPOCH_MS + 0.5, T + 0.25],
  receivedAt: [0, -1, 0.5, MIN_EPOCH_MS],
  uptimeS: [0, -1, 0.1, 2 ** 32],
  heapFreeB: [0, -1, 0.1],
  heapMinB: [0, -1, 0.1],
  rssiDbm: [0, -150, -151, 1, -70.5, -0],
  thing: ['a', 'x'.repeat(128), 'x'.repeat(129), ' '],
  bootId: [
    'a',
    'b'.repeat(TELEMETRY_LIMITS.maxBootIdLength),
    'b'.repeat(TELEMETRY_LIMITS.maxBootIdLength + 1),
  ],
  fw: ['1.0.0', '1.0.0-rc.1', '1.0', 'v1.0.0', '1.0.0-', '1.0.0\n', ' 1.0.0', '10.20.30-beta-2.x'],
  resetReason: [...RESET_REASONS, 'power_on', 'REBOOT'],
  type: ['health', 'telemetry', 'Health'],
  clientId: ['', 'c'],
  principal: ['', 'p'],
  traceId: ['', 't'],
  replayed: [true, false, 'true', 0],
};

const schemaFields = Object.keys(healthRecordSchema.shape);

/** Every valid record with one field changed (or removed), and a few with extra fields. */
function cases(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [valid()];
  for (const field of schemaFields) {
    for (const v of [...ANY, ...(EDGES[field] ?? [])]) {
      const r = valid();
      if (v === undefined) delete r[field];
      else r[field] = v;
      out.push(r);
      const explicit = valid();
      explicit[field] = undefined;
      out.push(explicit);
    }
  }
  out.push({ ...valid(), extra: 1 }, { ...valid(), connection: undefined });
  return out;
}

test('the fast path checks the fields of the schema', () => {
  expect(new Set(schemaFields)).toEqual(new Set(Object.keys(valid())));
});

test('the fast path and the schema give the same answer for every record', () => {
  const all = cases();
  expect(all.length).toBeGreaterThan(500);
  const differ = all.filter((r) => isHealthRecord(r) !== z.safeParse(healthRecordSchema, r).success);
  expect(differ).toEqual([]);
  // Both answers occur.
  expect(all.some((r) => isHealthRecord(r))).toBe(true);
  expect(all.some((r) => !isHealthRecord(r))).toBe(true);
});

test('parseHealthRecord answers as the schema does, through JSON', () => {
  for (const r of cases()) {
    const text = JSON.stringify(r);
    const viaJson = JSON.parse(text) as Record<string, unknown>;
    const accepted = viaJson.connection === undefined && z.safeParse(healthRecordSchema, viaJson).success;
    const parsed = parseHealthRecord(text);
    if (accepted)
      expect(
        parsed.kind === 'report' || (parsed.kind === 'malformed' && parsed.problem.startsWith('ts ')),
      ).toBe(true);
    else expect(parsed.kind).not.toBe('report');
  }
});
