/**
 * CloudFormation intrinsic functions resolved against the names the lab assigns.
 *
 * Pure: everything the resolver needs from the outside world comes through
 * {@link IntrinsicContext} (the lab's physical ids and attributes, parameters, pseudo
 * parameters, conditions). Supported: Ref, Fn::GetAtt (both forms), Fn::Join, Fn::Sub (string
 * and [string, vars] forms, `${!Literal}` escapes), Fn::Select, Fn::Split, Fn::If, Fn::Equals,
 * Fn::And, Fn::Or, Fn::Not, Fn::Condition, Fn::Base64, Fn::GetAZs, Fn::ImportValue (fails),
 * and AWS::NoValue.
 *
 * `${...}` placeholders in Fn::Sub whose name is neither a parameter, a pseudo parameter nor a
 * resource (for example the IoT policy variable `${iot:Connection.Thing.ThingName}`) are left
 * intact, because they are not CloudFormation references. CDK emits IoT policy variables as
 * plain text inside Fn::Join parts, which are never interpreted.
 */

export interface IntrinsicContext {
  region: string;
  accountId: string;
  partition?: string;
  urlSuffix?: string;
  stackName: string;
  stackId?: string;
  /** Parameter values (defaults already applied). */
  parameters: Record<string, unknown>;
  /** Ref of a resource (physical id), or undefined when the logical id is unknown. */
  ref(logicalId: string): unknown;
  /** Fn::GetAtt of a resource, or undefined when the attribute is unknown. */
  getAtt(logicalId: string, attribute: string): unknown;
  /** Condition definitions of the template (`Conditions` section). */
  conditions?: Record<string, unknown>;
}

