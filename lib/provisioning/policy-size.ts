import { Stack, Token } from 'aws-cdk-lib';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { IConstruct } from 'constructs';

/** AWS IoT's limit on a policy document (CreatePolicy / CreatePolicyVersion), whitespace excluded. */
export const MAX_IOT_POLICY_LENGTH = 2048;

/** Length of an AWS account id. */
const ACCOUNT_ID_LENGTH = 12;

/**
 * The longest values the pseudo parameters can take for a stack: its own region (and that region's
 * partition) when the stack has a concrete region, otherwise the region whose name plus partition
 * name is the longest this CDK version knows; and a 12-digit account id (or the stack's own). A
 * document that fits with these fits wherever the stack can be deployed.
 */
export function worstCasePseudoParameters(scope?: IConstruct): Readonly<Record<string, string>> {
  const stack = scope ? Stack.of(scope) : undefined;
  const known = stack && !Token.isUnresolved(stack.region) ? RegionInfo.get(stack.region) : undefined;
  const candidates = known ? [known] : RegionInfo.regions;
  const worst = candidates.reduce((a, b) =>
    b.name.length + partitionOf(b).length > a.name.length + partitionOf(a).length ? b : a,
  );
  return {
    'AWS::Partition': partitionOf(worst),
    'AWS::Region': worst.name,
    'AWS::AccountId':
      stack && !Token.isUnresolved(stack.account) ? stack.account : '0'.repeat(ACCOUNT_ID_LENGTH),
  };
}

/** A region's partition; a region this CDK version does not know counts as the longest partition. */
function partitionOf(region: RegionInfo): string {
  const longest = RegionInfo.regions
    .map((r) => r.partition ?? '')
    .reduce((a, b) => (b.length > a.length ? b : a), '');
  return region.partition ?? longest;
}

/**
 * Length of an IoT policy document as AWS IoT counts it (whitespace excluded), with every pseudo
 * parameter the document still references replaced by `pseudo` (by default the worst case).
 * Values the stack already knows (a concrete account or region) count as they are.
 *
 * @throws Error when the document references something other than a pseudo parameter.
 */
export function iotPolicyLength(
  scope: IConstruct,
  document: unknown,
  pseudo: Readonly<Record<string, string>> = worstCasePseudoParameters(scope),
): number {
  const substitute = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(substitute);
    if (node === null || typeof node !== 'object') return node;
    const o = node as Record<string, unknown>;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(substitute(p))).join(sep);
    }
    if ('Ref' in o) {
      const value = pseudo[String(o.Ref)];
      if (value === undefined) {
        throw new Error(
          `cannot size an IoT policy that references ${String(o.Ref)}; reference pseudo parameters only`,
        );
      }
      return value;
    }
    const intrinsic = Object.keys(o).find((k) => k.startsWith('Fn::'));
    if (intrinsic !== undefined) {
      throw new Error(
        `cannot size an IoT policy that uses ${intrinsic}; build its resources from Fn::Join and pseudo parameters only`,
      );
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, substitute(v)]));
  };
  return JSON.stringify(substitute(Stack.of(scope).resolve(document))).replace(/\s/g, '').length;
}
