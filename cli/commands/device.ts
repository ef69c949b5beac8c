/**
 * `fleet device show|reset`: one unit's registry record and trail, and the operator reset of a
 * unit stuck in PROVISIONING (see docs/operations.md, "A unit is stuck in PROVISIONING").
 *
 * reset: read the unit, check the lifecycle table, make its certificate unusable in AWS IoT
 *   (revoked and detached from the thing, {@link retireDeviceCertificate}), then the conditional
 *   registry write and a STATUS_RESET trail entry saying what was done to the certificate. The
 *   registry forgets a certificate only once nobody can connect with it as the thing; when IoT
 *   refuses or cannot be reached, nothing is written.
 */
import { Command } from 'commander';
import { canTransition } from '../../core/lifecycle';
import { DeviceEvent, DeviceRecord, thingNameFor } from '../../core/model';
import { Registry, RegistryConditionError } from '../../lambda/shared/registry';
import { RegistryAdmin, RegistryStateError } from '../registry-admin';
import { CliContext, describeError, registryTables, requireResource } from '../context';
import { awsSetupProblem, CliError, UsageError } from '../errors';
import { PreviousCertificateOutcome, retireDeviceCertificate } from '../iot-adapter';
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

export interface DeviceResetResult {
  /** The record after the reset (MANUFACTURED, no current certificate). */
  device: DeviceRecord;
  /** The certificate the registry forgot, and what was done to it in AWS IoT; absent when it had none. */
  previousCertificate?: { certificateId: string; thingName: string; outcome: PreviousCertificateOutcome };
}

/** Operator text for what happened to the previous certificate in AWS IoT. */
function previousCertificateText(p: NonNullable<DeviceResetResult['previousCertificate']>): string {
  const head = `previous certificate ${p.certificateId}`;
  switch (p.outcome) {
    case 'revoked':
      return `${head}: revoked in AWS IoT and detached from thing ${p.thingName}; it can no longer connect`;
    case 'already-revoked':
      return `${head}: was already revoked in AWS IoT; detached from thing ${p.thingName}`;
    case 'not-found':
      return `${head}: not in AWS IoT (deleted), so nobody can connect with it`;
  }
}

function validateSerial(serial: string | undefined): string {
  const s = (serial ?? '').trim();
  if (s === '') throw new UsageError('give the serial number, e.g. fleet device show SN-000123');
  return s;
}

function validateResetReason(reason: string | undefined): string {
  const text = (reason ?? '').trim();
  if (text === '')
    throw new UsageError('fleet device reset needs --reason "<why>"; it is recorded on the trail');
  return text;
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
    ['disconnectReason', device.disconnectReason],
    ['lastSeen', device.lastSeen],
    ['bootId', device.healthBootId],
    ['uptimeS', device.healthUptimeS],
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
  if (canTransition('reset', device.status)) {
    ctx.out.info('');
    ctx.out.info(
      `this unit is ${device.status}: if it never connected with its new certificate, see docs/operations.md and "fleet device reset"`,
    );
  }
  return result;
}

export async function deviceReset(opts: DeviceResetOptions, ctx: CliContext): Promise<DeviceResetResult> {
  const serial = validateSerial(opts.serial);
  const reason = validateResetReason(opts.reason);
  const admin = new RegistryAdmin(ctx.clients.doc, registryTables(ctx, ['devicesTable', 'eventsTable']), {
    now: ctx.now,
  });
  let previousCertificate: DeviceResetResult['previousCertificate'];
  try {
    const device = await admin.resetDevice(serial, { reason, actor: ctx.actor }, async (stuck) => {
      // The thing RegisterThing may have created and attached the certificate to.
      const thingName = stuck.thingName ?? thingNameFor(requireResource(ctx, 'thingPrefix'), serial);
      let outcome: PreviousCertificateOutcome;
      try {
        outcome = await retireDeviceCertificate(ctx.clients.iot, stuck.certificateId, thingName);
      } catch (err) {
        if (awsSetupProblem(err)) throw err;
        throw new CliError(
          `device ${serial} was not reset: its certificate ${stuck.certificateId} could not be revoked in AWS IoT ` +
            `(${describeError(err)}); the registry is unchanged: check the AWS IoT endpoint and the ` +
            'iot:DescribeCertificate, iot:UpdateCertificate and iot:DetachThingPrincipal permissions, then retry',
        );
      }
      previousCertificate = { certificateId: stuck.certificateId, thingName, outcome };
      return outcome;
    });
    ctx.out.info(
      `device ${serial} reset from PROVISIONING to MANUFACTURED (revision ${device.revision}); ` +
        'power-cycle the unit so it enrolls again with its claim certificate',
    );
    const p = previousCertificate;
    ctx.out.info(p ? previousCertificateText(p) : 'previous certificate: none recorded');
    return { device, ...(p ? { previousCertificate: p } : {}) };
  } catch (err) {
    if (err instanceof RegistryStateError) throw new CliError(err.message);
    if (err instanceof RegistryConditionError) {
      const revoked = previousCertificate
        ? ` (its certificate ${previousCertificate.certificateId} is revoked already)`
        : '';
      throw new CliError(
        `device ${serial} changed while resetting${revoked}; an enrollment may be in flight: check it with "fleet device show ${serial}" and retry`,
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
      run(
        cmd,
        { needs: ['devicesTable', 'eventsTable'], validate: () => void validateSerial(serial) },
        (ctx) => deviceShow({ serial, events: o.events, json: o.json }, ctx),
      ),
    );
  device
    .command('reset')
    .description(
      'revoke the certificate of a unit stuck in PROVISIONING and reset it to MANUFACTURED so it can enroll again',
    )
    .argument('<serial>', 'serial number')
    .requiredOption('--reason <text>', 'why (recorded on the trail)')
    .addHelpText(
      'after',
      `
Only a PROVISIONING unit can be reset (see docs/operations.md). Check the trail first with
"fleet device show <serial>". Before the registry forgets the unit's certificate, the certificate
is revoked in AWS IoT and detached from the thing, so whoever holds it can no longer connect as
the thing; the STATUS_RESET trail entry records what was done (previousCertificate = revoked,
already-revoked or not-found). If AWS IoT refuses or cannot be reached, nothing is changed.
Needs iot:DescribeCertificate, iot:UpdateCertificate and iot:DetachThingPrincipal.
${examples(['fleet device reset SN-000123 --reason "lost RegisterThing answer, ticket OPS-42"'])}`,
    )
    .action(async (serial: string, o, cmd: Command) =>
      run(
        cmd,
        {
          needs: ['devicesTable', 'eventsTable'],
          wants: ['thingPrefix'],
          validate: () => void (validateSerial(serial), validateResetReason(o.reason)),
        },
        (ctx) => deviceReset({ serial, reason: o.reason }, ctx),
      ),
    );
}
