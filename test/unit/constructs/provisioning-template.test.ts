import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../../core/env';
import {
  HOOK_PAYLOAD_VERSION,
  MAX_TEMPLATE_BODY_LENGTH,
} from '../../../lib/provisioning/provisioning-template';
import { asArray, flat, Loose, one, PolicyStatement, resourcesOf, synthFleet } from './helpers';

const { template } = synthFleet();
/** One synth for the variants: long names, several templates, provisioned concurrency. */
const variants = synthFleet({
  thingNamePrefix: 'p'.repeat(32),
  // The longest topic prefix leaves no room for Basic Ingest rules in the 2048-character device policy.
  topicPrefix: 't'.repeat(32),
  telemetry: { basicIngest: false },
  provisioning: {
    templates: [
      {
        name: `${'p'.repeat(32)}-nnn`,
        thingTypeName: `${'p'.repeat(32)}-${'x'.repeat(95)}`,
        hook: { provisionedConcurrency: 5 },
      },
      { name: `${'p'.repeat(32)}-b`, thingTypeName: `${'p'.repeat(32)}-gw` },
      { name: `${'p'.repeat(32)}-c`, thingTypeName: `${'p'.repeat(32)}-gw` },
    ],
  },
});
const [templateId, provisioningTemplate] = one(template, 'AWS::IoT::ProvisioningTemplate');
const [devicePolicyId] = one(template, 'AWS::IoT::Policy', 'DevicePolicy');
const [hookId, hook] = one(template, 'AWS::Lambda::Function', 'Template0Hook');
const [permissionId, permission] = one(template, 'AWS::Lambda::Permission', 'HookInvokePermission');

function body(policyName = 'device-policy'): Loose {
  return JSON.parse(flat(provisioningTemplate.Properties.TemplateBody, { [devicePolicyId]: policyName }));
}

