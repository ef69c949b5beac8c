/**
 * Fleet provisioning template evaluation, as a pure function (AWS IoT Developer Guide,
 * "Provisioning templates"): resolves Parameters (with Default), the documented intrinsic
 * functions `Ref`, `Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, and
 * returns what the provisioning engine must apply. It performs no registry change.
 *
 * Anything outside the documented set (`Fn::If`, `Fn::GetAtt`, Conditions, other resource
 * types) raises a {@link TemplateError} naming it, which the provisioning API turns into a
 * rejected response.
 */

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

export type OverrideAction = 'DO_NOTHING' | 'REPLACE' | 'FAIL' | 'MERGE';

export interface ThingResource {
  logicalId: string;
  thingName: string;
  thingTypeName?: string;
  attributes?: Record<string, string>;
  thingGroups?: string[];
  billingGroup?: string;
  overrideSettings: {
    AttributePayload?: OverrideAction;
    ThingTypeName?: OverrideAction;
    ThingGroups?: OverrideAction;
  };
}

export interface CertificateResource {
  logicalId: string;
  certificateId: string;
  status?: 'ACTIVE' | 'INACTIVE';
  overrideSettings: { Status?: OverrideAction };
}

export interface PolicyResource {
  logicalId: string;
  policyName?: string;
  policyDocument?: string;
}

export interface TemplateEvaluation {
  parameters: Record<string, string>;
  thing?: ThingResource;
  certificate?: CertificateResource;
  policies: PolicyResource[];
  deviceConfiguration: Record<string, string>;
}

export interface EvaluateOptions {
  /** Pseudo parameters / certificate parameters, e.g. `AWS::IoT::Certificate::Id`. */
  builtins?: Record<string, string>;
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const SUPPORTED = new Set(['Ref', 'Fn::Join', 'Fn::Sub', 'Fn::Select', 'Fn::Split', 'Fn::FindInMap']);

interface Ctx {
  params: Record<string, string>;
  mappings: Record<string, Record<string, Record<string, Json>>>;
}

function evalNode(node: Json, ctx: Ctx, where: string): Json {
  if (Array.isArray(node)) return node.map((n, i) => evalNode(n, ctx, `${where}[${i}]`));
  if (node === null || typeof node !== 'object') return node;
  const keys = Object.keys(node);
  if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
    const fn = keys[0];
    if (!SUPPORTED.has(fn)) {
      throw new TemplateError(
        `Unsupported intrinsic function ${fn} at ${where}; provisioning templates support ${[...SUPPORTED].join(', ')}`,
      );
    }
    return evalIntrinsic(fn, node[fn], ctx, where);
  }
  const out: Record<string, Json> = {};
  for (const k of keys) out[k] = evalNode(node[k], ctx, `${where}.${k}`);
  return out;
}

function asString(v: Json, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new TemplateError(`Expected a string at ${where}, got ${JSON.stringify(v)}`);
}

function asArray(v: Json, where: string): Json[] {
  if (!Array.isArray(v)) throw new TemplateError(`Expected a list at ${where}`);
  return v;
}

function ref(name: string, ctx: Ctx, where: string): string {
  if (!(name in ctx.params)) throw new TemplateError(`Ref to undefined parameter ${name} at ${where}`);
  return ctx.params[name];
}

