/**
 * AWS::Lambda::Function → the Lambda runner (bundled asset from cdk.out, unchanged);
 * AWS::Lambda::Version and AWS::Lambda::Alias → qualifiers of that function (their ARNs invoke
 * it; provisioned concurrency is accepted, not emulated);
 * AWS::Lambda::Permission → recorded on the function, version or alias it names, so an invoke
 * by a service principal (rule actions, the pre-provisioning hook) is refused without one, as
 * in AWS.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arn, type HandlerContext, type NamingContext, type ResourceHandler } from './types';

/**
 * The version number the lab gives a published version. The lab runs the code of cdk.out, which
 * is what a version published by this deployment holds; every AWS::Lambda::Version is its
 * function's version 1.
 */
export const LAB_VERSION_NUMBER = '1';

/** Unqualified function ARN of a FunctionName value (name, ARN, partial ARN, or qualified). */
export function functionArnOf(value: unknown, c: NamingContext): string {
  const text = String(value);
  const full = /^(arn:[^:]+:lambda:[^:]+:[^:]+:function:[^:]+)/.exec(text);
  if (full) return full[1];
  const partial = /(?:^|:)function:([^:]+)/.exec(text);
  return arn('lambda', c, `function:${partial ? partial[1] : text.split(':')[0]}`);
}

/** Summary note for a ProvisionedConcurrencyConfig: accepted, not emulated. */
function provisionedConcurrencyNote(properties: Record<string, unknown>): string {
  const pc = properties.ProvisionedConcurrencyConfig as
    { ProvisionedConcurrentExecutions?: unknown } | undefined;
  if (pc?.ProvisionedConcurrentExecutions === undefined) return '';
  return `; provisioned concurrency ${String(pc.ProvisionedConcurrentExecutions)} accepted, not emulated (cold starts and timing as on demand)`;
}

function codeDir(ctx: HandlerContext): string {
  const code = (ctx.properties.Code ?? {}) as Record<string, unknown>;
  if (typeof code.ZipFile === 'string') {
    const dir = join(ctx.labDir, 'inline', ctx.physicalName);
    mkdirSync(dir, { recursive: true });
    const runtime = String(ctx.properties.Runtime ?? '');
    writeFileSync(join(dir, runtime.startsWith('nodejs') ? 'index.js' : 'index.txt'), code.ZipFile);
    return dir;
  }
  if (typeof code.S3Key === 'string') {
    const asset = ctx.assembly.assetForS3Key(code.S3Key);
    if (!asset)
      throw new Error(
        `function ${ctx.logicalId}: asset for S3 key ${code.S3Key} not found in ${ctx.assembly.dir}`,
      );
    if (!statSync(asset.path).isDirectory()) {
      throw new Error(
        `function ${ctx.logicalId}: asset ${asset.path} is a packaged file; the lab runs directory assets (NodejsFunction / Code.fromAsset(dir))`,
      );
    }
    return asset.path;
  }
  throw new Error(
    `function ${ctx.logicalId}: Code must be ZipFile or an S3 asset of this assembly (found ${Object.keys(code).join(', ')})`,
  );
}

