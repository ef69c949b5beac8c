import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { STAGES } from '../../../lib/config';
import { FleetStack } from '../../../lib/fleet-stack';
import { resolveFleetConfig } from '../../../lib/config';

function acknowledgements(root: IConstruct): { path: string; id: string; reason: unknown }[] {
  const out: { path: string; id: string; reason: unknown }[] = [];
  for (const c of root.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, unknown>))
        out.push({ path: c.node.path, id, reason });
    }
  }
  return out;
}

/** Every telemetry option on: provisioned stream, archive transition, Timestream, InfluxDB in a VPC. */
const ALL_TELEMETRY_OPTIONS = {
  stream: { mode: 'PROVISIONED', shardCount: 2 },
  archive: { transitionToInfrequentAccessDays: 30 },
  timestream: { enabled: true, databaseName: 'fleet_db', tableName: 'health' },
  influxdb: {
    enabled: true,
    endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
    secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
    databaseName: 'fleet',
    tableName: 'health',
    vpcId: 'vpc-0123456789abcdef0',
    subnetIds: ['subnet-0123456789abcdef0'],
    securityGroupIds: ['sg-0123456789abcdef0'],
  },
};

const CASES = [
  ...STAGES.map((stage) => [stage, {}] as const),
  ['prod, every telemetry option on', { telemetry: ALL_TELEMETRY_OPTIONS }] as const,
];

describe.each(CASES)('cdk-nag AwsSolutions (%s)', (name, extra) => {
  const stage = name.split(',')[0];
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new FleetStack(app, 'NagFleet', {
    config: resolveFleetConfig({
      stage,
      provisioning: {
        templates: [
          { name: 'fleet-a' },
          { name: 'fleet-b', thingTypeName: 'fleet-gw', hook: { provisionedConcurrency: 1 } },
        ],
      },
      ...extra,
    }),
  });

  test('zero unacknowledged findings', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    const findings = report.violations.map(
      (v) =>
        `${v.ruleName} @ ${v.violatingResources.map((r) => r.locations?.join('|') ?? r.resourceLogicalId).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  test('every acknowledgement names one finding and carries a reason', () => {
    const acks = acknowledgements(stack);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(typeof a.reason).toBe('string');
      expect((a.reason as string).length).toBeGreaterThan(30);
      expect(a.id).toMatch(/^(Annotation::)?AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
      if (a.id.includes('IAM5')) expect(a.id).toMatch(/\[(Resource|Action)::.+\]$/);
    }
  });

  if (name.includes('every telemetry option'))
    test('the time-series rule’s roles acknowledge their own wildcard resources one by one', () => {
      const ids = (path: string) =>
        acknowledgements(stack)
          .filter((a) => a.path === `NagFleet/Telemetry/TimeSeries/${path}`)
          .map((a) => a.id.replace(/^Annotation::/, ''));
      expect(ids('RepublishRole')).toEqual([
        expect.stringMatching(
          /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:iot:.*:topic\/fleet-internal\/fleet\/\*\/health\]$/,
        ),
      ]);
      expect(ids('Role')).toEqual([
        expect.stringMatching(
          /^AwsSolutions-IAM5\[Resource::<TelemetryErrorBucket\.Arn>\/fleet_health_timeseries\/\*\]$/,
        ),
      ]);
      expect(ids('RegistryEnrichment/Role')).toEqual([
        expect.stringMatching(/^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:iot:.*:thing\/fleet-\*\]$/),
      ]);
    });
});
