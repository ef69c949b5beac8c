/**
 * The OTA constructs in the fleet stack: firmware bucket settings and retention, the firmware
 * package, one job template per stage class (CloudFormation-cased settings, the aws-cdk#32459
 * workaround), the least-privilege presigned-URL role, the job event custom resource and its
 * IAM, the outputs, and the synth-time errors of the constructs.
 */
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import { FLEET_DEFAULTS, resolveFleetConfig } from '../../../lib/config';
import { FleetStack } from '../../../lib/fleet-stack';
import { FirmwareBucket, FIRMWARE_BUCKET_LOGICAL_ID } from '../../../lib/ota/firmware-bucket';
import { FirmwarePackage, FIRMWARE_PACKAGE_LOGICAL_ID } from '../../../lib/ota/firmware-package';
import { JOB_EVENTS_RESOURCE_TYPE } from '../../../lib/ota/job-event-configuration';
import { cfnJobSettings, OtaJobTemplates } from '../../../lib/ota/job-templates';
import { asArray, flat, Loose, PolicyStatement, resourcesOf, synthFleet } from './helpers';

describe('OTA in the fleet stack (defaults, dev)', () => {
  const { template } = synthFleet();
  const json = template.toJSON();
  const resources = json.Resources as Record<string, Loose>;

  test('firmware bucket: versioned, SSE-S3, no public access, TLS only, pinned logical id', () => {
    const bucket = resources[FIRMWARE_BUCKET_LOGICAL_ID];
    expect(bucket.Type).toBe('AWS::S3::Bucket');
    expect(bucket.Properties).toEqual(
      expect.objectContaining({
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
      }),
    );
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: FIRMWARE_BUCKET_LOGICAL_ID },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('firmware package: fixed name from the prefix, pinned logical id', () => {
    expect(resources[FIRMWARE_PACKAGE_LOGICAL_ID]).toEqual(
      expect.objectContaining({
        Type: 'AWS::IoT::SoftwarePackage',
        Properties: expect.objectContaining({ PackageName: 'fleet-firmware' }),
      }),
    );
  });

  const templates = Object.entries(resourcesOf(template, 'AWS::IoT::JobTemplate'));

  test('one job template per stage class, ids <prefix>-ota-<class>-<hash>', () => {
    const ids = templates.map(([, r]) => r.Properties.JobTemplateId as string).sort();
    expect(ids).toHaveLength(3);
    expect(ids[0]).toMatch(/^fleet-ota-broad-[0-9a-f]{8}$/);
    expect(ids[1]).toMatch(/^fleet-ota-canary-[0-9a-f]{8}$/);
    expect(ids[2]).toMatch(/^fleet-ota-early-[0-9a-f]{8}$/);
  });

  test('settings in CloudFormation case (aws-cdk#32459: the L1 passes these properties through as is)', () => {
    const canary = templates.find(([, r]) => /-canary-/.test(r.Properties.JobTemplateId))![1].Properties;
    expect(canary.AbortConfig).toEqual({
      CriteriaList: [
        { Action: 'CANCEL', FailureType: 'ALL', ThresholdPercentage: 20, MinNumberOfExecutedThings: 3 },
      ],
    });
    expect(canary.JobExecutionsRolloutConfig).toEqual({ MaximumPerMinute: 10 });
    expect(canary.TimeoutConfig).toEqual({ InProgressTimeoutInMinutes: 60 });
    expect(canary.JobExecutionsRetryConfig).toBeUndefined();
    expect(canary.PresignedUrlConfig).toEqual({
      RoleArn: { 'Fn::GetAtt': [expect.stringMatching(/PresignedUrlRole/), 'Arn'] },
      ExpiresInSec: 3600,
    });
    const broad = templates.find(([, r]) => /-broad-/.test(r.Properties.JobTemplateId))![1].Properties;
    expect(broad.JobExecutionsRolloutConfig).toEqual({
      MaximumPerMinute: 500,
      ExponentialRolloutRate: {
        BaseRatePerMinute: 50,
        IncrementFactor: 2,
        RateIncreaseCriteria: { NumberOfSucceededThings: 200 },
      },
    });
    expect(broad.JobExecutionsRetryConfig).toEqual({
      RetryCriteriaList: [
        { FailureType: 'FAILED', NumberOfRetries: 2 },
        { FailureType: 'TIMED_OUT', NumberOfRetries: 1 },
      ],
    });
    // No camelCase key anywhere in the passed-through settings.
    for (const [, r] of templates) {
      const text = JSON.stringify([
        r.Properties.AbortConfig,
        r.Properties.JobExecutionsRolloutConfig,
        r.Properties.TimeoutConfig,
        r.Properties.PresignedUrlConfig,
      ]);
      expect(text).not.toMatch(/"[a-z][A-Za-z]*":/);
      expect(r.DependsOn).toEqual(expect.arrayContaining([expect.stringMatching(/PresignedUrlRole/)]));
    }
  });

  test('the template document is a firmware update filled in from the package version', () => {
    const doc = JSON.parse(templates[0][1].Properties.Document);
    expect(doc.operation).toBe('firmware-update');
    expect(doc.image.url).toBe(
      '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/${aws:iot:package::version::attributes:s3Bucket}/${aws:iot:package::version::attributes:s3Key}}',
    );
  });

  test('presigned-URL role: assumed by AWS IoT of this account, reads firmware images only', () => {
    const [roleId, role] = Object.entries(resourcesOf(template, 'AWS::IAM::Role')).find(([id]) =>
      id.includes('PresignedUrlRole'),
    )!;
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { Service: 'iot.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      },
    ]);
    const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((p) => p.Properties.Roles.some((r: Loose) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toBe('s3:GetObject');
    expect(asArray(statements[0].Resource).map((r) => flat(r))).toEqual([
      `<${FIRMWARE_BUCKET_LOGICAL_ID}.Arn>/firmware/*`,
    ]);
  });

  test('job event custom resource: its function may only describe and update event configurations', () => {
    const [crId, cr] = Object.entries(resources).find(([, r]) => r.Type === JOB_EVENTS_RESOURCE_TYPE)!;
    expect(cr.Properties.ServiceToken).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/JobEventsHandler/), 'Arn'],
    });
    expect(cr.Properties.EventTypes).toEqual(['JOB', 'JOB_EXECUTION']);
    expect(cr.DependsOn).toEqual(expect.arrayContaining([expect.stringMatching(/JobEventsHandlerRole/)]));
    const fnId = cr.Properties.ServiceToken['Fn::GetAtt'][0];
    const roleId = resources[fnId].Properties.Role['Fn::GetAtt'][0];
    const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((p) => p.Properties.Roles.some((r: Loose) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
    const iot = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('iot:')));
    expect(iot).toEqual([
      {
        Effect: 'Allow',
        Action: ['iot:DescribeEventConfigurations', 'iot:UpdateEventConfigurations'],
        Resource: '*',
      },
    ]);
    expect(crId).toBe('OtaJobEventsDA6BAD50');
  });

  test('outputs: firmware bucket, package, template ARN per stage class, presigned-URL role', () => {
    const outputs = json.Outputs as Record<string, { Value: Loose }>;
    expect(outputs[STACK_OUTPUTS.firmwareBucket].Value).toEqual({ Ref: FIRMWARE_BUCKET_LOGICAL_ID });
    expect(outputs[STACK_OUTPUTS.firmwarePackage].Value).toBe('fleet-firmware');
    const arns = flat(outputs[STACK_OUTPUTS.otaJobTemplates].Value);
    for (const stage of ['canary', 'early', 'broad']) expect(arns).toContain(`"${stage}":`);
    expect(outputs[STACK_OUTPUTS.otaPresignedUrlRole].Value).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/PresignedUrlRole/), 'Arn'],
    });
  });
});