export const lambdaFunctionHandler: ResourceHandler = {
  types: ['AWS::Lambda::Function'],
  phase: 30,
  nameProperty: 'FunctionName',
  maxNameLength: 64,
  attributes: (name, c) => ({ Arn: arn('lambda', c, `function:${name}`) }),
  create(ctx) {
    const p = ctx.properties;
    const runtime = String(p.Runtime ?? '');
    if (p.PackageType === 'Image' || !runtime.startsWith('nodejs')) {
      return {
        status: 'unsupported',
        detail: `runtime ${runtime || p.PackageType}: the lab runs Node.js functions only`,
      };
    }
    const env = ((p.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ??
      {}) as Record<string, unknown>;
    const spec = {
      logicalId: ctx.logicalId,
      functionName: ctx.physicalName,
      functionArn: arn('lambda', ctx, `function:${ctx.physicalName}`),
      codeDir: codeDir(ctx),
      handler: String(p.Handler ?? 'index.handler'),
      runtime,
      timeoutSec: typeof p.Timeout === 'number' ? p.Timeout : 3,
      memoryMb: typeof p.MemorySize === 'number' ? p.MemorySize : 128,
      environment: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
    };
    ctx.runner.register(spec);
    return {
      status: 'created',
      detail: `${runtime}, ${spec.timeoutSec}s, ${spec.memoryMb} MB, ${spec.handler}`,
    };
  },
};

export const lambdaVersionHandler: ResourceHandler = {
  types: ['AWS::Lambda::Version'],
  phase: 31, // after functions, before aliases
  ref: (_name, c, _p, resolved) => `${functionArnOf(resolved('FunctionName'), c)}:${LAB_VERSION_NUMBER}`,
  attributes: (_name, c, _p, resolved) => ({
    FunctionArn: `${functionArnOf(resolved('FunctionName'), c)}:${LAB_VERSION_NUMBER}`,
    Version: LAB_VERSION_NUMBER,
  }),
  create(ctx) {
    const fn = String(ctx.properties.FunctionName);
    const qualified = ctx.runner.addQualifier(fn, LAB_VERSION_NUMBER);
    if (!qualified)
      throw new Error(`version ${ctx.logicalId}: function ${fn} is not a function of the stack`);
    return {
      status: 'created',
      detail: `${qualified}${provisionedConcurrencyNote(ctx.properties)}`,
    };
  },
};

export const lambdaAliasHandler: ResourceHandler = {
  types: ['AWS::Lambda::Alias'],
  phase: 32, // after versions, before permissions and provisioning templates
  ref: (_name, c, _p, resolved) =>
    `${functionArnOf(resolved('FunctionName'), c)}:${String(resolved('Name'))}`,
  attributes: (_name, c, _p, resolved) => ({
    AliasArn: `${functionArnOf(resolved('FunctionName'), c)}:${String(resolved('Name'))}`,
  }),
  create(ctx) {
    const p = ctx.properties;
    const fn = String(p.FunctionName);
    const version = String(p.FunctionVersion ?? '$LATEST');
    const functionArn = ctx.runner.resolve(fn);
    if (!functionArn)
      throw new Error(`alias ${ctx.logicalId}: function ${fn} is not a function of the stack`);
    if (!ctx.runner.resolveQualified(`${functionArn}:${version}`))
      throw new Error(
        `alias ${ctx.logicalId}: version ${version} of ${functionArn} is not declared by the stack (add the AWS::Lambda::Version)`,
      );
    const qualified = ctx.runner.addQualifier(functionArn, String(p.Name)) as string;
    const weights = (p.RoutingConfig as { AdditionalVersionWeights?: unknown[] } | undefined)
      ?.AdditionalVersionWeights;
    return {
      status: 'created',
      detail:
        `${qualified} → version ${version}` +
        (weights?.length ? '; routing weights not emulated (every version runs the code of cdk.out)' : '') +
        provisionedConcurrencyNote(p),
    };
  },
};

export const lambdaPermissionHandler: ResourceHandler = {
  types: ['AWS::Lambda::Permission'],
  phase: 40,
  create(ctx) {
    const p = ctx.properties;
    // A permission on a version or alias applies to invocations through that qualifier only.
    const fn = ctx.runner.resolveQualified(String(p.FunctionName))?.qualifiedArn;
    ctx.permissions.push({
      logicalId: ctx.logicalId,
      functionArn: fn ?? String(p.FunctionName),
      action: String(p.Action),
      principal: String(p.Principal),
      sourceArn: typeof p.SourceArn === 'string' ? p.SourceArn : undefined,
      sourceAccount: typeof p.SourceAccount === 'string' ? p.SourceAccount : undefined,
    });
    return { status: 'acknowledged', detail: `${p.Principal} → ${fn ?? p.FunctionName}` };
  },
};

function wildcard(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(value);
}

/**
 * Why `principal` may not invoke `functionArn` from `sourceArn`, or undefined when it may.
 * `functionArn` is what the caller invokes: the unqualified function, or a version or alias
 * (`LambdaRunner.resolveQualified(...).qualifiedArn`); a permission counts for that ARN only.
 */
export function checkInvokePermission(
  permissions: readonly {
    functionArn: string;
    action: string;
    principal: string;
    sourceArn?: string;
    sourceAccount?: string;
  }[],
  functionArn: string,
  principal: string,
  sourceArn: string,
  sourceAccount: string,
): string | undefined {
  const ok = permissions.some(
    (p) =>
      p.functionArn === functionArn &&
      (p.action === 'lambda:InvokeFunction' || p.action === 'lambda:*') &&
      p.principal === principal &&
      (!p.sourceArn || wildcard(p.sourceArn, sourceArn)) &&
      (!p.sourceAccount || p.sourceAccount === sourceAccount),
  );
  return ok
    ? undefined
    : `AccessDeniedException: ${principal} is not authorized to invoke ${functionArn} from ${sourceArn} (no matching AWS::Lambda::Permission)`;
}
