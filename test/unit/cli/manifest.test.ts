import { generateKeyPairSync } from 'node:crypto';
import {
  detectFormat,
  formatIssue,
  normalisePublicKey,
  parseManifest,
  splitCsv,
} from '../../../core/manifest';

const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
const p256Pem = p256.export({ type: 'spki', format: 'pem' }).toString();
const p256Der64 = p256.export({ type: 'spki', format: 'der' }).toString('base64');
const p384Pem = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 1024 })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

const HEADER = 'serial,lot,hwRev,factoryFirmware,publicKey';

describe('splitCsv', () => {
  test.each([
    [
      'plain',
      'a,b\nc,d\n',
      [
        [1, ['a', 'b']],
        [2, ['c', 'd']],
      ],
    ],
    [
      'CRLF',
      'a,b\r\nc,d\r\n',
      [
        [1, ['a', 'b']],
        [2, ['c', 'd']],
      ],
    ],
    [
      'no final newline',
      'a,b\nc,d',
      [
        [1, ['a', 'b']],
        [2, ['c', 'd']],
      ],
    ],
    [
      'BOM',
      '\uFEFFa,b\nc,d',
      [
        [1, ['a', 'b']],
        [2, ['c', 'd']],
      ],
    ],
    [
      'blank and comment lines keep numbering',
      'a,b\n\n  \n# note\nc,d\n',
      [
        [1, ['a', 'b']],
        [5, ['c', 'd']],
      ],
    ],
    ['quoted comma', 'a,"b,c"\n', [[1, ['a', 'b,c']]]],
    ['doubled quote', 'a,"say ""hi"""\n', [[1, ['a', 'say "hi"']]]],
    [
      'multi-line quoted field',
      'a,"x\ny\nz"\nc,d\n',
      [
        [1, ['a', 'x\ny\nz']],
        [4, ['c', 'd']],
      ],
    ],
    ['empty fields', 'a,,\n', [[1, ['a', '', '']]]],
    ['spaces around quoted field', 'a, "b" ,c\n', [[1, ['a', 'b', 'c']]]],
  ])('%s', (_name, text, expected) => {
    const records = splitCsv(text as string);
    expect(records.map((r) => [r.line, r.fields])).toEqual(expected);
    expect(records.every((r) => r.error === undefined)).toBe(true);
  });

  test.each([
    ['unterminated quote', 'a,"b\nc,d\n', /never closes/],
    ['quote inside unquoted field', 'a,b"c\n', /unexpected double quote/],
    ['text after closing quote', 'a,"b"c\n', /after a closing quote/],
  ])('reports %s', (_name, text, message) => {
    const records = splitCsv(text);
    expect(records[0].error?.problem).toMatch(message);
    expect(records[0].error?.fix).toMatch(/double quote/);
  });
});