/** Raised for an intrinsic the lab cannot resolve; the message names the path inside the template. */
export class IntrinsicError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} (at ${path || '<root>'})`);
  }
}

/** Marker returned for `Ref: AWS::NoValue`; removed from objects and arrays. */
export const NO_VALUE = Symbol('AWS::NoValue');

type Json = unknown;

export function pseudoParameter(ctx: IntrinsicContext, name: string): unknown {
  switch (name) {
    case 'AWS::Region':
      return ctx.region;
    case 'AWS::AccountId':
      return ctx.accountId;
    case 'AWS::Partition':
      return ctx.partition ?? 'aws';
    case 'AWS::URLSuffix':
      return ctx.urlSuffix ?? 'amazonaws.com';
    case 'AWS::StackName':
      return ctx.stackName;
    case 'AWS::StackId':
      return (
        ctx.stackId ??
        `arn:${ctx.partition ?? 'aws'}:cloudformation:${ctx.region}:${ctx.accountId}:stack/${ctx.stackName}/00000000-0000-4000-8000-000000000000`
      );
    case 'AWS::NotificationARNs':
      return [];
    case 'AWS::NoValue':
      return NO_VALUE;
    default:
      return undefined;
  }
}

function refOf(ctx: IntrinsicContext, name: string, path: string): unknown {
  if (name.startsWith('AWS::')) {
    const v = pseudoParameter(ctx, name);
    if (v === undefined) throw new IntrinsicError(`unknown pseudo parameter ${name}`, path);
    return v;
  }
  if (Object.prototype.hasOwnProperty.call(ctx.parameters, name)) return ctx.parameters[name];
  const v = ctx.ref(name);
  if (v === undefined) throw new IntrinsicError(`Ref to unknown parameter or resource ${name}`, path);
  return v;
}

function getAttOf(ctx: IntrinsicContext, logicalId: string, attr: string, path: string): unknown {
  const v = ctx.getAtt(logicalId, attr);
  if (v === undefined)
    throw new IntrinsicError(`Fn::GetAtt ${logicalId}.${attr} is not known to the lab`, path);
  return v;
}

/** Evaluate a condition by name (memo-free; templates have few conditions). */
export function evaluateCondition(ctx: IntrinsicContext, name: string, path = `Conditions.${name}`): boolean {
  const def = ctx.conditions?.[name];
  if (def === undefined) throw new IntrinsicError(`unknown condition ${name}`, path);
  const v = resolve(def, ctx, path);
  if (typeof v !== 'boolean')
    throw new IntrinsicError(`condition ${name} did not evaluate to a boolean`, path);
  return v;
}

const SUB_PATTERN = /\$\{([^}]*)\}/g;

function substitute(
  ctx: IntrinsicContext,
  text: string,
  vars: Record<string, unknown>,
  path: string,
): string {
  return text.replace(SUB_PATTERN, (whole, inner: string) => {
    if (inner.startsWith('!')) return `\${${inner.slice(1)}}`; // ${!Literal} → ${Literal}
    const name = inner.trim();
    if (Object.prototype.hasOwnProperty.call(vars, name)) return stringify(vars[name], path);
    if (name.startsWith('AWS::')) {
      const v = pseudoParameter(ctx, name);
      if (v === undefined) throw new IntrinsicError(`unknown pseudo parameter ${name} in Fn::Sub`, path);
      return stringify(v, path);
    }
    if (Object.prototype.hasOwnProperty.call(ctx.parameters, name))
      return stringify(ctx.parameters[name], path);
    const dot = name.indexOf('.');
    if (dot > 0) {
      const v = ctx.getAtt(name.slice(0, dot), name.slice(dot + 1));
      if (v !== undefined) return stringify(v, path);
    } else {
      const v = ctx.ref(name);
      if (v !== undefined) return stringify(v, path);
    }
    // Not a CloudFormation reference (e.g. an IoT policy variable such as ${iot:ClientId}).
    return whole;
  });
}

function stringify(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map((x) => stringify(x, path)).join(',');
  throw new IntrinsicError(`cannot use ${typeof v} value in a string context`, path);
}

function expectArray(v: unknown, fn: string, path: string, length?: number): unknown[] {
  if (!Array.isArray(v) || (length !== undefined && v.length !== length)) {
    throw new IntrinsicError(`${fn} expects an array${length ? ` of ${length}` : ''}`, path);
  }
  return v;
}

/**
 * Resolve every intrinsic inside `value`. Objects with exactly one key that is an intrinsic
 * name are evaluated; everything else is copied recursively. `AWS::NoValue` removes the key.
 */
export function resolve(value: Json, ctx: IntrinsicContext, path = ''): Json {
  if (Array.isArray(value)) {
    return value.map((v, i) => resolve(v, ctx, `${path}[${i}]`)).filter((v) => v !== NO_VALUE);
  }
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1) {
    const key = keys[0];
    const arg = obj[key];
    const p = path ? `${path}.${key}` : key;
    switch (key) {
      case 'Ref':
        return refOf(ctx, String(arg), p);
      case 'Fn::GetAtt': {
        let logicalId: string;
        let attr: string;
        if (typeof arg === 'string') {
          const dot = arg.indexOf('.');
          logicalId = arg.slice(0, dot);
          attr = arg.slice(dot + 1);
        } else {
          const a = expectArray(arg, key, p, 2);
          logicalId = String(a[0]);
          attr = String(resolve(a[1], ctx, p));
        }
        return getAttOf(ctx, logicalId, attr, p);
      }
      case 'Fn::Join': {
        const [sep, parts] = expectArray(arg, key, p, 2);
        const list = expectArray(resolve(parts, ctx, p), key, p);
        return list.map((x) => stringify(x, p)).join(String(sep));
      }
      case 'Fn::Sub': {
        if (typeof arg === 'string') return substitute(ctx, arg, {}, p);
        const [text, vars] = expectArray(arg, key, p, 2);
        const resolvedVars = resolve(vars ?? {}, ctx, p) as Record<string, unknown>;
        return substitute(ctx, String(text), resolvedVars, p);
      }
      case 'Fn::Select': {
        const [index, list] = expectArray(arg, key, p, 2);
        const i = Number(resolve(index, ctx, p));
        const l = expectArray(resolve(list, ctx, p), key, p);
        if (!Number.isInteger(i) || i < 0 || i >= l.length)
          throw new IntrinsicError(`Fn::Select index ${i} out of range`, p);
        return l[i];
      }
      case 'Fn::Split': {
        const [sep, text] = expectArray(arg, key, p, 2);
        return stringify(resolve(text, ctx, p), p).split(String(sep));
      }
      case 'Fn::If': {
        const [cond, whenTrue, whenFalse] = expectArray(arg, key, p, 3);
        return evaluateCondition(ctx, String(cond)) ? resolve(whenTrue, ctx, p) : resolve(whenFalse, ctx, p);
      }
      case 'Fn::Equals': {
        const [a, b] = expectArray(arg, key, p, 2);
        return JSON.stringify(resolve(a, ctx, p)) === JSON.stringify(resolve(b, ctx, p));
      }
      case 'Fn::And':
        return expectArray(arg, key, p).every((c) => resolve(c, ctx, p) === true);
      case 'Fn::Or':
        return expectArray(arg, key, p).some((c) => resolve(c, ctx, p) === true);
      case 'Fn::Not':
        return resolve(expectArray(arg, key, p, 1)[0], ctx, p) !== true;
      case 'Condition':
        return evaluateCondition(ctx, String(arg));
      case 'Fn::Base64':
        return Buffer.from(stringify(resolve(arg, ctx, p), p)).toString('base64');
      case 'Fn::GetAZs':
        return ['a', 'b', 'c'].map((z) => `${ctx.region}${z}`);
      case 'Fn::ImportValue':
        throw new IntrinsicError('Fn::ImportValue (cross-stack export) is not supported by the lab', p);
      case 'Fn::FindInMap':
      case 'Fn::Cidr':
      case 'Fn::Transform':
      case 'Fn::Length':
      case 'Fn::ToJsonString':
        throw new IntrinsicError(`${key} is not supported by the lab`, p);
      default:
        break;
    }
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = resolve(obj[k], ctx, path ? `${path}.${k}` : k);
    if (v !== NO_VALUE) out[k] = v;
  }
  return out;
}

/** Parameter values from a template's `Parameters` section: overrides, then defaults. */
export function parameterValues(
  parameters: Record<string, { Default?: unknown; Type?: string }> | undefined,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(parameters ?? {})) {
    if (Object.prototype.hasOwnProperty.call(overrides, name)) out[name] = overrides[name];
    else if (def.Default !== undefined) {
      // SSM parameter types resolve to their value in AWS; the lab has no SSM, so it takes the
      // well-known CDK bootstrap version (any number passes the bootstrap version rule).
      out[name] = def.Type?.startsWith('AWS::SSM::Parameter::Value') ? '30' : def.Default;
    }
  }
  return out;
}
