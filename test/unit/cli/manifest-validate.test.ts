import { createContext } from '../../../cli/context';
import { manifestValidate } from '../../../cli/commands/manifest-validate';
import { memorySink } from '../../../cli/output';
import { main } from '../../../cli/program';

const CSV = 'serial,lot,hwRev,factoryFirmware\nunit-0001,L1,A,1.0.0\nSN-0002,L1,A,1.0.0\n';

describe('manifestValidate', () => {
  test('checks against the pattern given, and says nothing about defaults', async () => {
    const out = memorySink();
    const r = await manifestValidate(
      { file: 'm.csv', content: CSV },
      { out, resources: { serialPattern: '^unit-[0-9]{4}$' } },
    );
    expect(r).toMatchObject({ rows: 2, valid: 1, invalid: 1, exitCode: 1, defaultSerialPattern: false });
    expect(r.issues.map((i) => [i.line, i.serial])).toEqual([[3, 'SN-0002']]);
    expect(out.lines.at(-1)).toBe('m.csv: 2 row(s), 1 valid, 1 invalid (1 problem(s))');
    expect(out.warnings).toEqual([]);
  });

  test('--json prints one object; the default-pattern note stays on stderr', async () => {
    const out = memorySink();
    const r = await manifestValidate({ file: 'm.csv', content: CSV, json: true }, { out, resources: {} });
    expect(out.values).toEqual([r]);
    expect(out.lines).toEqual([]);
    expect(r).toMatchObject({ rows: 2, valid: 1, invalid: 1, defaultSerialPattern: true });
    expect(out.warnings).toEqual([
      expect.stringMatching(/^serial pattern: default .*; pass --serial-pattern/),
    ]);
  });

  test('--require-public-key refuses rows without a key', async () => {
    const out = memorySink();
    const r = await manifestValidate(
      { file: 'm.csv', content: CSV, requirePublicKey: true },
      { out, resources: { serialPattern: '^.+$' } },
    );
    expect(r.invalid).toBe(2);
  });

  test('the command wants the pattern (flag or environment) and never needs the stack', async () => {
    const calls: unknown[][] = [];
    const out = memorySink();
    const code = await main(
      ['manifest', 'validate', 'examples/manifest.csv', '--json'],
      async (flags, needs, wants) => {
        calls.push([needs, wants]);
        return createContext({ resources: { serialPattern: flags.serialPattern ?? '^SN-1' }, out });
      },
      { stderr: () => undefined, env: {} },
    );
    expect(calls).toEqual([[[], ['serialPattern']]]);
    expect(code).toBe(1); // SN-2… rows do not match ^SN-1
    expect(out.values[0]).toMatchObject({ serialPattern: '^SN-1', valid: 5, invalid: 3 });
  });
});
