/**
 * Manufacturing manifest parsing and validation. Pure: no AWS SDK, no file I/O (node:crypto is
 * used only to normalise public keys).
 *
 * A manifest lists the units a contract manufacturer built, one per row:
 * `serial, lot, hwRev, factoryFirmware[, publicKey]`. It comes as CSV (RFC 4180: quoted fields
 * may contain commas, doubled quotes and line breaks; a UTF-8 BOM, blank lines and `#` comment
 * lines are ignored) or JSON (an array of objects, or `{ "devices": [...] }`).
 *
 * Every problem is reported as a {@link ManifestIssue} with the 1-based line number where the
 * row starts, what is wrong and how to fix it. Validation never stops at the first problem.
 */
import { createPublicKey } from 'node:crypto';
import { isP256PublicKey } from './attestation';
import {
  DEFAULT_SERIAL_PATTERN,
  FIRMWARE_PATTERN,
  HW_REV_PATTERN,
  LOT_PATTERN,
  unsafeSerialProblem,
} from './model';

/** One valid manifest row, normalised (trimmed; publicKey as PEM SPKI). */
export interface ManifestRow {
  /** 1-based line number where the row starts in the source file. */
  line: number;
  serial: string;
  lot: string;
  hwRev: string;
  factoryFirmware: string;
  publicKey?: string;
}

/** One problem found in a manifest. `line` 0 means the file as a whole. */
export interface ManifestIssue {
  line: number;
  serial?: string;
  field?: ManifestField | 'header' | 'row' | 'file';
  problem: string;
  fix: string;
}

export const MANIFEST_FIELDS = ['serial', 'lot', 'hwRev', 'factoryFirmware', 'publicKey'] as const;
export type ManifestField = (typeof MANIFEST_FIELDS)[number];
const REQUIRED_FIELDS: readonly ManifestField[] = ['serial', 'lot', 'hwRev', 'factoryFirmware'];

export type ManifestFormat = 'csv' | 'json';

export interface ManifestOptions {
  /** Regular expression source serials must match. @default DEFAULT_SERIAL_PATTERN */
  serialPattern?: string;
  /** When true, every row must carry a publicKey. @default false */
  requirePublicKey?: boolean;
}

export interface ParsedManifest {
  /** Valid rows, in file order. */
  rows: ManifestRow[];
  /** Every problem, in file order. A row with problems is not in `rows`. */
  issues: ManifestIssue[];
  /** Number of data rows seen (valid + invalid), excluding header, blank and comment lines. */
  rowCount: number;
}

/** Render an issue as one line for an operator. */
export function formatIssue(issue: ManifestIssue): string {
  const where = issue.line > 0 ? `line ${issue.line}` : 'file';
  const who = issue.serial ? ` (serial ${issue.serial})` : '';
  return `${where}${who}: ${issue.problem}; ${issue.fix}`;
}

/** Pick the format from the file name, falling back to the content. */
export function detectFormat(fileName: string, text: string): ManifestFormat {
  const lower = fileName.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.csv')) return 'csv';
  const first = stripBom(text).trimStart()[0];
  return first === '[' || first === '{' ? 'json' : 'csv';
}

/** Parse and validate a manifest. Never throws for bad input: problems are issues. */
export function parseManifest(
  text: string,
  format: ManifestFormat,
  options: ManifestOptions = {},
): ParsedManifest {
  const raw = format === 'json' ? readJsonRows(text) : readCsvRows(text);
  const issues = [...raw.issues];
  const rows: ManifestRow[] = [];
  let serialRe: RegExp;
  const serialSource = options.serialPattern ?? DEFAULT_SERIAL_PATTERN;
  try {
    serialRe = new RegExp(serialSource);
  } catch {
    issues.push({
      line: 0,
      field: 'file',
      problem: `the serial pattern "${serialSource}" is not a valid regular expression`,
      fix: "fix the stack's serialPattern config key (or --serial-pattern / FLEET_SERIAL_PATTERN) to a valid JavaScript regular expression source",
    });
    return { rows, issues, rowCount: raw.rows.length + raw.broken };
  }
  const firstLineOfSerial = new Map<string, number>();
  for (const r of raw.rows) {
    const rowIssues = validateRow(r, serialRe, serialSource, options);
    const serial = rowIssues.row?.serial;
    if (serial !== undefined && serialRe.test(serial)) {
      const first = firstLineOfSerial.get(serial);
      if (first !== undefined) {
        rowIssues.issues.push({
          line: r.line,
          serial,
          field: 'serial',
          problem: `serial ${serial} is a duplicate of line ${first}`,
          fix: `keep exactly one row for ${serial}: remove this row or the one on line ${first}`,
        });
      } else {
        firstLineOfSerial.set(serial, r.line);
      }
    }
    issues.push(...rowIssues.issues);
    if (rowIssues.issues.length === 0 && rowIssues.row) rows.push(rowIssues.row);
  }
  issues.sort((a, b) => a.line - b.line);
  return { rows, issues, rowCount: raw.rows.length + raw.broken };
}

