import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../../core/env';
import { FleetFunction } from '../common/fleet-function';
import { acknowledgeWildcardResource } from '../common/nag';
import type { RegistryTables } from '../traceability/registry-tables';
import type { FleetOta } from './fleet-ota';
import type { RolloutTable } from './rollout-table';

/** Entries of the rollout handlers, relative to the repository root. */
export const ROLLOUT_CONTROLLER_ENTRY = 'lambda/rollout/controller.handler.ts';
export const ROLLOUT_API_ENTRY = 'lambda/rollout/api.handler.ts';
/** The account's job and job-execution events (enabled by the job event configuration). */
export const JOB_EVENT_SQL = {
  job: "SELECT * FROM '$aws/events/job/#'",
  jobExecution: "SELECT * FROM '$aws/events/jobExecution/#'",
} as const;
/** Prefix of every job (and >100-thing target group) the controller creates (core/ota.ts rolloutJobId). */
export const ROLLOUT_JOB_PREFIX = 'ota-';

export interface RolloutControllerProps {
  readonly table: RolloutTable;
  readonly registry: RegistryTables;
  readonly ota: FleetOta;
  /** Prefix of the thing names jobs may target (`<prefix>-<serial>`). */
  readonly thingNamePrefix: string;
  /** Time between two scheduled passes. @default Duration.minutes(1) */
  readonly interval?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the dead-letter queue and log groups. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The rollout controller and API: the controller function runs a pass on a schedule and on the
 * account's job and job-execution events (two topic rules, each with an error action to the
 * dead-letter queue); the API function serves the console and CI. Least privilege: jobs and
 * target groups named `ota-*`, the fleet's things, this stack's job templates and package.
 */
export class RolloutController extends Construct {
  public readonly controller: FleetFunction;
  public readonly api: FleetFunction;
  public readonly schedule: events.Rule;
  public readonly jobEventRules: Readonly<Record<keyof typeof JOB_EVENT_SQL, iot.CfnTopicRule>>;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly ruleRole: iam.Role;

  constructor(scope: Construct, id: string, props: RolloutControllerProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const iotArn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'iot', resource, resourceName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    const jobs = iotArn('job', `${ROLLOUT_JOB_PREFIX}*`);
    const groups = iotArn('thinggroup', `${ROLLOUT_JOB_PREFIX}*`);
    const things = iotArn('thing', `${props.thingNamePrefix}-*`);
    const versions = props.ota.packageVersionsArn();
    const templateArns = props.ota.templateArns();
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });

    const common = {
      [ENV.rolloutsTable]: props.table.table.tableName,
      [ENV.firmwarePackage]: props.ota.package.packageName,
    };
    this.controller = new FleetFunction(this, 'Controller', {
      entry: ROLLOUT_CONTROLLER_ENTRY,
      serviceName: 'rollout-controller',
      description: 'Staged OTA controller: observe jobs, step each rollout, act, record',
      timeout: Duration.seconds(50),
      memorySize: 512,
      deadLetterQueue: this.deadLetterQueue,
      logRetention: props.logRetention,
      logRemovalPolicy: removalPolicy,
      environment: {
        ...common,
        [ENV.devicesTable]: props.registry.devices.tableName,
        [ENV.lotsTable]: props.registry.lots.tableName,
        [ENV.eventsTable]: props.registry.events.tableName,
        [ENV.jobTemplateArns]: stack.toJsonString(templateArns),
        [ENV.iotArnPrefix]: `arn:${stack.partition}:iot:${stack.region}:${stack.account}:`,
      },
    });
    this.api = new FleetFunction(this, 'Api', {
      entry: ROLLOUT_API_ENTRY,
      serviceName: 'rollout-api',
      description: 'Staged OTA API: start, status, pause, resume, approve, abort, list',
      timeout: Duration.seconds(20),
      memorySize: 512,
      logRetention: props.logRetention,
      logRemovalPolicy: removalPolicy,
      environment: common,
    });

    // Controller: its table, the registry reads and trail appends, the Jobs calls.
    props.table.grantControl(this.controller);
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['dynamodb:Scan', 'dynamodb:BatchGetItem'],
      resourceArns: [props.registry.devices.tableArn],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['dynamodb:BatchGetItem'],
      resourceArns: [props.registry.lots.tableArn],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['dynamodb:PutItem'],
      resourceArns: [props.registry.events.tableArn],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['iot:CreateJob'],
      resourceArns: [jobs, groups, things, versions, ...Object.values(templateArns)],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['iot:DescribeJob', 'iot:ListJobExecutionsForJob', 'iot:CancelJob'],
      resourceArns: [jobs],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['iot:CreateThingGroup', 'iot:DescribeThingGroup', 'iot:AddThingToThingGroup'],
      resourceArns: [groups, things],
    });
    iam.Grant.addToPrincipal({
      grantee: this.controller,
      actions: ['iot:GetPackageVersion'],
      resourceArns: [versions],
    });
    props.ota.jobTemplates.grantPassPresignedUrlRole(this.controller);
    // API: its table and the release lookup.
    props.table.grantApi(this.api);
    iam.Grant.addToPrincipal({
      grantee: this.api,
      actions: ['iot:GetPackageVersion'],
      resourceArns: [versions],
    });

    const reasons: [string, string][] = [
      [
        jobs,
        'The controller creates, describes and cancels only jobs named ota-<release>-<rollout>-<stage>.',
      ],
      [groups, 'Stages of more than 100 things target a static group named after the job id (ota-*).'],
      [things, "Jobs target only the fleet's things (<prefix>-<serial>)."],
      [versions, "Releases are versions of this stack's firmware package; the grant is its versions only."],
    ];
    for (const [arn, reason] of reasons)
      acknowledgeWildcardResource(this.controller.executionRole, arn, reason);
    acknowledgeWildcardResource(this.api.executionRole, versions, reasons[3][1]);

    this.schedule = new events.Rule(this, 'Schedule', {
      description: 'One rollout controller pass per interval',
      schedule: events.Schedule.rate(props.interval ?? Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.controller, { retryAttempts: 0 })],
    });

    this.ruleRole = new iam.Role(this, 'RuleErrorActionRole', {
      description: 'Lets the job event rules send undeliverable events to the dead-letter queue',
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    });
    this.deadLetterQueue.grantSendMessages(this.ruleRole);

    const rule = (key: keyof typeof JOB_EVENT_SQL, description: string) => {
      const r = new iot.CfnTopicRule(this, `${key === 'job' ? 'Job' : 'JobExecution'}EventsRule`, {
        topicRulePayload: {
          description,
          sql: JOB_EVENT_SQL[key],
          awsIotSqlVersion: '2016-03-23',
          ruleDisabled: false,
          actions: [{ lambda: { functionArn: this.controller.functionArn } }],
          errorAction: {
            sqs: {
              queueUrl: this.deadLetterQueue.queueUrl,
              roleArn: this.ruleRole.roleArn,
              useBase64: false,
            },
          },
        },
      });
      r.node.addDependency(this.ruleRole);
      new lambda.CfnPermission(this, `${key === 'job' ? 'Job' : 'JobExecution'}EventsInvoke`, {
        action: 'lambda:InvokeFunction',
        functionName: this.controller.functionArn,
        principal: 'iot.amazonaws.com',
        sourceArn: r.attrArn,
        sourceAccount: stack.account,
      });
      return r;
    };
    this.jobEventRules = {
      job: rule('job', 'Job events: the rollout controller looks at once'),
      jobExecution: rule('jobExecution', 'Job execution events: the rollout controller looks at once'),
    };
  }
}
