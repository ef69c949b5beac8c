/**
 * `fleet lot create|hold|release|list`: manufacturing lot administration. A lot on HOLD blocks
 * enrollment of its remaining units (the hook denies LOT_ON_HOLD); release puts it back to OK.
 * Every hold and release records the reason and actor.
 */
import { Command } from 'commander';
import { LOT_PATTERN, LotRecord } from '../../core/model';
import { Registry } from '../../lambda/shared/registry';
import { LotNotFoundError, RegistryAdmin } from '../registry-admin';
import { CliContext, registryTables } from '../context';
import { CliError, UsageError } from '../errors';
import { formatTable } from '../output';
import { examples, RunCommand } from '../registration';

export interface LotCreateOptions {
  lot: string;
  /** Units of this lot must prove their factory key at enrollment. @default false */
  requireAttestation?: boolean;
}
export interface LotCreateResult {
  lot: LotRecord;
  /** False when the lot already existed (it is left unchanged). */
  created: boolean;
}

export interface LotReasonOptions {
  lot: string;
  reason: string;
}
export interface LotStatusResult {
  lot: LotRecord;
  /** False when the lot already had the requested status (hold: the reason is still updated). */
  changed: boolean;
}

export interface LotListOptions {
  json?: boolean;
}

export function validateLotName(lot: string): string {
  const name = (lot ?? '').trim();
  if (!LOT_PATTERN.test(name)) {
    throw new UsageError(
      `lot "${lot}" is invalid; use 1-48 characters of A-Z a-z 0-9 _ - (no spaces), e.g. L2026-07`,
    );
  }
  return name;
}

function validateReason(reason: string | undefined, command: string): string {
  const text = (reason ?? '').trim();
  if (text === '')
    throw new UsageError(
      `${command} needs --reason "<why>"; the reason is recorded on the lot for the audit`,
    );
  if (text.length > 500) throw new UsageError('--reason is longer than 500 characters; shorten it');
  return text;
}

function clients(ctx: CliContext): { registry: Registry; admin: RegistryAdmin } {
  const tables = registryTables(ctx, ['lotsTable']);
  return {
    registry: new Registry(ctx.clients.doc, tables, ctx.now),
    admin: new RegistryAdmin(ctx.clients.doc, tables, { now: ctx.now, sleep: ctx.sleep }),
  };
}

export async function lotCreate(opts: LotCreateOptions, ctx: CliContext): Promise<LotCreateResult> {
  const lot = validateLotName(opts.lot);
  const { registry, admin } = clients(ctx);
  const created = await admin.createLot(lot, { requireAttestation: opts.requireAttestation === true });
  const record = await registry.getLot(lot);
  if (!record)
    throw new CliError(`lot ${lot} could not be read back after creation; run "fleet lot list" to check`);
  if (created) {
    ctx.out.info(
      `lot ${lot} created (status OK, attestation ${record.requireAttestation ? 'required' : 'not required'})`,
    );
  } else {
    ctx.out.info(`lot ${lot} already exists (status ${record.status}); left unchanged`);
    if (opts.requireAttestation && !record.requireAttestation) {
      ctx.out.warn(
        `lot ${lot} does not require attestation; --require-attestation does not change existing lots`,
      );
    }
  }
  return { lot: record, created };
}

export async function lotHold(opts: LotReasonOptions, ctx: CliContext): Promise<LotStatusResult> {
  const lot = validateLotName(opts.lot);
  const reason = validateReason(opts.reason, 'fleet lot hold');
  const { registry, admin } = clients(ctx);
  const before = await registry.getLot(lot);
  if (!before) throw new LotMissing(lot);
  const record = await mapLotErrors(() => admin.holdLot(lot, reason, ctx.actor));
  const changed = before.status !== 'HOLD';
  ctx.out.info(
    changed
      ? `lot ${lot} is on HOLD: its remaining units cannot enroll (reason: ${reason})`
      : `lot ${lot} was already on HOLD; reason updated to: ${reason}`,
  );
  return { lot: record, changed };
}

