import { createHash } from 'node:crypto';
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import type { JobTemplatesOutput } from '../../core/stack-outputs';
import { FLEET_DEFAULTS, STAGE_CLASSES, type StageClass, type StageClassConfig } from '../config';
import type { FirmwareBucket } from './firmware-bucket';

/** Largest job template id AWS IoT accepts (`[a-zA-Z0-9_-]`). */
const MAX_TEMPLATE_ID = 64;

export interface OtaJobTemplatesProps {
  /** Bucket of the firmware images: the presigned-URL role may read its images and nothing else. */
  readonly firmware: FirmwareBucket;
  /**
   * Prefix of the template ids (`<prefix>-ota-<stage class>-<settings hash>`): letters, digits,
   * `_` and `-`. @default 'fleet'
   */
  readonly idPrefix?: string;
  /** Lifetime of the presigned URLs (60 to 3600 s). @default 3600 */
  readonly presignedUrlExpiresInSec?: number;
  /** Job settings per stage class. @default FLEET_DEFAULTS.ota.stageClasses */
  readonly stageClasses?: Readonly<Record<StageClass, StageClassConfig>>;
  /**
   * Job document of the templates. The rollout controller passes each job's own document with
   * CreateJob; this one fills in from the job's `destinationPackageVersions` (package catalog
   * attribute substitution). @default {@link packageTemplateDocument}
   */
  readonly document?: string;
}

/**
 * The template job document: a firmware update whose fields come from the attributes of the
 * package version the job names in `destinationPackageVersions` (`fleet firmware publish`
 * records them), with the image URL presigned by AWS IoT Jobs.
 */
export function packageTemplateDocument(): string {
  const attr = (name: string) => `\${aws:iot:package::version::attributes:${name}}`;
  return JSON.stringify({
    operation: 'firmware-update',
    version: attr('version'),
    hwRevs: attr('hwRevs'),
    image: {
      url: `\${aws:iot:s3-presigned-url:https://s3.amazonaws.com/${attr('s3Bucket')}/${attr('s3Key')}}`,
      sizeBytes: attr('sizeBytes'),
      sha256: attr('sha256'),
      signature: attr('signature'),
      signatureAlgorithm: attr('signatureAlgorithm'),
    },
  });
}

/**
 * The CloudFormation `AbortConfig`, `JobExecutionsRolloutConfig` and `TimeoutConfig` of one
 * stage class. `CfnJobTemplate` types these three (and `PresignedUrlConfig`) as `any` and passes
 * them through as they are, without turning `camelCase` keys into CloudFormation's `PascalCase`:
 * camelCase keys fail validation ("required key [RoleArn] not found", aws/aws-cdk#32459). So the
 * keys are written here in CloudFormation's own form, and a test pins the synthesized shape.
 */
export function cfnJobSettings(s: StageClassConfig): {
  AbortConfig: unknown;
  JobExecutionsRolloutConfig: unknown;
  TimeoutConfig: unknown;
} {
  const e = s.rollout.exponential;
  return {
    AbortConfig: {
      CriteriaList: s.abort.map((c) => ({
        Action: 'CANCEL',
        FailureType: c.failureType,
        ThresholdPercentage: c.thresholdPercentage,
        MinNumberOfExecutedThings: c.minNumberOfExecutedThings,
      })),
    },
    JobExecutionsRolloutConfig: {
      MaximumPerMinute: s.rollout.maximumPerMinute,
      ...(e
        ? {
            ExponentialRolloutRate: {
              BaseRatePerMinute: e.baseRatePerMinute,
              IncrementFactor: e.incrementFactor,
              RateIncreaseCriteria:
                e.numberOfSucceededThings !== undefined
                  ? { NumberOfSucceededThings: e.numberOfSucceededThings }
                  : { NumberOfNotifiedThings: e.numberOfNotifiedThings },
            },
          }
        : {}),
    },
    TimeoutConfig: { InProgressTimeoutInMinutes: s.inProgressTimeoutMinutes },
  };
}