describe('parseManifest (CSV)', () => {
  const ok = (lines: string[]) => [HEADER, ...lines].join('\n');

  test('valid rows are normalised, with line numbers', () => {
    const text = ok([
      'SN-0001,L1,A,1.0.0,',
      ' SN-0002 , L1 , rev2 , 1.2.3-rc.1 ,',
      '',
      `SN-0003,L2,B,2.0.0,${p256Der64}`,
    ]);
    const m = parseManifest(text, 'csv');
    expect(m.issues).toEqual([]);
    expect(m.rowCount).toBe(3);
    expect(m.rows.map((r) => [r.line, r.serial, r.lot, r.hwRev, r.factoryFirmware])).toEqual([
      [2, 'SN-0001', 'L1', 'A', '1.0.0'],
      [3, 'SN-0002', 'L1', 'rev2', '1.2.3-rc.1'],
      [5, 'SN-0003', 'L2', 'B', '2.0.0'],
    ]);
    expect(m.rows[2].publicKey).toContain('-----BEGIN PUBLIC KEY-----');
    expect(m.rows[0].publicKey).toBeUndefined();
  });

  test('a multi-line quoted PEM key counts as one row and keeps line numbers', () => {
    const text = [HEADER, `SN-0001,L1,A,1.0.0,"${p256Pem.trim()}"`, 'SN-0002,L1,A,1.0.0,'].join('\n');
    const m = parseManifest(text, 'csv');
    expect(m.issues).toEqual([]);
    expect(m.rows[0].publicKey?.trim()).toBe(p256Pem.trim());
    expect(m.rows[1].line).toBe(2 + p256Pem.trim().split('\n').length);
  });

  test('header aliases and column order are accepted, publicKey optional', () => {
    const m = parseManifest('Hardware Revision,SerialNumber,firmware,lot_id\nA,SN-0001,1.0.0,L1\n', 'csv');
    expect(m.issues).toEqual([]);
    expect(m.rows[0]).toMatchObject({ serial: 'SN-0001', lot: 'L1', hwRev: 'A', factoryFirmware: '1.0.0' });
  });

  test.each([
    ['empty serial', ',L1,A,1.0.0,', 'serial', /serial is empty/, /fill in/],
    ['bad serial', 'sn 1,L1,A,1.0.0,', 'serial', /does not match the serial pattern/, /4-32 characters/],
    ['empty lot', 'SN-0001,,A,1.0.0,', 'lot', /lot is empty/, /lot id/],
    ['bad lot', 'SN-0001,L 1,A,1.0.0,', 'lot', /lot "L 1" is invalid/, /1-48 characters/],
    ['empty hwRev', 'SN-0001,L1,,1.0.0,', 'hwRev', /hwRev is empty/, /hardware revision/],
    ['bad hwRev', 'SN-0001,L1,rev 2,1.0.0,', 'hwRev', /hwRev "rev 2" is invalid/, /1-16 characters/],
    ['empty firmware', 'SN-0001,L1,A,,', 'factoryFirmware', /factoryFirmware is empty/, /firmware version/],
    ['bad firmware', 'SN-0001,L1,A,v1.0,', 'factoryFirmware', /not a semantic version/, /MAJOR.MINOR.PATCH/],
    [
      'firmware with build metadata',
      'SN-0001,L1,A,1.0.0+b7,',
      'factoryFirmware',
      /not a semantic version/,
      /no \+build metadata/,
    ],
    ['unreadable key', 'SN-0001,L1,A,1.0.0,not-a-key', 'publicKey', /not a readable EC P-256/, /prime256v1/],
    ['P-384 key', `SN-0001,L1,A,1.0.0,"${p384Pem}"`, 'publicKey', /P-256/, /prime256v1/],
    ['RSA key', `SN-0001,L1,A,1.0.0,"${rsaPem}"`, 'publicKey', /P-256/, /prime256v1/],
    [
      'too few fields',
      'SN-0001,L1,A',
      'row',
      /3 field\(s\), but the header has 5/,
      /quote fields that contain commas/,
    ],
    ['too many fields', 'SN-0001,L1,A,1.0.0,,x', 'row', /6 field\(s\)/, /give every column a value/],
    ['broken quoting', 'SN-0001,L1,"A"x,1.0.0,', 'row', /after a closing quote/, /double quotes/],
  ])('%s', (_name, row, field, problem, fix) => {
    const m = parseManifest(ok(['SN-9999,L1,A,1.0.0,', row]), 'csv');
    expect(m.rows.map((r) => r.serial)).toEqual(['SN-9999']);
    expect(m.rowCount).toBe(2);
    expect(m.issues).toHaveLength(1);
    expect(m.issues[0]).toMatchObject({ line: 3, field });
    expect(m.issues[0].problem).toMatch(problem);
    expect(m.issues[0].fix).toMatch(fix);
  });

  test('every problem of a row is reported, and every bad row', () => {
    const m = parseManifest(ok(['bad serial,L 1,A,1.0,', 'SN-0002,L1,A,1.0.0,', 'SN-0003,L1,,x,']), 'csv');
    expect(m.issues.map((i) => [i.line, i.field])).toEqual([
      [2, 'serial'],
      [2, 'lot'],
      [2, 'factoryFirmware'],
      [4, 'hwRev'],
      [4, 'factoryFirmware'],
    ]);
    expect(m.issues[3].serial).toBe('SN-0003');
    expect(m.rows.map((r) => r.serial)).toEqual(['SN-0002']);
  });

  test('duplicate serials: later rows are reported with the first line', () => {
    const m = parseManifest(ok(['SN-0001,L1,A,1.0.0,', 'SN-0002,L1,A,1.0.0,', 'SN-0001,L1,A,1.0.0,']), 'csv');
    expect(m.issues).toHaveLength(1);
    expect(m.issues[0]).toMatchObject({ line: 4, serial: 'SN-0001', field: 'serial' });
    expect(m.issues[0].problem).toBe('serial SN-0001 is a duplicate of line 2');
    expect(m.issues[0].fix).toMatch(/keep exactly one row/);
    expect(m.rows.map((r) => r.line)).toEqual([2, 3]);
  });

  test('a custom serial pattern applies, with a fix naming the stack setting', () => {
    const m = parseManifest(ok(['AB12,L1,A,1.0.0,', 'SN-0001,L1,A,1.0.0,']), 'csv', {
      serialPattern: '^[A-Z]{2}\\d{2}$',
    });
    expect(m.rows.map((r) => r.serial)).toEqual(['AB12']);
    expect(m.issues[0].fix).toMatch(/serialPattern config key and redeploy/);
  });

  test('an invalid serial pattern is one file-level issue', () => {
    const m = parseManifest(ok(['SN-0001,L1,A,1.0.0,']), 'csv', { serialPattern: '([' });
    expect(m.issues).toEqual([expect.objectContaining({ line: 0, field: 'file' })]);
    expect(m.rows).toEqual([]);
  });

  test('requirePublicKey makes a missing key a row problem', () => {
    const m = parseManifest(ok(['SN-0001,L1,A,1.0.0,', `SN-0002,L1,A,1.0.0,${p256Der64}`]), 'csv', {
      requirePublicKey: true,
    });
    expect(m.issues).toEqual([
      expect.objectContaining({
        line: 2,
        field: 'publicKey',
        problem: 'publicKey is missing and attestation is required',
      }),
    ]);
    expect(m.rows.map((r) => r.serial)).toEqual(['SN-0002']);
  });

  test.each([
    ['empty file', '', 0, /the manifest is empty/],
    ['only blank lines and BOM', '\uFEFF\n\n', 0, /the manifest is empty/],
    [
      'unknown column',
      'serial,lot,hwrevision,factoryFirmware\nSN-0001,L1,A,1.0.0',
      1,
      /unknown column "hwrevision"/,
    ],
    ['missing column', 'serial,lot,factoryFirmware\nSN-0001,L1,1.0.0', 1, /lacks the column\(s\) hwRev/],
    ['repeated column', 'serial,lot,hwRev,factoryFirmware,serial\nSN-0001,L1,A,1.0.0,x', 1, /repeats serial/],
    ['no header', 'SN-0001,L1,A,1.0.0\n', 1, /unknown column "SN-0001"/],
    ['unnamed column', 'serial,lot,hwRev,factoryFirmware,\n', 1, /column 5 has no name/],
  ])('header problem: %s', (_name, text, line, problem) => {
    const m = parseManifest(text, 'csv');
    expect(m.rows).toEqual([]);
    expect(m.issues.length).toBeGreaterThan(0);
    expect(m.issues[0].line).toBe(line);
    expect(m.issues.map((i) => i.problem).join('\n')).toMatch(problem);
    expect(m.issues.every((i) => i.fix.length > 0)).toBe(true);
  });

  test('rows after an unusable header are counted and reported once', () => {
    const m = parseManifest(
      'serial,lot,hwrevision,factoryFirmware\nSN-0001,L1,A,1.0.0\nSN-0002,L1,A,1.0.0\n',
      'csv',
    );
    expect(m.rowCount).toBe(2);
    expect(m.issues.map((i) => i.problem)).toContain(
      '2 row(s) not checked because the header on line 1 is unusable',
    );
  });

  test('a BOM before the header is ignored', () => {
    const m = parseManifest(`\uFEFF${HEADER}\nSN-0001,L1,A,1.0.0,\n`, 'csv');
    expect(m.issues).toEqual([]);
    expect(m.rows).toHaveLength(1);
  });
});

