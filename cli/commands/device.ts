/**
 * `fleet device show|reset`: one unit's registry record and trail, and the operator reset of a
 * unit stuck in PROVISIONING (see docs/operations.md, "A unit is stuck in PROVISIONING").
 */
import { Command } from 'commander';
import { DeviceEvent, DeviceRecord } from '../../core/model';
import { Registry, RegistryConditionError } from '../../lambda/shared/registry';
import { RegistryAdmin, RegistryStateError } from '../registry-admin';
import { CliContext, registryTables } from '../context';
import { CliError, UsageError } from '../errors';
import { formatTable } from '../output';
import { examples, positiveInt, RunCommand } from '../registration';

export interface DeviceShowOptions {
  serial: string;
  /** Trail events to show, newest first. @default 20 */
  events?: number;
  json?: boolean;
}

export interface DeviceShowResult {
  device: DeviceRecord;
  /** Newest first. */
  events: DeviceEvent[];
}

export interface DeviceResetOptions {
  serial: string;
  reason: string;
}

function validateSerial(serial: string | undefined): string {
  const s = (serial ?? '').trim();
  if (s === '') throw new UsageError('give the serial number, e.g. fleet device show SN-000123');
  return s;
}

export async function deviceShow(opts: DeviceShowOptions, ctx: CliContext): Promise<DeviceShowResult> {
  const serial = validateSerial(opts.serial);
  const limit = opts.events ?? 20;
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError(`--events "${opts.events}" must be a positive whole number`);
  const tables = registryTables(ctx, ['devicesTable', 'eventsTable']);
  const device = await new Registry(ctx.clients.doc, tables, ctx.now).getDevice(serial);
  if (!device) {
    throw new CliError(
      `device ${serial} is not in the registry; check the serial, or import its manifest with "fleet manifest import"`,
    );
  }
  const events = await new RegistryAdmin(ctx.clients.doc, tables, { now: ctx.now }).recentEvents(
    serial,
    limit,
  );
  const result = { device, events };
  if (opts.json) {
    ctx.out.json(result);
    return result;
  }
  const fields: [string, unknown][] = [
    ['serial', device.serial],
    ['status', device.status],
    ['lot', device.lot],
    ['hwRev', device.hwRev],
    ['ring', device.ring],
    ['factoryFirmware', device.factoryFirmware],
    ['currentFirmware', device.currentFirmware],
    ['thingName', device.thingName],
    ['certificateId', device.certificateId],
    ['certificates', device.certificateHistory?.length ?? 0],
    ['attestation key', device.publicKey ? 'yes' : 'no'],
    ['connected', device.connected],
    ['revision', device.revision],
    ['createdAt', device.createdAt],
    ['updatedAt', device.updatedAt],
    ['activatedAt', device.activatedAt],
  ];
  for (const [k, v] of fields) if (v !== undefined) ctx.out.info(`${k.padEnd(16)} ${String(v)}`);
  ctx.out.info('');
  if (events.length === 0) ctx.out.info('trail: no events');
  else {
    ctx.out.info(`trail (newest ${events.length}):`);
    for (const line of formatTable(
      ['TIME', 'TYPE', 'REASON', 'DETAIL'],
      events.map((e) => [
        e.at,
        e.type,
        e.reason ?? '-',
        e.detail
          ? Object.entries(e.detail)
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(' ')
          : '',
      ]),
    )) {
      ctx.out.info(line);
    }
  }
  if (device.status === 'PROVISIONING') {
    ctx.out.info('');
    ctx.out.info(
      'this unit is PROVISIONING: if it never connected with its new certificate, see docs/operations.md and "fleet device reset"',
    );
  }
  return result;
}

export async function deviceReset(opts: DeviceResetOptions, ctx: CliContext): Promise<DeviceRecord> {
  const serial = validateSerial(opts.serial);
  const reason = (opts.reason ?? '').trim();
  if (reason === '')
    throw new UsageError('fleet device reset needs --reason "<why>"; it is recorded on the trail');
  const admin = new RegistryAdmin(ctx.clients.doc, registryTables(ctx, ['devicesTable', 'eventsTable']), {
    now: ctx.now,
  });
  try {
    const device = await admin.resetDevice(serial, { reason, actor: ctx.actor });
    ctx.out.info(
      `device ${serial} reset from PROVISIONING to MANUFACTURED (revision ${device.revision}); ` +
        'power-cycle the unit so it enrolls again with its claim certificate',
    );
    return device;
  } catch (err) {
    if (err instanceof RegistryStateError) throw new CliError(err.message);
    if (err instanceof RegistryConditionError) {
      throw new CliError(
        `device ${serial} changed while resetting (an enrollment may be in flight); check it with "fleet device show ${serial}" and retry`,
      );
    }
    throw err;
  }
}

/** `fleet device show|reset`. */
export function registerDevice(program: Command, run: RunCommand): void {
  const device = program.command('device').description('one unit: record, trail, reset');
  device
    .command('show')
    .description('registry record and recent trail of a unit')
    .argument('<serial>', 'serial number')
    .option('--events <n>', 'trail events to show', positiveInt, 20)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      examples(['fleet device show SN-000123', 'fleet device show SN-000123 --events 100 --json']),
    )
    .action(async (serial: string, o, cmd: Command) =>
      run(cmd, { needs: ['devicesTable', 'eventsTable'] }, (ctx) =>
        deviceShow({ serial, events: o.events, json: o.json }, ctx),
      ),
    );
  device
    .command('reset')
    .description('reset a unit stuck in PROVISIONING to MANUFACTURED so it can enroll again')
    .argument('<serial>', 'serial number')
    .requiredOption('--reason <text>', 'why (recorded on the trail)')
    .addHelpText(
      'after',
      `
Only a PROVISIONING unit can be reset (see docs/operations.md). Check the trail first with
"fleet device show <serial>".
${examples(['fleet device reset SN-000123 --reason "lost RegisterThing answer, ticket OPS-42"'])}`,
    )
    .action(async (serial: string, o, cmd: Command) =>
      run(cmd, { needs: ['devicesTable', 'eventsTable'] }, (ctx) =>
        deviceReset({ serial, reason: o.reason }, ctx),
      ),
    );
}
