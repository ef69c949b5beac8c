import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { TABLES } from '../../../core/model';
import { resolveFleetConfig, type Stage } from '../../../lib/config';
import { REGISTRY_LOGICAL_IDS, RegistryTables } from '../../../lib/traceability/registry-tables';
import { asArray, flat, PolicyStatement } from './helpers';

function synth(stage: Stage) {
  const config = resolveFleetConfig({ stage });
  const stack = new Stack(new App(), 'Registry');
  const registry = new RegistryTables(stack, 'Registry', {
    removalPolicy: config.removalPolicy,
    deletionProtection: config.deletionProtection,
  });
  return { stack, registry, template: Template.fromStack(stack) };
}

const stages = { dev: synth('dev'), staging: synth('staging'), prod: synth('prod') };

describe('registry tables', () => {
  test('logical ids are pinned (renaming them would replace the tables)', () => {
    expect(REGISTRY_LOGICAL_IDS).toEqual({
      devices: 'RegistryDevicesTable',
      lots: 'RegistryLotsTable',
      events: 'RegistryEventsTable',
    });
    expect(Object.keys(stages.prod.template.findResources('AWS::DynamoDB::Table')).sort()).toEqual([
      'RegistryDevicesTable',
      'RegistryEventsTable',
      'RegistryLotsTable',
    ]);
  });

  test.each(Object.keys(stages) as Stage[])(
    '%s: every table has PITR, encryption and on-demand billing',
    (stage) => {
      const tables = Object.values(stages[stage].template.findResources('AWS::DynamoDB::Table'));
      expect(tables).toHaveLength(3);
      for (const t of tables) {
        expect(t.Properties).toMatchObject({
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { SSEEnabled: true },
        });
      }
    },
  );

  test.each([
    ['dev', 'Delete', false],
    ['staging', 'Retain', false],
    ['prod', 'Retain', true],
  ] as const)('%s: removal policy %s, deletion protection %s', (stage, policy, protection) => {
    for (const t of Object.values(stages[stage].template.findResources('AWS::DynamoDB::Table'))) {
      expect(t.DeletionPolicy).toBe(policy);
      expect(t.UpdateReplacePolicy).toBe(policy);
      expect(t.Properties.DeletionProtectionEnabled).toBe(protection);
    }
  });

  test('defaults are the safe ones (retain, deletion protection)', () => {
    const stack = new Stack(new App(), 'Defaults');
    new RegistryTables(stack, 'Registry');
    for (const t of Object.values(Template.fromStack(stack).findResources('AWS::DynamoDB::Table'))) {
      expect(t.DeletionPolicy).toBe('Retain');
      expect(t.Properties.DeletionProtectionEnabled).toBe(true);
    }
    expect(RemovalPolicy.RETAIN).toBe('retain');
  });

  const t = stages.prod.template.toJSON().Resources;

  test('Devices: key serial; GSIs byLot(lot, serial), byThing(thingName), byCertificate(certificateId)', () => {
    const p = t.RegistryDevicesTable.Properties;
    expect(p.KeySchema).toEqual([{ AttributeName: TABLES.devices.partitionKey, KeyType: 'HASH' }]);
    const gsis = Object.fromEntries(
      (p.GlobalSecondaryIndexes as { IndexName: string; KeySchema: unknown; Projection: unknown }[]).map(
        (g) => [g.IndexName, g],
      ),
    );
    expect(Object.keys(gsis).sort()).toEqual(['byCertificate', 'byLot', 'byThing']);
    expect(gsis.byLot.KeySchema).toEqual([
      { AttributeName: 'lot', KeyType: 'HASH' },
      { AttributeName: 'serial', KeyType: 'RANGE' },
    ]);
    expect(gsis.byThing.KeySchema).toEqual([{ AttributeName: 'thingName', KeyType: 'HASH' }]);
    expect(gsis.byCertificate.KeySchema).toEqual([{ AttributeName: 'certificateId', KeyType: 'HASH' }]);
    expect(gsis.byThing.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
    expect(gsis.byCertificate.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
  });

  test('Lots: key lot, no indexes', () => {
    const p = t.RegistryLotsTable.Properties;
    expect(p.KeySchema).toEqual([{ AttributeName: 'lot', KeyType: 'HASH' }]);
    expect(p.GlobalSecondaryIndexes).toBeUndefined();
  });

  test('Events: DynamoDB TTL on expiresAt (entries of serials not on the manifest expire)', () => {
    expect(t.RegistryEventsTable.Properties.TimeToLiveSpecification).toEqual({
      AttributeName: TABLES.events.expiresAt,
      Enabled: true,
    });
    expect(TABLES.events.expiresAt).toBe('expiresAt');
    expect(t.RegistryDevicesTable.Properties.TimeToLiveSpecification).toBeUndefined();
    expect(t.RegistryLotsTable.Properties.TimeToLiveSpecification).toBeUndefined();
  });

  test('Events: serial + sk, sparse byEnrollmentDay(enrollDay = "YYYY-MM-DD#k", at) projecting all', () => {
    const p = t.RegistryEventsTable.Properties;
    expect(p.KeySchema).toEqual([
      { AttributeName: 'serial', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(p.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: TABLES.events.enrollmentIndex,
        KeySchema: [
          { AttributeName: 'enrollDay', KeyType: 'HASH' },
          { AttributeName: 'at', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
  });

  describe('grants', () => {
    function grantsOf(grant: (r: RegistryTables, role: iam.Role) => void): [string, string][] {
      const stack = new Stack(new App(), 'Grants');
      const registry = new RegistryTables(stack, 'Registry');
      const role = new iam.Role(stack, 'Fn', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      grant(registry, role);
      const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
      return (policy.Properties.PolicyDocument.Statement as PolicyStatement[]).map((s) => [
        asArray(s.Action).sort().join(','),
        asArray(s.Resource)
          .map((r) => flat(r))
          .join(','),
      ]);
    }

    test('grantProvisioningDecision', () => {
      expect(grantsOf((r, fn) => r.grantProvisioningDecision(fn))).toEqual([
        ['dynamodb:GetItem,dynamodb:UpdateItem', '<RegistryDevicesTable.Arn>'],
        ['dynamodb:GetItem', '<RegistryLotsTable.Arn>'],
        ['dynamodb:PutItem', '<RegistryEventsTable.Arn>'],
      ]);
    });

    test('grantPresenceUpdates', () => {
      expect(grantsOf((r, fn) => r.grantPresenceUpdates(fn))).toEqual([
        ['dynamodb:GetItem,dynamodb:UpdateItem', '<RegistryDevicesTable.Arn>'],
        ['dynamodb:PutItem', '<RegistryEventsTable.Arn>'],
      ]);
    });

    test('grantAppendEvents is PutItem only (the trail is append-only)', () => {
      expect(grantsOf((r, fn) => r.grantAppendEvents(fn))).toEqual([
        ['dynamodb:PutItem', '<RegistryEventsTable.Arn>'],
      ]);
    });
  });
});