describe('parseManifest (JSON)', () => {
  test('array form with line numbers of each entry', () => {
    const text = JSON.stringify(
      [
        { serial: 'SN-0001', lot: 'L1', hwRev: 'A', factoryFirmware: '1.0.0' },
        { serial: 'SN-0002', lot: 'L1', hwRev: 'A', factoryFirmware: '1.0.0', publicKey: p256Pem },
      ],
      null,
      2,
    );
    const m = parseManifest(text, 'json');
    expect(m.issues).toEqual([]);
    expect(m.rows.map((r) => r.line)).toEqual([2, 8]);
    expect(m.rows[1].publicKey).toContain('BEGIN PUBLIC KEY');
  });

  test('{devices: [...]} form', () => {
    const text =
      '{\n  "devices": [\n    {"serial":"SN-0001","lot":"L1","hwRev":"A","factoryFirmware":"1.0.0"},\n    {"serial":"x","lot":"L1","hwRev":"A","factoryFirmware":"1.0.0"}\n  ]\n}';
    const m = parseManifest(text, 'json');
    expect(m.rows.map((r) => r.serial)).toEqual(['SN-0001']);
    expect(m.issues).toEqual([expect.objectContaining({ line: 4, serial: 'x', field: 'serial' })]);
  });

  test.each([
    ['syntax error', '[\n  {"serial": "SN-0001",}\n]', /not valid JSON/, 2],
    ['wrong shape', '{"units": []}', /neither an array/, 1],
    ['empty list', '[]', /lists no devices/, 1],
    ['entry not an object', '[\n"SN-0001"\n]', /entry 1 is not an object/, 2],
    [
      'unknown field',
      '[{"serial":"SN-0001","lot":"L1","hwRev":"A","factoryFirmware":"1.0.0","color":"red"}]',
      /unknown field\(s\) "color"/,
      1,
    ],
    [
      'number instead of string',
      '[{"serial":"SN-0001","lot":"L1","hwRev":2,"factoryFirmware":"1.0.0"}]',
      /hwRev is a number, not a string/,
      1,
    ],
  ])('%s', (_name, text, problem, line) => {
    const m = parseManifest(text, 'json');
    expect(m.rows).toEqual([]);
    expect(m.issues[0].problem).toMatch(problem);
    expect(m.issues[0].line).toBe(line);
    expect(m.issues[0].fix.length).toBeGreaterThan(0);
  });
});