describe('OTA settings from the config', () => {
  test('the firmware bucket is retained outside dev', () => {
    const { template } = synthFleet({ stage: 'prod' });
    const bucket = template.toJSON().Resources[FIRMWARE_BUCKET_LOGICAL_ID];
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(bucket.UpdateReplacePolicy).toBe('Retain');
  });

  test('manageJobEvents false: no custom resource, no function for it', () => {
    const { template } = synthFleet({ ota: { manageJobEvents: false } });
    expect(
      Object.values(template.toJSON().Resources).some((r: Loose) => r.Type === JOB_EVENTS_RESOURCE_TYPE),
    ).toBe(false);
  });

  test('package name, URL lifetime and a stage class setting reach the template; the id follows the settings', () => {
    const base = synthFleet().template;
    const { template } = synthFleet({
      ota: {
        packageName: 'acme.fw',
        presignedUrlExpiresInSec: 900,
        stageClasses: {
          canary: {
            rollout: {
              maximumPerMinute: 5,
              exponential: { baseRatePerMinute: 2, incrementFactor: 1.5, numberOfNotifiedThings: 4 },
            },
          },
        },
      },
    });
    template.hasResourceProperties('AWS::IoT::SoftwarePackage', { PackageName: 'acme.fw' });
    template.hasResourceProperties('AWS::IoT::JobTemplate', {
      JobTemplateId: Match.stringLikeRegexp('^fleet-ota-canary-'),
      PresignedUrlConfig: { RoleArn: Match.anyValue(), ExpiresInSec: 900 },
      JobExecutionsRolloutConfig: {
        MaximumPerMinute: 5,
        ExponentialRolloutRate: {
          BaseRatePerMinute: 2,
          IncrementFactor: 1.5,
          RateIncreaseCriteria: { NumberOfNotifiedThings: 4 },
        },
      },
    });
    const ids = (t: Template) =>
      Object.values(resourcesOf(t, 'AWS::IoT::JobTemplate')).map((r) => r.Properties.JobTemplateId as string);
    expect(ids(template).filter((id) => ids(base).includes(id))).toEqual([]);
  });

  test('logical ids of the OTA resources are stable (a rename would replace fixed-name resources)', () => {
    const { template } = synthFleet();
    const ids = Object.entries(template.toJSON().Resources as Record<string, Loose>)
      .filter(([id]) => /^(Ota|Firmware)/.test(id))
      .map(([id, r]) => `${id} ${r.Type}`);
    expect(ids).toEqual([
      'FirmwareBucket AWS::S3::Bucket',
      'OtaFirmwareBucketPolicyB2DC839D AWS::S3::BucketPolicy',
      'FirmwarePackage AWS::IoT::SoftwarePackage',
      'OtaJobTemplatesPresignedUrlRoleF77CBCFE AWS::IAM::Role',
      'OtaJobTemplatesPresignedUrlRoleDefaultPolicy14C31DEA AWS::IAM::Policy',
      'OtaJobTemplatesCanaryA65DA55B AWS::IoT::JobTemplate',
      'OtaJobTemplatesEarly228C3E32 AWS::IoT::JobTemplate',
      'OtaJobTemplatesBroad0E8498B6 AWS::IoT::JobTemplate',
      'OtaJobEventsHandlerLogs8C3BD360 AWS::Logs::LogGroup',
      'OtaJobEventsHandlerRole3B3E3765 AWS::IAM::Role',
      'OtaJobEventsHandlerRoleDefaultPolicyD6D1D92E AWS::IAM::Policy',
      'OtaJobEventsHandler16FDC7CD AWS::Lambda::Function',
      `OtaJobEventsDA6BAD50 ${JOB_EVENTS_RESOURCE_TYPE}`,
    ]);
  });
});

