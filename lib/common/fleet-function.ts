import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../../core/metrics';

/** Repository root (holds package.json and package-lock.json). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** CloudWatch metrics namespace shared by every fleet function (Powertools Metrics). */
export { METRICS_NAMESPACE };

/** Largest minified `index.js` a function may ship (bytes); a test holds every handler to it. */
export const MAX_BUNDLE_BYTES = 300 * 1024;

/**
 * The esbuild options of every function bundle, in esbuild's own terms, so the tests and the
 * benchmarks build exactly what the construct deploys (see docs/performance.md, "Lambda bundles"):
 *
 * - `mainFields: ['module', 'main']`: the AWS SDK v3 packages ship ES modules under `module`;
 *   only those tree-shake (Node's default order, `main` first, takes the CommonJS builds whole).
 * - `alias` of `@aws-sdk/credential-provider-node`: the SDK's default credential chain (SSO, ini
 *   files, processes, web identity, instance metadata, and the STS/SSO clients behind them) is
 *   replaced by the chain a function uses, environment then container credentials
 *   (lambda/shared/lambda-credentials.ts). The SDK itself stays inside the bundle.
 * - `sourcemap` without `sourcesContent`: stack traces map to file:line (with
 *   NODE_OPTIONS=--enable-source-maps) without shipping the sources in the map.
 * - `supported: { 'dynamic-import': false }`: the SDK's ES modules load some Node built-ins
 *   lazily with `import()`; in a CommonJS bundle these become `require()`, which every loader
 *   runs (Lambda, the lab's worker threads, and test runners that have no dynamic-import hook).
 * - nothing external: the asset is self-contained, so it does not depend on the SDK version of
 *   the Lambda runtime, and the local lab runs the very same file.
 */
export const LAMBDA_ESBUILD_OPTIONS = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  mainFields: ['module', 'main'],
  sourcemap: true,
  sourcesContent: false,
  supported: { 'dynamic-import': false } as Record<string, boolean>,
  external: [] as string[],
  alias: {
    '@aws-sdk/credential-provider-node': path.join(REPO_ROOT, 'lambda', 'shared', 'lambda-credentials.ts'),
  } as Record<string, string>,
} as const;

export interface FleetFunctionProps {
  /** Handler source file, relative to the repository root (e.g. `lambda/provisioning/x.handler.ts`). */
  readonly entry: string;
  /** Exported handler name. @default 'handler' */
  readonly handler?: string;
  /** Powertools service name (`POWERTOOLS_SERVICE_NAME`) and function description prefix. */
  readonly serviceName: string;
  /** Human-readable description. @default - the service name */
  readonly description?: string;
  /** Function timeout. @default Duration.seconds(10) */
  readonly timeout?: Duration;
  /** Memory in MB. @default 512 */
  readonly memorySize?: number;
  /** Extra environment variables (names from core/env.ts). @default - none */
  readonly environment?: Record<string, string>;
  /** Reserved concurrency. @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
  /** Dead-letter queue for failed asynchronous invocations. @default - none */
  readonly deadLetterQueue?: sqs.IQueue;
  /** Log group retention. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the log group. @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The house Lambda function: Node.js 22 on arm64, X-Ray active tracing, an explicit log group
 * with retention, Powertools environment, and a self-contained bundle built with the local
 * esbuild (no Docker) with {@link LAMBDA_ESBUILD_OPTIONS}. The AWS SDK v3 is bundled into the
 * asset on purpose: the local lab runs the very same asset on plain Node 20, where no SDK is
 * provided.
 */
export class FleetFunction extends NodejsFunction {
  /** The function's log group (explicit, with retention). */
  public readonly logGroupResource: logs.LogGroup;
  /** The execution role (grants attach here). */
  public readonly executionRole: iam.Role;

  constructor(scope: Construct, id: string, props: FleetFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    // Own role instead of the AWSLambdaBasicExecutionRole managed policy: write access to this
    // function's log group only.
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${props.serviceName}`,
    });
    logGroup.grantWrite(role);
    super(scope, id, {
      role,
      entry: path.join(REPO_ROOT, props.entry),
      handler: props.handler ?? 'handler',
      description: props.description ?? props.serviceName,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      timeout: props.timeout ?? Duration.seconds(10),
      memorySize: props.memorySize ?? 512,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      deadLetterQueue: props.deadLetterQueue,
      logGroup,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        externalModules: LAMBDA_ESBUILD_OPTIONS.external,
        target: LAMBDA_ESBUILD_OPTIONS.target,
        format: OutputFormat.CJS,
        minify: LAMBDA_ESBUILD_OPTIONS.minify,
        mainFields: [...LAMBDA_ESBUILD_OPTIONS.mainFields],
        sourceMap: LAMBDA_ESBUILD_OPTIONS.sourcemap,
        sourcesContent: LAMBDA_ESBUILD_OPTIONS.sourcesContent,
        esbuildArgs: {
          ...Object.fromEntries(
            Object.entries(LAMBDA_ESBUILD_OPTIONS.alias).map(([from, to]) => [`--alias:${from}`, to]),
          ),
          ...Object.fromEntries(
            Object.entries(LAMBDA_ESBUILD_OPTIONS.supported).map(([feature, on]) => [
              `--supported:${feature}`,
              String(on),
            ]),
          ),
        },
      },
    });
    this.logGroupResource = logGroup;
    this.executionRole = role;

    Validations.of(this).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to NODEJS_22_X on purpose: the bundle targets node20 so the local lab runs the same asset; ' +
        'move to a newer runtime together with the lab toolchain.',
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions; ' +
        'a construct test asserts these are the only statements with a wildcard resource.',
    });
  }
}