describe('provisioning template', () => {
  test('is a fixed-name, enabled FLEET_PROVISIONING template', () => {
    expect(provisioningTemplate.Properties).toMatchObject({
      TemplateName: 'fleet-default',
      TemplateType: 'FLEET_PROVISIONING',
      Enabled: true,
    });
  });

  test('body is valid JSON with exactly the contract parameters', () => {
    expect(Object.keys(body().Parameters).sort()).toEqual(
      [
        'AWS::IoT::Certificate::Id',
        'DeviceProof',
        'FirmwareVersion',
        'HardwareRevision',
        'Lot',
        'Ring',
        'SerialNumber',
        'ThingName',
      ].sort(),
    );
    expect(body().Parameters.DeviceProof).toEqual({ Type: 'String', Default: '' });
  });

  test('body references the new certificate and activates it', () => {
    expect(body().Resources.certificate).toEqual({
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
    });
  });

  test('body attaches the device policy by name', () => {
    expect(body('the-device-policy').Resources.policy).toEqual({
      Type: 'AWS::IoT::Policy',
      Properties: { PolicyName: 'the-device-policy' },
    });
  });

  test('body creates the thing with type, attributes, ring and lot groups and override settings', () => {
    const thing = body().Resources.thing;
    expect(thing.Type).toBe('AWS::IoT::Thing');
    expect(thing.Properties.ThingName).toEqual({ Ref: 'ThingName' });
    expect(thing.Properties.ThingTypeName).toBe('fleet-device');
    expect(thing.Properties.AttributePayload).toEqual({
      serial: { Ref: 'SerialNumber' },
      lot: { Ref: 'Lot' },
      hwRev: { Ref: 'HardwareRevision' },
      ring: { Ref: 'Ring' },
      firmware: { Ref: 'FirmwareVersion' },
    });
    expect(thing.Properties.ThingGroups).toEqual([
      { 'Fn::Join': ['', ['fleet-ring-', { Ref: 'Ring' }]] },
      { 'Fn::Join': ['', ['fleet-lot-', { Ref: 'Lot' }]] },
    ]);
    expect(thing.OverrideSettings).toEqual({
      AttributePayload: 'MERGE',
      ThingTypeName: 'REPLACE',
      ThingGroups: 'REPLACE',
    });
  });

  test('every Ref in the body names a declared parameter', () => {
    const b = body();
    const refs = [...JSON.stringify(b).matchAll(/"Ref":"([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(5);
    for (const r of refs) expect(Object.keys(b.Parameters)).toContain(r);
  });

  test('device configuration holds flat topic strings', () => {
    expect(body().DeviceConfiguration).toEqual({
      telemetryTopic: { 'Fn::Join': ['', ['dt/fleet/', { Ref: 'ThingName' }, '/telemetry']] },
      healthTopic: { 'Fn::Join': ['', ['dt/fleet/', { Ref: 'ThingName' }, '/health']] },
    });
  });

  test('body stays under the 10240-character limit, even with long names', () => {
    const [policyId] = one(variants.template, 'AWS::IoT::Policy', 'DevicePolicy');
    const [, tpl] = one(variants.template, 'AWS::IoT::ProvisioningTemplate', 'Template0');
    const text = flat(tpl.Properties.TemplateBody, { [policyId]: 'P'.repeat(128) });
    expect(text.length).toBeLessThan(MAX_TEMPLATE_BODY_LENGTH);
  });

  test('the hook is wired with payload version 2020-04-01', () => {
    expect(provisioningTemplate.Properties.PreProvisioningHook).toEqual({
      PayloadVersion: HOOK_PAYLOAD_VERSION,
      TargetArn: { 'Fn::GetAtt': [hookId, 'Arn'] },
    });
    expect(HOOK_PAYLOAD_VERSION).toBe('2020-04-01');
  });

  test('the hook permission is scoped to AWS IoT in this account', () => {
    expect(permission.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [hookId, 'Arn'] },
      Principal: 'iot.amazonaws.com',
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });

  test('the template depends on the permission, role, thing type, groups and device policy', () => {
    const deps = provisioningTemplate.DependsOn as string[];
    expect(deps).toContain(permissionId);
    expect(deps).toContain(devicePolicyId);
    for (const type of ['AWS::IAM::Role', 'AWS::IoT::ThingType']) {
      const [id] = one(template, type, type === 'AWS::IAM::Role' ? 'ProvisioningRole' : '');
      expect(deps).toContain(id);
    }
    for (const id of Object.keys(resourcesOf(template, 'AWS::IoT::ThingGroup'))) expect(deps).toContain(id);
    expect(deps.some((d) => d.includes('ProvisioningRoleDefaultPolicy'))).toBe(true);
  });

  test('the hook function: 5 s timeout, configured memory, environment contract', () => {
    expect(hook.Properties).toMatchObject({ Timeout: 5, MemorySize: 1024, Handler: 'index.handler' });
    const env = (hook.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env).toMatchObject({
      [ENV.devicesTable]: { Ref: 'RegistryDevicesTable' },
      [ENV.lotsTable]: { Ref: 'RegistryLotsTable' },
      [ENV.eventsTable]: { Ref: 'RegistryEventsTable' },
      [ENV.thingNamePrefix]: 'fleet',
      [ENV.serialPattern]: '^[A-Z0-9][A-Z0-9-]{3,31}$',
      [ENV.templateNames]: 'fleet-default',
      [ENV.ringShares]: '2:18',
      [ENV.hookBudgetMs]: '3500',
      [ENV.unlistedTrailRetentionDays]: '30',
    });
    expect(flat(env[ENV.templateArnPrefix])).toBe('arn:aws:iot:eu-west-1:111122223333:provisioningtemplate/');
  });

  test('the template ARN prefix comes from pseudo parameters only (no reference to the template: no cycle)', () => {
    const env = (hook.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    const prefix = JSON.stringify(env[ENV.templateArnPrefix]);
    expect(prefix).not.toContain(templateId);
    const refs = [...prefix.matchAll(/"Ref":"([^"]+)"/g)].map((m) => m[1]);
    expect(refs.sort()).toEqual(['AWS::AccountId', 'AWS::Partition', 'AWS::Region']);
    expect(prefix).not.toContain('Fn::GetAtt');
  });

  test('configured ring shares, serial pattern and trail retention reach the hook', () => {
    const custom = synthFleet({
      serialPattern: '^SN[0-9]{6}$',
      rings: { canaryPercent: 5, earlyPercent: 25.5 },
      trail: { unlistedSerialRetentionDays: 7 },
    });
    const [, fn] = one(custom.template, 'AWS::Lambda::Function', 'Template0Hook');
    expect(fn.Properties.Environment.Variables).toMatchObject({
      [ENV.serialPattern]: '^SN[0-9]{6}$',
      [ENV.ringShares]: '5:25.5',
      [ENV.unlistedTrailRetentionDays]: '7',
    });
  });

  test('the hook may describe certificates and make its registry decision, nothing more', () => {
    const [, pol] = one(template, 'AWS::IAM::Policy', 'Template0HookRoleDefaultPolicy');
    const statements = (pol.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement;
    const grants = statements.map((s) => [
      asArray(s.Action).sort().join(','),
      asArray(s.Resource)
        .map((r) => flat(r))
        .join(','),
    ]);
    expect(grants).toEqual(
      expect.arrayContaining([
        ['dynamodb:GetItem,dynamodb:UpdateItem', '<RegistryDevicesTable.Arn>'],
        ['dynamodb:GetItem', '<RegistryLotsTable.Arn>'],
        ['dynamodb:PutItem', '<RegistryEventsTable.Arn>'],
        ['iot:DescribeCertificate', 'arn:aws:iot:eu-west-1:111122223333:cert/*'],
      ]),
    );
    for (const s of statements) {
      for (const a of asArray(s.Action)) {
        expect([
          'dynamodb:GetItem',
          'dynamodb:UpdateItem',
          'dynamodb:PutItem',
          'iot:DescribeCertificate',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'xray:PutTraceSegments',
          'xray:PutTelemetryRecords',
        ]).toContain(a);
      }
    }
  });

  test('one template, hook and claim policy per configured template', () => {
    const multi = variants;
    multi.template.resourceCountIs('AWS::IoT::ProvisioningTemplate', 3);
    multi.template.resourceCountIs('AWS::IoT::ThingType', 2);
    expect(
      Object.keys(multi.template.findResources('AWS::IoT::Policy')).filter((k) => k.includes('ClaimPolicy')),
    ).toHaveLength(3);
    multi.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [ENV.templateNames]: `${'p'.repeat(32)}-b` }) },
    });
  });

  test('provisioned concurrency targets a live alias, and the permission follows it', () => {
    const pc = variants;
    const [aliasId, alias] = one(pc.template, 'AWS::Lambda::Alias');
    expect(alias.Properties).toMatchObject({
      Name: 'live',
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 5 },
    });
    const [, tpl] = one(pc.template, 'AWS::IoT::ProvisioningTemplate', 'Template0');
    expect(tpl.Properties.PreProvisioningHook).toEqual({
      PayloadVersion: '2020-04-01',
      TargetArn: { Ref: aliasId },
    });
    const [, perm] = one(pc.template, 'AWS::Lambda::Permission', 'Template0HookInvokePermission');
    expect(perm.Properties.FunctionName).toEqual({ Ref: aliasId });
  });

  test('template id is stable', () => {
    expect(templateId).toMatch(/^ProvisioningTemplate0/);
  });
});