/** Normalise a public key given as PEM or base64 SPKI DER to PEM SPKI; undefined when unreadable. */
export function normalisePublicKey(value: string): string | undefined {
  const text = value.trim().replace(/\\n/g, '\n');
  try {
    if (text.includes('-----BEGIN')) {
      return createPublicKey(text).export({ type: 'spki', format: 'pem' }).toString();
    }
    const compact = text.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return undefined;
    const der = Buffer.from(compact, 'base64');
    return createPublicKey({ key: der, format: 'der', type: 'spki' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Row validation

interface RawRow {
  line: number;
  values: Partial<Record<ManifestField, unknown>>;
}

interface RawRows {
  rows: RawRow[];
  issues: ManifestIssue[];
  /** Rows counted but not readable (structure errors). */
  broken: number;
}

function validateRow(
  r: RawRow,
  serialRe: RegExp,
  serialSource: string,
  options: ManifestOptions,
): { row?: ManifestRow; issues: ManifestIssue[] } {
  const issues: ManifestIssue[] = [];
  const str = (field: ManifestField): string | undefined => {
    const v = r.values[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      issues.push({
        line: r.line,
        field,
        problem: `${field} is a ${Array.isArray(v) ? 'list' : typeof v}, not a string`,
        fix: `write ${field} as a JSON string, e.g. "${field}": "${String(v)}"`,
      });
      return '';
    }
    return v.trim();
  };
  const serial = str('serial');
  const lot = str('lot');
  const hwRev = str('hwRev');
  const factoryFirmware = str('factoryFirmware');
  const publicKeyText = str('publicKey');
  const serialForMessages = serial && serial.length > 0 ? serial : undefined;
  const issue = (field: ManifestField, problem: string, fix: string): void => {
    issues.push({ line: r.line, serial: serialForMessages, field, problem, fix });
  };
  // Issues raised while reading values did not know the serial yet.
  for (const i of issues) i.serial = serialForMessages;

  // Each required field: empty, or not of its pattern, is one issue with its own fix.
  const checks: Array<[ManifestField, string | undefined, RegExp, string, string, string]> = [
    [
      'serial',
      serial,
      serialRe,
      'fill in the unit serial number',
      `does not match the serial pattern ${serialSource}`,
      serialFix(serialSource),
    ],
    [
      'lot',
      lot,
      LOT_PATTERN,
      'fill in the manufacturing lot id, e.g. L2026-07',
      'is invalid',
      'use 1-48 characters of A-Z a-z 0-9 _ - (no spaces), e.g. L2026-07',
    ],
    [
      'hwRev',
      hwRev,
      HW_REV_PATTERN,
      'fill in the hardware revision, e.g. A or rev2',
      'is invalid',
      'use 1-16 characters of A-Z a-z 0-9 . _ - (no spaces), e.g. rev2',
    ],
    [
      'factoryFirmware',
      factoryFirmware,
      FIRMWARE_PATTERN,
      'fill in the firmware version flashed at the factory, e.g. 1.4.0',
      'is not a semantic version',
      'use MAJOR.MINOR.PATCH with an optional -pre-release suffix and no +build metadata (thing attributes cannot hold "+"), e.g. 1.4.0 or 1.4.0-rc.1',
    ],
  ];
  for (const [field, value, pattern, emptyFix, invalid, invalidFix] of checks) {
    if (!value) issue(field, `${field} is empty`, emptyFix);
    else if (!pattern.test(value)) issue(field, `${field} "${value}" ${invalid}`, invalidFix);
  }
  const unsafe = serial ? unsafeSerialProblem(serial) : undefined;
  if (unsafe && serialRe.test(serial as string)) {
    issue(
      'serial',
      `serial "${serial}" ${unsafe}`,
      'correct the serial: the device could never enroll with it',
    );
  }
  let publicKey: string | undefined;
  if (publicKeyText) {
    publicKey = normalisePublicKey(publicKeyText);
    if (!publicKey || !isP256PublicKey(publicKey)) {
      publicKey = undefined;
      issue(
        'publicKey',
        publicKeyText.includes('-----BEGIN') || normalisePublicKey(publicKeyText) === undefined
          ? 'publicKey is not a readable EC P-256 public key'
          : 'publicKey is not on the P-256 curve',
        'give the factory key as a PEM "-----BEGIN PUBLIC KEY-----" block or as base64 SubjectPublicKeyInfo DER of an ECDSA P-256 (prime256v1) key',
      );
    }
  } else if (options.requirePublicKey) {
    issue(
      'publicKey',
      'publicKey is missing and attestation is required',
      'add the factory P-256 public key of this unit, or import without --require-attestation',
    );
  }
  if (issues.length > 0) return { issues };
  return {
    issues,
    row: {
      line: r.line,
      serial: serial as string,
      lot: lot as string,
      hwRev: hwRev as string,
      factoryFirmware: factoryFirmware as string,
      ...(publicKey ? { publicKey } : {}),
    },
  };
}

function serialFix(source: string): string {
  if (source === DEFAULT_SERIAL_PATTERN) {
    return 'use 4-32 characters of upper-case A-Z, 0-9 and -, starting with a letter or digit, e.g. SN-000123';
  }
  return (
    "correct the serial; if the factory really uses another format, set the stack's serialPattern " +
    'config key and redeploy (the hook enforces the same pattern)'
  );
}

// ---------------------------------------------------------------------------------------------
// Columns

const COLUMN_ALIASES: Record<string, ManifestField> = {
  serial: 'serial',
  serialnumber: 'serial',
  lot: 'lot',
  lotid: 'lot',
  hwrev: 'hwRev',
  hardwarerevision: 'hwRev',
  factoryfirmware: 'factoryFirmware',
  firmware: 'factoryFirmware',
  firmwareversion: 'factoryFirmware',
  publickey: 'publicKey',
};

function fieldForColumn(name: string): ManifestField | undefined {
  return COLUMN_ALIASES[name.toLowerCase().replace(/[^a-z0-9]/g, '')];
}

const COLUMN_FIX = `use the columns ${MANIFEST_FIELDS.join(', ')} (publicKey optional)`;

// ---------------------------------------------------------------------------------------------
// CSV

interface CsvRecord {
  line: number;
  fields: string[];
  error?: { problem: string; fix: string };
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Split CSV text into records (RFC 4180). Blank lines and lines starting with `#` are skipped.
 * `line` is where each record starts; a quoted field may span lines.
 */
export function splitCsv(input: string): CsvRecord[] {
  const text = stripBom(input);
  const out: CsvRecord[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    // Start of a record.
    const startLine = line;
    const lineEnd = nextLineEnd(text, i);
    const physical = text.slice(i, lineEnd);
    if (physical.trim() === '' || physical.trimStart().startsWith('#')) {
      i = skipNewline(text, lineEnd);
      line += 1;
      continue;
    }
    const fields: string[] = [];
    let error: CsvRecord['error'];
    let field = '';
    let done = false;
    while (!done) {
      // Start of a field: skip leading spaces before a quote.
      let j = i;
      while (j < n && (text[j] === ' ' || text[j] === '\t')) j += 1;
      if (text[j] === '"') {
        i = j + 1;
        field = '';
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            closed = true;
            i += 1;
            break;
          }
          if (c === '\n') line += 1;
          field += c;
          i += 1;
        }
        if (!closed) {
          error ??= {
            problem: `a quoted field opened on line ${startLine} never closes`,
            fix: 'add the closing double quote (and double any quote inside the field: "")',
          };
          fields.push(field);
          return [...out, { line: startLine, fields, error }];
        }
        // After the closing quote only spaces, then a separator or the end of the record.
        while (i < n && (text[i] === ' ' || text[i] === '\t')) i += 1;
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          error ??= {
            problem: `unexpected text after a closing quote in field ${fields.length + 1}`,
            fix: 'wrap the whole field in double quotes and double any quote inside it ("")',
          };
          while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') i += 1;
        }
      } else {
        const start = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') i += 1;
        field = text.slice(start, i);
        if (field.includes('"')) {
          error ??= {
            problem: `unexpected double quote inside unquoted field ${fields.length + 1}`,
            fix: 'wrap the field in double quotes and double any quote inside it ("")',
          };
        }
      }
      fields.push(field);
      if (i < n && text[i] === ',') {
        i += 1;
        continue;
      }
      done = true;
    }
    // End of record (newline or EOF).
    if (i < n) {
      i = skipNewline(text, i);
      line += 1;
    }
    out.push(error ? { line: startLine, fields, error } : { line: startLine, fields });
  }
  return out;
}

function nextLineEnd(text: string, from: number): number {
  let k = from;
  while (k < text.length && text[k] !== '\n' && text[k] !== '\r') k += 1;
  return k;
}

function skipNewline(text: string, at: number): number {
  if (text[at] === '\r' && text[at + 1] === '\n') return at + 2;
  if (text[at] === '\r' || text[at] === '\n') return at + 1;
  return at;
}

function readCsvRows(text: string): RawRows {
  const records = splitCsv(text);
  const issues: ManifestIssue[] = [];
  if (records.length === 0) {
    issues.push({
      line: 0,
      field: 'file',
      problem: 'the manifest is empty',
      fix: `start with a header line "${MANIFEST_FIELDS.join(',')}" followed by one line per unit`,
    });
    return { rows: [], issues, broken: 0 };
  }
  const [header, ...data] = records;
  const columns: (ManifestField | undefined)[] = [];
  const seen = new Map<ManifestField, number>();
  let headerOk = true;
  if (header.error) {
    issues.push({ line: header.line, field: 'header', ...header.error });
    headerOk = false;
  }
  header.fields.forEach((name, idx) => {
    const field = fieldForColumn(name.trim());
    columns.push(field);
    if (!field) {
      headerOk = false;
      issues.push({
        line: header.line,
        field: 'header',
        problem: name.trim() === '' ? `column ${idx + 1} has no name` : `unknown column "${name.trim()}"`,
        fix: `${COLUMN_FIX}; is the first line the header?`,
      });
    } else if (seen.has(field)) {
      headerOk = false;
      issues.push({
        line: header.line,
        field: 'header',
        problem: `column "${name.trim()}" repeats ${field} (column ${(seen.get(field) as number) + 1})`,
        fix: 'keep one column per field',
      });
    } else {
      seen.set(field, idx);
    }
  });
  const missing = REQUIRED_FIELDS.filter((f) => !seen.has(f));
  if (missing.length > 0) {
    headerOk = false;
    issues.push({
      line: header.line,
      field: 'header',
      problem: `the header lacks the column(s) ${missing.join(', ')}`,
      fix: COLUMN_FIX,
    });
  }
  if (!headerOk) {
    // Without a usable header no row can be read.
    if (data.length > 0) {
      issues.push({
        line: data[0].line,
        field: 'file',
        problem: `${data.length} row(s) not checked because the header on line ${header.line} is unusable`,
        fix: 'fix the header, then import again',
      });
    }
    return { rows: [], issues, broken: data.length };
  }
  const rows: RawRow[] = [];
  let broken = 0;
  for (const rec of data) {
    // Rows whose structure is broken are counted but not validated field by field (their
    // values would produce misleading messages).
    if (rec.error) {
      issues.push({ line: rec.line, serial: serialGuess(rec, columns), field: 'row', ...rec.error });
      broken += 1;
      continue;
    }
    if (rec.fields.length !== columns.length) {
      issues.push({
        line: rec.line,
        serial: serialGuess(rec, columns),
        field: 'row',
        problem: `${rec.fields.length} field(s), but the header has ${columns.length}`,
        fix: 'give every column a value (an empty publicKey is fine) and quote fields that contain commas',
      });
      broken += 1;
      continue;
    }
    const values: RawRow['values'] = {};
    rec.fields.forEach((v, idx) => {
      const f = columns[idx] as ManifestField;
      if (v.trim() !== '') values[f] = v;
    });
    rows.push({ line: rec.line, values });
  }
  return { rows, issues, broken };
}

function serialGuess(rec: CsvRecord, columns: (ManifestField | undefined)[]): string | undefined {
  const idx = columns.indexOf('serial');
  const v = idx >= 0 ? rec.fields[idx]?.trim() : undefined;
  return v && v.length <= 64 && !v.includes('\n') ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// JSON

function readJsonRows(input: string): RawRows {
  const text = stripBom(input);
  const issues: ManifestIssue[] = [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const line = jsonErrorLine(text, (err as Error).message);
    issues.push({
      line,
      field: 'file',
      problem: `the file is not valid JSON (${(err as Error).message})`,
      fix: 'fix the JSON syntax, or save the manifest as CSV',
    });
    return { rows: [], issues, broken: 0 };
  }
  let list: unknown;
  let elementDepthPath: 'array' | 'devices' = 'array';
  if (Array.isArray(doc)) list = doc;
  else if (doc && typeof doc === 'object' && Array.isArray((doc as Record<string, unknown>).devices)) {
    list = (doc as Record<string, unknown>).devices;
    elementDepthPath = 'devices';
  } else {
    issues.push({
      line: 1,
      field: 'file',
      problem: 'the JSON is neither an array of devices nor an object with a "devices" array',
      fix: 'use [{"serial":"SN-0001","lot":"L1","hwRev":"A","factoryFirmware":"1.0.0"}, ...] or {"devices": [...]}',
    });
    return { rows: [], issues, broken: 0 };
  }
  const elements = list as unknown[];
  const lines = jsonElementLines(text, elementDepthPath === 'devices' ? 2 : 1);
  const rows: RawRow[] = [];
  let broken = 0;
  elements.forEach((el, idx) => {
    const line = lines[idx] ?? 1;
    if (!el || typeof el !== 'object' || Array.isArray(el)) {
      issues.push({
        line,
        field: 'row',
        problem: `entry ${idx + 1} is not an object`,
        fix: 'write each device as {"serial": ..., "lot": ..., "hwRev": ..., "factoryFirmware": ...}',
      });
      broken += 1;
      return;
    }
    const values: RawRow['values'] = {};
    const unknown: string[] = [];
    for (const [key, value] of Object.entries(el as Record<string, unknown>)) {
      const f = fieldForColumn(key);
      if (f) values[f] = value === '' ? undefined : value;
      else unknown.push(key);
    }
    if (unknown.length > 0) {
      const serial = typeof values.serial === 'string' ? values.serial.trim() : undefined;
      issues.push({
        line,
        serial,
        field: 'row',
        problem: `unknown field(s) ${unknown.map((u) => `"${u}"`).join(', ')}`,
        fix: `${COLUMN_FIX}; check the spelling`,
      });
      broken += 1;
      return;
    }
    rows.push({ line, values });
  });
  if (elements.length === 0) {
    issues.push({
      line: 1,
      field: 'file',
      problem: 'the manifest lists no devices',
      fix: 'add at least one device',
    });
  }
  return { rows, issues, broken };
}

/** Line numbers of the `{`/value starts of the elements of the device array. */
function jsonElementLines(text: string, arrayDepth: number): number[] {
  const lines: number[] = [];
  let depth = 0;
  let line = 1;
  let inString = false;
  let expectValue = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '\n') line += 1;
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (depth === arrayDepth && expectValue && c !== ']') {
      lines.push(line);
      expectValue = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth += 1;
      if (depth === arrayDepth && c === '[') expectValue = true;
    } else if (c === ']' || c === '}') depth -= 1;
    else if (c === ',' && depth === arrayDepth) expectValue = true;
  }
  return lines;
}

function jsonErrorLine(text: string, message: string): number {
  const lineMatch = /line (\d+)/.exec(message);
  if (lineMatch) return Number(lineMatch[1]);
  const pos = /position (\d+)/.exec(message);
  if (pos) return text.slice(0, Number(pos[1])).split('\n').length;
  return 1;
}