export async function lotRelease(opts: LotReasonOptions, ctx: CliContext): Promise<LotStatusResult> {
  const lot = validateLotName(opts.lot);
  const reason = validateReason(opts.reason, 'fleet lot release');
  const { registry, admin } = clients(ctx);
  const before = await registry.getLot(lot);
  if (!before) throw new LotMissing(lot);
  if (before.status === 'OK') {
    ctx.out.info(`lot ${lot} is not on hold (status OK); nothing to release`);
    return { lot: before, changed: false };
  }
  const record = await mapLotErrors(() => admin.releaseLot(lot, reason, ctx.actor));
  ctx.out.info(`lot ${lot} released (status OK): its units can enroll again (reason: ${reason})`);
  return { lot: record, changed: true };
}

export async function lotList(opts: LotListOptions, ctx: CliContext): Promise<LotRecord[]> {
  const { admin } = clients(ctx);
  const lots = await admin.listLots();
  if (opts.json) {
    ctx.out.json(lots);
    return lots;
  }
  if (lots.length === 0) {
    ctx.out.info('no lots yet; create one with "fleet lot create <lot>" or "fleet manifest import <file>"');
    return lots;
  }
  const rows = lots.map((l) => [
    l.lot,
    l.status,
    String(l.unitCount),
    String(l.claimCertificateIds.length),
    l.requireAttestation ? 'required' : '-',
    l.holdReason ?? '',
  ]);
  for (const line of formatTable(
    ['LOT', 'STATUS', 'UNITS', 'CLAIM CERTS', 'ATTESTATION', 'HOLD REASON'],
    rows,
  )) {
    ctx.out.info(line);
  }
  return lots;
}

class LotMissing extends CliError {
  constructor(lot: string) {
    super(new LotNotFoundError(lot).message);
  }
}

async function mapLotErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LotNotFoundError) throw new CliError(err.message);
    throw err;
  }
}

/** `fleet lot create|hold|release|list`. */
export function registerLot(program: Command, run: RunCommand): void {
  const lot = program.command('lot').description('manufacturing lots: create, hold, release, list');
  lot
    .command('create')
    .description('create a lot (status OK); no-op when it exists')
    .argument('<lot>', 'lot id (1-48 of A-Z a-z 0-9 _ -)')
    .option('--require-attestation', 'units must sign their new certificate id with their factory key')
    .addHelpText(
      'after',
      examples(['fleet lot create L2026-07', 'fleet lot create L2026-08 --require-attestation']),
    )
    .action(async (name: string, o, cmd: Command) =>
      run(cmd, { needs: ['lotsTable'], validate: () => void validateLotName(name) }, (ctx) =>
        lotCreate({ lot: name, requireAttestation: o.requireAttestation }, ctx),
      ),
    );
  lot
    .command('hold')
    .description('put a lot on HOLD: its remaining units cannot enroll')
    .argument('<lot>', 'lot id')
    .requiredOption('--reason <text>', 'why (recorded on the lot)')
    .addHelpText('after', examples(['fleet lot hold L2026-07 --reason "QA-1234: cracked enclosures"']))
    .action(async (name: string, o, cmd: Command) =>
      run(
        cmd,
        {
          needs: ['lotsTable'],
          validate: () => void (validateLotName(name), validateReason(o.reason, 'fleet lot hold')),
        },
        (ctx) => lotHold({ lot: name, reason: o.reason }, ctx),
      ),
    );
  lot
    .command('release')
    .description('release a lot from HOLD')
    .argument('<lot>', 'lot id')
    .requiredOption('--reason <text>', 'why (recorded on the lot)')
    .addHelpText('after', examples(['fleet lot release L2026-07 --reason "supplier fix verified"']))
    .action(async (name: string, o, cmd: Command) =>
      run(
        cmd,
        {
          needs: ['lotsTable'],
          validate: () => void (validateLotName(name), validateReason(o.reason, 'fleet lot release')),
        },
        (ctx) => lotRelease({ lot: name, reason: o.reason }, ctx),
      ),
    );
  lot
    .command('list')
    .description('list lots: status, units, claim certificates, attestation, hold reason')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['fleet lot list', 'fleet lot list --json']))
    .action(async (o, cmd: Command) =>
      run(cmd, { needs: ['lotsTable'] }, (ctx) => lotList({ json: o.json }, ctx)),
    );
}