describe('helpers', () => {
  test.each([
    ['units.csv', 'serial', 'csv'],
    ['units.JSON', 'serial', 'json'],
    ['units.txt', '  [', 'json'],
    ['units.txt', '{"devices":[]}', 'json'],
    ['-', 'serial,lot', 'csv'],
  ])('detectFormat(%s)', (name, text, format) => {
    expect(detectFormat(name, text)).toBe(format);
  });

  test('normalisePublicKey accepts PEM, escaped-newline PEM and base64 DER', () => {
    const pem = normalisePublicKey(p256Pem);
    expect(pem).toBe(p256Pem);
    expect(normalisePublicKey(p256Pem.replace(/\n/g, '\\n'))).toBe(p256Pem);
    expect(normalisePublicKey(p256Der64)).toBe(p256Pem);
    expect(normalisePublicKey('%%%')).toBeUndefined();
    expect(normalisePublicKey('QUJD')).toBeUndefined();
  });

  test('formatIssue names line, serial, problem and fix', () => {
    expect(
      formatIssue({ line: 7, serial: 'SN-1', field: 'lot', problem: 'lot is empty', fix: 'fill it in' }),
    ).toBe('line 7 (serial SN-1): lot is empty; fill it in');
    expect(formatIssue({ line: 0, field: 'file', problem: 'the manifest is empty', fix: 'add rows' })).toBe(
      'file: the manifest is empty; add rows',
    );
  });
});

describe('serials that can never be thing names', () => {
  test.each([
    ['a topic wildcard', 'SN+1', /characters a thing name cannot/],
    ['a level separator', 'SN/1', /characters a thing name cannot/],
    ['more than 64 characters', 'S'.repeat(65), /longer than 64/],
  ])('%s is refused even when the configured pattern accepts it', (_what, serial, problem) => {
    const m = parseManifest(`serial,lot,hwRev,factoryFirmware\n${serial},L1,A,1.0.0\n`, 'csv', {
      serialPattern: '^.+$',
    });
    expect(m.rows).toEqual([]);
    expect(m.issues).toHaveLength(1);
    expect(m.issues[0]).toMatchObject({ line: 2, field: 'serial' });
    expect(m.issues[0].problem).toMatch(problem);
  });
});
