/**
 * The hook's audit metric: one `ProvisioningDecision` EMF record per decision with the Reason and
 * Template dimensions, and never the serial. Uses the unbundled hook with real Powertools
 * Metrics (enabled for this file) against dynalite.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createHook } from '../../../lambda/provisioning/pre-provisioning-hook';
import { Registry } from '../../../lambda/shared/registry';
import { createRegistryTables, LocalDynamo, startDynalite } from '../../helpers/dynalite';
import {
  createTestCa,
  deviceRecord,
  hookEvent,
  IssuedCertificate,
  lotRecord,
  putDevice,
  putLot,
  TEMPLATE_ARN_PREFIX,
  UNLISTED_RETENTION_DAYS,
} from './fixtures';

let db: LocalDynamo;
let cert: IssuedCertificate;
let hook: (event: unknown) => Promise<{ allowProvisioning: boolean }>;
const emitted: string[] = [];

beforeAll(async () => {
  db = await startDynalite();
  const tables = await createRegistryTables(db.client, 'Metrics');
  await putLot(db.doc, tables, lotRecord('LOT-A'));
  await putDevice(db.doc, tables, deviceRecord('SN-MET-0001', 'LOT-A'));
  cert = await (await (await createTestCa()).newDeviceKey()).issue();
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const metrics = new Metrics({ namespace: 'IotFleet', serviceName: 'hook-test' });
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  // Capture the EMF lines instead of printing them.
  (metrics as unknown as { console: { log: (s: string) => void } }).console = {
    log: (s: string) => emitted.push(s),
  };
  hook = createHook({
    registry: new Registry(db.doc, tables),
    lookupPriorCertificate: async () => 'USABLE',
    logger: new Logger({ serviceName: 'hook-test', logLevel: 'SILENT' }),
    metrics,
    config: {
      thingNamePrefix: 'fleet',
      ringShares: { canaryPercent: 2, earlyPercent: 18 },
      serialPattern: /^[A-Z0-9][A-Z0-9-]{3,31}$/,
      templateNames: ['FleetTemplate'],
      templateArnPrefix: TEMPLATE_ARN_PREFIX,
      unlistedRetentionDays: UNLISTED_RETENTION_DAYS,
      budgetMs: 2000,
      hardLimitMs: 2500,
    },
  });
});

afterAll(async () => db.stop());

test('one EMF record per decision, Reason and Template dimensions, no serial', async () => {
  await hook(hookEvent({ serial: 'SN-MET-0001', cert, claimCertificateId: 'claim-LOT-A' }));
  await hook(hookEvent({ serial: 'SN-MET-0001', cert, claimCertificateId: 'claim-LOT-B' }));
  await hook(
    hookEvent({
      serial: 'SN-MET-0002',
      cert,
      claimCertificateId: 'claim-LOT-A',
      templateArn: 'arn:aws:iot:us-east-1:1:provisioningtemplate/Nope',
    }),
  );
  const records = emitted.map((s) => JSON.parse(s) as Record<string, unknown>);
  expect(records.map((r) => [r.Reason, r.Template, r.ProvisioningDecision])).toEqual([
    ['ALLOWED', 'FleetTemplate', 1],
    ['CLAIM_LOT_MISMATCH', 'FleetTemplate', 1],
    ['TEMPLATE_MISMATCH', 'other', 1],
  ]);
  for (const r of records) {
    const aws = r._aws as { CloudWatchMetrics: { Dimensions: string[][]; Namespace: string }[] };
    expect(aws.CloudWatchMetrics[0].Namespace).toBe('IotFleet');
    expect(aws.CloudWatchMetrics[0].Dimensions.flat()).toEqual(
      expect.arrayContaining(['Reason', 'Template']),
    );
    expect(JSON.stringify(r)).not.toContain('SN-MET');
  }
});