describe('construct errors name the fix', () => {
  const stack = () => new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'S');

  test('presigned URL lifetime out of range', () => {
    const s = stack();
    const firmware = new FirmwareBucket(s, 'F', { removalPolicy: RemovalPolicy.DESTROY });
    expect(() => new OtaJobTemplates(s, 'T', { firmware, presignedUrlExpiresInSec: 30 })).toThrow(
      /presignedUrlExpiresInSec 30 is invalid; use an integer between 60 and 3600/,
    );
  });

  test('bad template id prefix', () => {
    const s = stack();
    const firmware = new FirmwareBucket(s, 'F');
    expect(() => new OtaJobTemplates(s, 'T', { firmware, idPrefix: 'a b' })).toThrow(
      /idPrefix "a b" is invalid/,
    );
  });

  test('bad package name and bucket expiration', () => {
    const s = stack();
    expect(() => new FirmwarePackage(s, 'P', { packageName: 'x/y' })).toThrow(
      /packageName "x\/y" is invalid; use 1-128/,
    );
    expect(() => new FirmwareBucket(s, 'B', { noncurrentVersionExpirationDays: 0 })).toThrow(
      /use at least 1/,
    );
  });

  test('cfnJobSettings: notified-things criterion', () => {
    const cfg = resolveFleetConfig({}).ota.stageClasses.early;
    const settings = cfnJobSettings({
      ...cfg,
      rollout: {
        maximumPerMinute: 9,
        exponential: { baseRatePerMinute: 1, incrementFactor: 2, numberOfNotifiedThings: 3 },
      },
    });
    expect(settings.JobExecutionsRolloutConfig).toEqual({
      MaximumPerMinute: 9,
      ExponentialRolloutRate: {
        BaseRatePerMinute: 1,
        IncrementFactor: 2,
        RateIncreaseCriteria: { NumberOfNotifiedThings: 3 },
      },
    });
    expect(FLEET_DEFAULTS.ota.stageClasses.early.rollout.maximumPerMinute).toBe(100);
  });

  test('a standalone FirmwareBucket defaults to RETAIN', () => {
    const s = stack();
    new FirmwareBucket(s, 'B');
    const bucket = Template.fromStack(s).toJSON().Resources[FIRMWARE_BUCKET_LOGICAL_ID];
    expect(bucket.DeletionPolicy).toBe('Retain');
  });
});

