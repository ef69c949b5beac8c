import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { resolveFleetConfig } from '../../../lib/config';
import { FleetStack } from '../../../lib/fleet-stack';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';

/** Synthesize the fleet stack (asset bundling skipped) for a config input. */
export function synthFleet(input: Record<string, unknown> = {}): { stack: FleetStack; template: Template } {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new FleetStack(app, 'TestFleet', { config: resolveFleetConfig(input) });
  return { stack, template: Template.fromStack(stack) };
}

type Json = unknown;

/** Synthesized CloudFormation is untyped JSON; tests navigate it freely and assert on shapes. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

export interface CfnResourceJson {
  Type?: string;
  Properties: Loose;
  DependsOn?: string[];
  [k: string]: Loose;
}

/**
 * Flatten a CloudFormation value into a string: pseudo parameters become fixed test values,
 * other `Ref`/`Fn::GetAtt` become `<Name>` / `<Name.Attr>`. `refs` substitutes named refs.
 */
export function flat(value: Json, refs: Record<string, string> = {}): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const o = value as Record<string, Json>;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, Json[]];
      return parts.map((p) => flat(p, refs)).join(sep);
    }
    if ('Ref' in o) {
      const name = o.Ref as string;
      if (name === 'AWS::Partition') return 'aws';
      if (name === 'AWS::Region') return REGION;
      if (name === 'AWS::AccountId') return ACCOUNT;
      if (name === 'AWS::URLSuffix') return 'amazonaws.com';
      return refs[name] ?? `<${name}>`;
    }
    if ('Fn::GetAtt' in o) {
      const [res, attr] = o['Fn::GetAtt'] as [string, string];
      return `<${res}.${attr}>`;
    }
  }
  return JSON.stringify(value);
}

export interface PolicyStatement {
  Effect: string;
  Action: string | string[];
  Resource: Json | Json[];
  Condition?: Record<string, Record<string, Json>>;
  Sid?: string;
}

export const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Resources of a given type: logicalId → resource. */
export function resourcesOf(template: Template, type: string): Record<string, CfnResourceJson> {
  return template.findResources(type) as Record<string, CfnResourceJson>;
}

/** The single resource of a type whose logical id contains `hint`. */
export function one(template: Template, type: string, hint = ''): [string, CfnResourceJson] {
  const found = Object.entries(resourcesOf(template, type)).filter(([id]) => id.includes(hint));
  if (found.length !== 1)
    throw new Error(`expected one ${type} matching "${hint}", found ${found.map(([id]) => id).join(', ')}`);
  return found[0];
}

/**
 * AWS IoT policy resource matching: `*` matches any sequence, `?` any single character;
 * policy variables must have been substituted already.
 */
export function iotResourceMatches(pattern: string, arn: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/]/g, '\\$&')))
        .join('') +
      '$',
  );
  return re.test(arn);
}

/** Does an IoT policy document allow `action` on `arn` for a connection of `thingName`? (Allow-only documents.) */
export function iotAllows(
  statements: PolicyStatement[],
  action: string,
  arn: string,
  thingName: string,
): boolean {
  return statements.some(
    (s) =>
      s.Effect === 'Allow' &&
      asArray(s.Action).includes(action) &&
      asArray(s.Resource as Json).some((r) =>
        iotResourceMatches(flat(r).split('${iot:Connection.Thing.ThingName}').join(thingName), arn),
      ),
  );
}

export const iotArnOf = (type: string, name: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:${type}/${name}`;
