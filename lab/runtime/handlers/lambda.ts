/**
 * AWS::Lambda::Function → the Lambda runner (bundled asset from cdk.out, unchanged);
 * AWS::Lambda::Permission → recorded, so rule Lambda actions are refused without one, as in AWS.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arn, type HandlerContext, type ResourceHandler } from './types';

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

export const lambdaPermissionHandler: ResourceHandler = {
  types: ['AWS::Lambda::Permission'],
  phase: 40,
  create(ctx) {
    const p = ctx.properties;
    const fn = ctx.runner.resolve(String(p.FunctionName));
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

/** Why `principal` may not invoke `functionArn` from `sourceArn`, or undefined when it may. */
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