describe('grants', () => {
  test('grantPublishReleases: images of this bucket, this package and its versions, nothing else', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new FleetStack(app, 'TestFleet', { config: resolveFleetConfig({}) });
    const role = new iam.Role(stack, 'ReleaseRole', { assumedBy: new iam.AccountRootPrincipal() });
    stack.ota.grantPublishReleases(role);
    const template = Template.fromStack(stack);
    const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((p) =>
      p.Properties.Roles.some((r: Loose) => String(r.Ref).startsWith('ReleaseRole')),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
    expect(
      statements.map((s) => ({
        actions: asArray(s.Action),
        resources: asArray(s.Resource).map((r) => flat(r)),
      })),
    ).toEqual([
      {
        actions: ['s3:PutObject', 's3:GetObject', 's3:GetObjectVersion'],
        resources: [`<${FIRMWARE_BUCKET_LOGICAL_ID}.Arn>/firmware/*`],
      },
      {
        actions: [
          'iot:GetPackage',
          'iot:GetPackageVersion',
          'iot:CreatePackageVersion',
          'iot:UpdatePackageVersion',
        ],
        resources: [
          `<${FIRMWARE_PACKAGE_LOGICAL_ID}.PackageArn>`,
          'arn:aws:iot:eu-west-1:111122223333:package/fleet-firmware/version/*',
        ],
      },
    ]);
  });
});