function evalIntrinsic(fn: string, arg: Json, ctx: Ctx, where: string): Json {
  const at = `${where}.${fn}`;
  switch (fn) {
    case 'Ref':
      return ref(asString(arg, at), ctx, at);
    case 'Fn::Join': {
      const [delim, list] = asArray(arg, at);
      const items = asArray(evalNode(list, ctx, at), at);
      return items.map((x, i) => asString(x, `${at}[${i}]`)).join(asString(delim, at));
    }
    case 'Fn::Select': {
      const [index, list] = asArray(arg, at);
      const i = Number(asString(evalNode(index, ctx, at), at));
      const items = asArray(evalNode(list, ctx, at), at);
      if (!Number.isInteger(i) || i < 0 || i >= items.length) {
        throw new TemplateError(`Fn::Select index ${i} out of range at ${where}`);
      }
      const v = items[i];
      if (v === null || v === undefined)
        throw new TemplateError(`Fn::Select selected a null value at ${where}`);
      return v;
    }
    case 'Fn::Split': {
      const [delim, source] = asArray(arg, at);
      return asString(evalNode(source, ctx, at), at).split(asString(delim, at));
    }
    case 'Fn::FindInMap': {
      const [m, k1, k2] = asArray(arg, at).map((x) => asString(evalNode(x, ctx, at), at));
      const v = ctx.mappings[m]?.[k1]?.[k2];
      if (v === undefined)
        throw new TemplateError(`Fn::FindInMap: no value for [${m}, ${k1}, ${k2}] at ${where}`);
      return v;
    }
    case 'Fn::Sub': {
      let text: string;
      let vars: Record<string, string> = {};
      if (Array.isArray(arg)) {
        text = asString(arg[0], at);
        const map = evalNode(arg[1] ?? {}, ctx, at);
        if (!map || typeof map !== 'object' || Array.isArray(map))
          throw new TemplateError(`Fn::Sub variables must be a map at ${at}`);
        vars = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, asString(v, `${at}.${k}`)]));
      } else {
        text = asString(arg, at);
      }
      return text.replace(/\$\{([^}]*)\}/g, (_whole, name: string) => {
        if (name.startsWith('!')) return `\${${name.slice(1)}}`;
        if (name in vars) return vars[name];
        return ref(name, ctx, at);
      });
    }
  }
  throw new TemplateError(`Unsupported intrinsic function ${fn}`);
}

function stringMap(v: Json | undefined, where: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new TemplateError(`Expected a map at ${where}`);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asString(x, `${where}.${k}`)]));
}

function overrideMap<T extends string>(
  v: unknown,
  allowed: Record<T, OverrideAction[]>,
  where: string,
): Partial<Record<T, OverrideAction>> {
  if (v === undefined) return {};
  if (!v || typeof v !== 'object') throw new TemplateError(`OverrideSettings must be a map at ${where}`);
  const out: Partial<Record<T, OverrideAction>> = {};
  for (const [k, a] of Object.entries(v as Record<string, unknown>)) {
    if (!(k in allowed)) throw new TemplateError(`OverrideSettings.${k} is not supported at ${where}`);
    const ok = allowed[k as T];
    if (typeof a !== 'string' || !ok.includes(a as OverrideAction)) {
      throw new TemplateError(`OverrideSettings.${k} must be one of ${ok.join(', ')} at ${where}`);
    }
    out[k as T] = a as OverrideAction;
  }
  return out;
}