/**
 * One AWS IoT job template per stage class (canary, early, broad): rollout rate, abort criteria,
 * in-progress timeout, retries and presigned-URL settings; the rollout controller creates each
 * stage's job from its class's template (`CreateJob --job-template-arn`) and adds the targets,
 * scheduling and `destinationPackageVersions`, which templates cannot carry.
 *
 * Most template properties force replacement and a template id is fixed per account, so the id
 * ends in a hash of the settings: a changed setting creates a new template beside the old one
 * before CloudFormation deletes the old one. Consumers read the ARNs from the stack output.
 *
 * The presigned-URL role is assumed by AWS IoT (this account only) and may read the firmware
 * images and nothing else.
 */
export class OtaJobTemplates extends Construct {
  /** Template per stage class. */
  public readonly templates: Readonly<Record<StageClass, iot.CfnJobTemplate>>;
  /** Role AWS IoT Jobs presigns the firmware URLs with. */
  public readonly presignedUrlRole: iam.Role;

  constructor(scope: Construct, id: string, props: OtaJobTemplatesProps) {
    super(scope, id);
    const prefix = props.idPrefix ?? FLEET_DEFAULTS.thingNamePrefix;
    const expires = props.presignedUrlExpiresInSec ?? FLEET_DEFAULTS.ota.presignedUrlExpiresInSec;
    if (!Number.isInteger(expires) || expires < 60 || expires > 3600) {
      throw new Error(
        `OtaJobTemplates: presignedUrlExpiresInSec ${expires} is invalid; use an integer between 60 and 3600 (AWS IoT's presigned URL limits)`,
      );
    }
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
      throw new Error(
        `OtaJobTemplates: idPrefix "${prefix}" is invalid; use 1-32 characters of A-Z a-z 0-9 _ -`,
      );
    }
    const classes =
      props.stageClasses ?? (FLEET_DEFAULTS.ota.stageClasses as Record<StageClass, StageClassConfig>);
    const stack = Stack.of(this);

    this.presignedUrlRole = new iam.Role(this, 'PresignedUrlRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description:
        'Lets AWS IoT Jobs presign download URLs of the firmware images (read-only, firmware/ only)',
    });
    props.firmware.grantReadImages(this.presignedUrlRole);

    const document = props.document ?? packageTemplateDocument();
    const templates = {} as Record<StageClass, iot.CfnJobTemplate>;
    for (const stage of STAGE_CLASSES) {
      const settings = classes[stage];
      const cfn = cfnJobSettings(settings);
      const hash = createHash('sha256')
        .update(JSON.stringify({ cfn, retries: settings.retries, expires, document }))
        .digest('hex')
        .slice(0, 8);
      const templateId = `${prefix}-ota-${stage}-${hash}`.slice(0, MAX_TEMPLATE_ID);
      const retries = (['FAILED', 'TIMED_OUT'] as const)
        .filter((t) => settings.retries[t] > 0)
        .map((failureType) => ({ failureType, numberOfRetries: settings.retries[failureType] }));
      const template = new iot.CfnJobTemplate(this, `${stage[0].toUpperCase()}${stage.slice(1)}`, {
        jobTemplateId: templateId,
        description: `Firmware update, ${stage} stage class (${prefix})`,
        document,
        abortConfig: cfn.AbortConfig,
        jobExecutionsRolloutConfig: cfn.JobExecutionsRolloutConfig,
        timeoutConfig: cfn.TimeoutConfig,
        jobExecutionsRetryConfig: retries.length > 0 ? { retryCriteriaList: retries } : undefined,
        // CloudFormation's keys (see cfnJobSettings): the L1 passes this property through as is.
        presignedUrlConfig: { RoleArn: this.presignedUrlRole.roleArn, ExpiresInSec: expires },
      });
      // AWS IoT checks that it can assume the role when the template is created.
      template.node.addDependency(this.presignedUrlRole);
      templates[stage] = template;
    }
    this.templates = templates;
  }

  /** Template ARN per stage class (the `OtaJobTemplates` output). */
  public templateArns(): JobTemplatesOutput {
    return {
      canary: this.templates.canary.jobTemplateRef.jobTemplateArn,
      early: this.templates.early.jobTemplateRef.jobTemplateArn,
      broad: this.templates.broad.jobTemplateRef.jobTemplateArn,
    };
  }

  /** Let `grantee` pass the presigned-URL role to AWS IoT (what CreateJob with a template needs). */
  public grantPassPresignedUrlRole(grantee: iam.IGrantable): iam.Grant {
    return this.presignedUrlRole.grantPassRole(grantee.grantPrincipal);
  }
}