describe('ota config section', () => {
  const issues = (input: Record<string, unknown>): string[] => {
    try {
      resolveFleetConfig(input);
      return [];
    } catch (err) {
      return [...(err as { issues: string[] }).issues];
    }
  };

  test('defaults: package <prefix>-firmware, 3600 s URLs, job events managed, conservative stage classes', () => {
    const ota = resolveFleetConfig({ thingNamePrefix: 'acme' }).ota;
    expect(ota.packageName).toBe('acme-firmware');
    expect(ota.presignedUrlExpiresInSec).toBe(3600);
    expect(ota.manageJobEvents).toBe(true);
    expect(ota.stageClasses.canary).toEqual({
      rollout: { maximumPerMinute: 10 },
      abort: [{ failureType: 'ALL', thresholdPercentage: 20, minNumberOfExecutedThings: 3 }],
      inProgressTimeoutMinutes: 60,
      retries: { FAILED: 0, TIMED_OUT: 0 },
    });
    // A partial stage class keeps the other defaults of its class.
    const early = resolveFleetConfig({ ota: { stageClasses: { early: { inProgressTimeoutMinutes: 30 } } } })
      .ota.stageClasses.early;
    expect(early).toEqual({ ...FLEET_DEFAULTS.ota.stageClasses.early, inProgressTimeoutMinutes: 30 });
  });

  test.each([
    [
      { ota: { presignedUrlExpiresInSec: 10 } },
      'ota.presignedUrlExpiresInSec: 10 is invalid; use an integer number of seconds between 60 and 3600 (AWS IoT presigned URL lifetime)',
    ],
    [
      { ota: { packageName: 'a b' } },
      'ota.packageName: "a b" is invalid; use 1-128 characters of a-z A-Z 0-9 _ . - (Software Package Catalog name)',
    ],
    [
      { ota: { stageClasses: { canary: { abort: [] } } } },
      'ota.stageClasses.canary.abort: [] is invalid; keep at least one abort criterion: a stage without one never stops on failures',
    ],
    [
      { ota: { stageClasses: { broad: { retries: { FAILED: 6, TIMED_OUT: 5 } } } } },
      'ota.stageClasses.broad.retries.TIMED_OUT: 5 is invalid; keep FAILED + TIMED_OUT (now 11) at most 10: AWS IoT allows 10 retries per device in all',
    ],
    [
      {
        ota: {
          stageClasses: {
            early: {
              rollout: {
                maximumPerMinute: 10,
                exponential: { baseRatePerMinute: 20, incrementFactor: 2, numberOfSucceededThings: 5 },
              },
            },
          },
        },
      },
      'ota.stageClasses.early.rollout.exponential.baseRatePerMinute: 20 is invalid; keep it at most maximumPerMinute (10), or raise maximumPerMinute',
    ],
    [
      {
        ota: {
          stageClasses: {
            early: {
              rollout: { maximumPerMinute: 10, exponential: { baseRatePerMinute: 2, incrementFactor: 1.25 } },
            },
          },
        },
      },
      'ota.stageClasses.early.rollout.exponential.incrementFactor: 1.25 is invalid; use one decimal at most, e.g. 1.5 (AWS IoT takes one digit after the point)',
    ],
    [
      {
        ota: {
          stageClasses: {
            canary: {
              abort: [
                { failureType: 'FAILED', thresholdPercentage: 5, minNumberOfExecutedThings: 1 },
                { failureType: 'FAILED', thresholdPercentage: 9, minNumberOfExecutedThings: 1 },
              ],
            },
          },
        },
      },
      'ota.stageClasses.canary.abort[1].failureType: "FAILED" is invalid; use each failure type once (AWS IoT keeps one criterion per type)',
    ],
  ])('%j is refused naming the fix', (input, message) => {
    expect(issues(input)).toContain(message);
  });

  test('an exponential rate needs exactly one rate-increase criterion', () => {
    const found = issues({
      ota: {
        stageClasses: {
          early: {
            rollout: { maximumPerMinute: 10, exponential: { baseRatePerMinute: 2, incrementFactor: 2 } },
          },
        },
      },
    });
    expect(found.join('\n')).toContain(
      'set exactly one of numberOfNotifiedThings and numberOfSucceededThings (the count that raises the rate)',
    );
  });
});