export function evaluateTemplate(
  body: string | Record<string, unknown>,
  given: Record<string, string>,
  opts: EvaluateOptions = {},
): TemplateEvaluation {
  let tpl: Record<string, Json>;
  try {
    tpl = (typeof body === 'string' ? JSON.parse(body) : body) as Record<string, Json>;
  } catch {
    throw new TemplateError('Template body is not valid JSON');
  }
  if (!tpl || typeof tpl !== 'object') throw new TemplateError('Template body must be a JSON object');
  for (const section of Object.keys(tpl)) {
    if (
      ![
        'Parameters',
        'Resources',
        'Mappings',
        'DeviceConfiguration',
        'AWSTemplateFormatVersion',
        'Description',
      ].includes(section)
    ) {
      throw new TemplateError(`Unsupported template section ${section}`);
    }
  }

  // Parameters: declared ones take the given value, else Default, else fail.
  const params: Record<string, string> = { ...(opts.builtins ?? {}) };
  const declared = (tpl.Parameters ?? {}) as Record<string, { Type?: string; Default?: Json }>;
  for (const [name, decl] of Object.entries(declared)) {
    if (name in (opts.builtins ?? {}) && !(name in given)) continue;
    if (decl?.Type !== undefined && decl.Type !== 'String') {
      throw new TemplateError(`Parameter ${name} has unsupported Type ${String(decl.Type)} (only String)`);
    }
    if (name in given) params[name] = given[name];
    else if (decl?.Default !== undefined && decl.Default !== null) params[name] = String(decl.Default);
    else throw new TemplateError(`Missing value for parameter ${name}`);
  }

  const ctx: Ctx = { params, mappings: (tpl.Mappings ?? {}) as Ctx['mappings'] };
  const out: TemplateEvaluation = { parameters: params, policies: [], deviceConfiguration: {} };

  const resources = (tpl.Resources ?? {}) as Record<string, Record<string, Json>>;
  for (const [logicalId, res] of Object.entries(resources)) {
    const where = `Resources.${logicalId}`;
    const props = evalNode(res.Properties ?? {}, ctx, `${where}.Properties`) as Record<string, Json>;
    switch (res.Type) {
      case 'AWS::IoT::Thing': {
        if (out.thing) throw new TemplateError('Only one AWS::IoT::Thing resource is supported');
        const thingName =
          props.ThingName === undefined ? undefined : asString(props.ThingName, `${where}.ThingName`);
        if (!thingName) throw new TemplateError(`${where}: ThingName is required`);
        const groups =
          props.ThingGroups === undefined ? undefined : asArray(props.ThingGroups, `${where}.ThingGroups`);
        out.thing = {
          logicalId,
          thingName,
          thingTypeName:
            props.ThingTypeName === undefined
              ? undefined
              : asString(props.ThingTypeName, `${where}.ThingTypeName`),
          attributes: stringMap(props.AttributePayload, `${where}.AttributePayload`),
          thingGroups: groups?.map((g, i) => asString(g, `${where}.ThingGroups[${i}]`)),
          billingGroup:
            props.BillingGroup === undefined
              ? undefined
              : asString(props.BillingGroup, `${where}.BillingGroup`),
          overrideSettings: overrideMap(
            res.OverrideSettings,
            {
              AttributePayload: ['DO_NOTHING', 'REPLACE', 'FAIL', 'MERGE'],
              ThingTypeName: ['DO_NOTHING', 'REPLACE', 'FAIL'],
              ThingGroups: ['DO_NOTHING', 'REPLACE', 'FAIL', 'MERGE'],
            },
            where,
          ),
        };
        break;
      }
      case 'AWS::IoT::Certificate': {
        if (out.certificate) throw new TemplateError('Only one AWS::IoT::Certificate resource is supported');
        if (props.CertificateId === undefined) {
          throw new TemplateError(
            `${where}: only CertificateId can be used with a fleet provisioning template`,
          );
        }
        const status =
          props.Status === undefined ? undefined : asString(props.Status, `${where}.Status`).toUpperCase();
        if (status !== undefined && status !== 'ACTIVE' && status !== 'INACTIVE') {
          throw new TemplateError(`${where}: Status must be ACTIVE or INACTIVE`);
        }
        out.certificate = {
          logicalId,
          certificateId: asString(props.CertificateId, `${where}.CertificateId`),
          status: status as 'ACTIVE' | 'INACTIVE' | undefined,
          overrideSettings: overrideMap(
            res.OverrideSettings,
            { Status: ['DO_NOTHING', 'REPLACE', 'FAIL'] },
            where,
          ),
        };
        break;
      }
      case 'AWS::IoT::Policy': {
        const hasName = props.PolicyName !== undefined;
        const hasDoc = props.PolicyDocument !== undefined;
        if (hasName === hasDoc)
          throw new TemplateError(`${where}: exactly one of PolicyName or PolicyDocument is required`);
        out.policies.push({
          logicalId,
          policyName: hasName ? asString(props.PolicyName, `${where}.PolicyName`) : undefined,
          policyDocument: hasDoc
            ? typeof props.PolicyDocument === 'string'
              ? props.PolicyDocument
              : JSON.stringify(props.PolicyDocument)
            : undefined,
        });
        break;
      }
      default:
        throw new TemplateError(`${where}: unsupported resource type ${String(res.Type)}`);
    }
  }

  const dc = evalNode(tpl.DeviceConfiguration ?? {}, ctx, 'DeviceConfiguration');
  if (!dc || typeof dc !== 'object' || Array.isArray(dc))
    throw new TemplateError('DeviceConfiguration must be a map');
  for (const [k, v] of Object.entries(dc)) {
    if (v !== null && typeof v === 'object')
      throw new TemplateError(`DeviceConfiguration.${k}: nested objects are not supported`);
    out.deviceConfiguration[k] = asString(v, `DeviceConfiguration.${k}`);
  }
  return out;
}
