/**
 * Every example of docs/device-contract.md is valid under the schemas of core/telemetry.ts, and
 * the page's limits and reset reasons say what the schemas enforce.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXPECTED_RESET_REASONS,
  healthReportSchema,
  lastWillSchema,
  LAST_WILL_PAYLOAD,
  RESET_REASONS,
  TELEMETRY_LIMITS,
  telemetryPayloadSchema,
} from '../../../core/telemetry';

const page = readFileSync(join(__dirname, '../../../docs/device-contract.md'), 'utf8');

/** `<!-- example: kind -->` followed by a fenced json block. */
function examples(): { kind: string; body: string }[] {
  const out: { kind: string; body: string }[] = [];
  const re = /<!-- example: (\w+) -->\s*```json\n([\s\S]*?)```/g;
  for (let m = re.exec(page); m; m = re.exec(page)) out.push({ kind: m[1], body: m[2] });
  return out;
}

const SCHEMAS = {
  telemetry: telemetryPayloadSchema,
  health: healthReportSchema,
  lastWill: lastWillSchema,
} as const;

describe('docs/device-contract.md', () => {
  const found = examples();

  test('has an example of every message kind', () => {
    expect(found.map((e) => e.kind).sort()).toEqual(Object.keys(SCHEMAS).sort());
  });

  test.each(found.map((e) => [e.kind, e.body] as const))(
    'the %s example matches the schema',
    (kind, body) => {
      const schema = SCHEMAS[kind as keyof typeof SCHEMAS];
      expect(schema).toBeDefined();
      const parsed = schema.safeParse(JSON.parse(body));
      expect(parsed.error?.issues ?? []).toEqual([]);
    },
  );

  test('the Last Will example is the payload the devices register', () => {
    const will = found.find((e) => e.kind === 'lastWill');
    expect(JSON.parse(will!.body)).toEqual(LAST_WILL_PAYLOAD);
  });

  test('the reset-reason table lists every reason and whether it is expected', () => {
    for (const reason of RESET_REASONS) {
      const row = new RegExp(`\\|\\s*\`${reason}\`\\s*\\|[^|]*\\|\\s*(no|yes)`).exec(page);
      expect(row).not.toBeNull();
      expect(row![1]).toBe(EXPECTED_RESET_REASONS.includes(reason) ? 'no' : 'yes');
    }
  });

  test('the limits on the page are the enforced ones', () => {
    expect(page).toContain(`1 to ${TELEMETRY_LIMITS.maxReadingsPerMessage} readings`);
    expect(page).toContain(`1 to ${TELEMETRY_LIMITS.maxValuesPerReading} values`);
    expect(page).toContain(`1 to ${TELEMETRY_LIMITS.maxBootIdLength} characters`);
    const tooMany = {
      seq: 0,
      readings: Array.from({ length: TELEMETRY_LIMITS.maxReadingsPerMessage + 1 }, (_, i) => ({
        ts: 1764079200000 + i,
        values: { temperature_c: 1 },
      })),
    };
    expect(telemetryPayloadSchema.safeParse(tooMany).success).toBe(false);
  });
});
