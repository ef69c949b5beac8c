/**
 * `fleet manifest validate <file>`: check a manufacturing manifest offline, with no AWS account,
 * credentials or stack. Every row problem is printed with its line number and the fix
 * (core/manifest.ts), then a one-line summary; exit code 1 when any row is invalid.
 *
 * The serial pattern comes from `--serial-pattern` or FLEET_SERIAL_PATTERN. Without either, the
 * default pattern of core/model.ts is used and the command says so: a stack configured with
 * another pattern may still refuse rows that pass here (`fleet manifest import` always uses the
 * stack's own pattern).
 */
import { Command } from 'commander';
import { detectFormat, formatIssue, ManifestFormat, ManifestIssue, parseManifest } from '../../core/manifest';
import { DEFAULT_SERIAL_PATTERN } from '../../core/model';
import { CliContext, RESOURCE_SOURCES } from '../context';
import { EXIT_CODES } from '../errors';
import { readInputFile } from '../files';
import { examples, RunCommand } from '../registration';

export interface ManifestValidateOptions {
  /** Path of the manifest (.csv or .json). Used for reading unless `content` is given. */
  file: string;
  /** Manifest text (in-process callers); `file` then only names it and picks the format. */
  content?: string;
  /** Force the format instead of detecting it from the file name and content. */
  format?: ManifestFormat;
  /** Every row must carry a publicKey. @default false */
  requirePublicKey?: boolean;
  /** Print the result as JSON. @default false */
  json?: boolean;
}

export interface ManifestValidateResult {
  file: string;
  /** Data rows in the file. */
  rows: number;
  /** Rows without any problem. */
  valid: number;
  /** Rows with at least one problem (or all rows, when the file as a whole is unusable). */
  invalid: number;
  /** Every problem, in file order (line 0 is the file as a whole). */
  issues: ManifestIssue[];
  /** The serial pattern the rows were checked against. */
  serialPattern: string;
  /** True when no pattern was given and the default one was used. */
  defaultSerialPattern: boolean;
  /** 0 when every row is valid, 1 otherwise. */
  exitCode: number;
}

export async function manifestValidate(
  opts: ManifestValidateOptions,
  ctx: Pick<CliContext, 'out' | 'resources'>,
): Promise<ManifestValidateResult> {
  const text = opts.content ?? (await readInputFile({ path: opts.file, what: 'manifest' }));
  const given = ctx.resources.serialPattern;
  const serialPattern = given ?? DEFAULT_SERIAL_PATTERN;
  if (given === undefined) {
    const s = RESOURCE_SOURCES.serialPattern;
    ctx.out.warn(
      `serial pattern: default ${DEFAULT_SERIAL_PATTERN}; pass ${s.flag} (or set ${s.env}) to use your stack's (stack output ${s.output})`,
    );
  }
  const parsed = parseManifest(text, opts.format ?? detectFormat(opts.file, text), {
    serialPattern,
    requirePublicKey: opts.requirePublicKey === true,
  });
  const valid = parsed.rows.length;
  const result: ManifestValidateResult = {
    file: opts.file,
    rows: parsed.rowCount,
    valid,
    invalid: parsed.rowCount - valid,
    issues: parsed.issues,
    serialPattern,
    defaultSerialPattern: given === undefined,
    exitCode: parsed.issues.length > 0 ? EXIT_CODES.failed : EXIT_CODES.ok,
  };
  if (opts.json) {
    ctx.out.json(result);
    return result;
  }
  for (const issue of parsed.issues) ctx.out.info(formatIssue(issue));
  ctx.out.info(
    `${opts.file}: ${result.rows} row(s), ${result.valid} valid, ${result.invalid} invalid` +
      (parsed.issues.length > 0 ? ` (${parsed.issues.length} problem(s))` : ''),
  );
  return result;
}

/** `fleet manifest validate` (on the `manifest` group). */
export function registerManifestValidate(manifest: Command, run: RunCommand): void {
  manifest
    .command('validate')
    .description('check a manifest offline (no AWS, no stack): every row problem with its line number')
    .argument('<file>', 'manifest: .csv (header serial,lot,hwRev,factoryFirmware[,publicKey]) or .json')
    .option('--require-public-key', 'every row needs a publicKey (for lots that require attestation)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Checks every row as "fleet manifest import" does before it touches the registry: serial pattern,
lot, hwRev, firmware, publicKey (P-256, PEM or base64 SPKI DER) and duplicates. Needs no AWS
credentials and reads no stack. The serial pattern is --serial-pattern, else
${RESOURCE_SOURCES.serialPattern.env}, else the default ${DEFAULT_SERIAL_PATTERN} (said in one line).
Exit code 0 when every row is valid, 1 when any row is invalid, 2 when the file cannot be read.
${examples([
  'fleet manifest validate units.csv',
  "fleet manifest validate units.csv --serial-pattern '^SN-[0-9]{6}$'",
  'fleet manifest validate units.json --json',
])}`,
    )
    .action(async (file: string, o, cmd: Command) =>
      run(cmd, { wants: ['serialPattern'], files: [{ path: file, what: 'manifest' }] }, (ctx) =>
        manifestValidate({ file, requirePublicKey: o.requirePublicKey, json: o.json }, ctx),
      ),
    );
}
