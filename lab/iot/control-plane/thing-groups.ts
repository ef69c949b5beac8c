/**
 * Thing groups: CreateThingGroup, DescribeThingGroup, AddThingToThingGroup,
 * RemoveThingFromThingGroup, ListThingGroupsForThing, ListThingsInThingGroup.
 */
import { epoch, page, requireStr, str } from './fields';
import type { ControlPlaneDeps, Router } from './router';

const nameFromArn = (arn: string | undefined, kind: string): string | undefined =>
  arn ? arn.slice(arn.indexOf(`:${kind}/`) + kind.length + 2) : undefined;

/** Group and thing, each given by name or by ARN. */
function groupAndThing(body: Record<string, unknown>): [string, string] {
  return [
    requireStr(
      str(body, 'thingGroupName') ?? nameFromArn(str(body, 'thingGroupArn'), 'thinggroup'),
      'thingGroupName',
    ),
    requireStr(str(body, 'thingName') ?? nameFromArn(str(body, 'thingArn'), 'thing'), 'thingName'),
  ];
}

export function registerThingGroupOperations(router: Router, { registry: reg }: ControlPlaneDeps): void {
  router.add('CreateThingGroup', 'POST', '/thing-groups/{thingGroupName}', ({ params, body }) => {
    const props = body.thingGroupProperties as
      | { thingGroupDescription?: string; attributePayload?: { attributes?: Record<string, string> } }
      | undefined;
    const g = reg.createThingGroup(params.thingGroupName, {
      parentGroupName: str(body, 'parentGroupName'),
      description: props?.thingGroupDescription,
      attributes: props?.attributePayload?.attributes,
    });
    return {
      thingGroupName: g.thingGroupName,
      thingGroupArn: g.thingGroupArn,
      thingGroupId: g.thingGroupId,
    };
  });
  router.add('DescribeThingGroup', 'GET', '/thing-groups/{thingGroupName}', ({ params }) => {
    const g = reg.getThingGroup(params.thingGroupName);
    const chain: Array<{ groupName: string; groupArn: string }> = [];
    for (let p = g.parentGroupName; p; p = reg.thingGroups.get(p)?.parentGroupName) {
      chain.unshift({ groupName: p, groupArn: reg.arn(`thinggroup/${p}`) });
    }
    return {
      thingGroupName: g.thingGroupName,
      thingGroupId: g.thingGroupId,
      thingGroupArn: g.thingGroupArn,
      version: g.version,
      thingGroupProperties: {
        thingGroupDescription: g.description,
        attributePayload: { attributes: g.attributes },
      },
      thingGroupMetadata: {
        parentGroupName: g.parentGroupName,
        rootToParentThingGroups: chain,
        creationDate: epoch(g.creationDate),
      },
    };
  });
  router.add('AddThingToThingGroup', 'PUT', '/thing-groups/addThingToThingGroup', ({ body }) => {
    const [g, t] = groupAndThing(body);
    reg.addThingToGroup(t, g);
    return {};
  });
  router.add('RemoveThingFromThingGroup', 'PUT', '/thing-groups/removeThingFromThingGroup', ({ body }) => {
    const [g, t] = groupAndThing(body);
    reg.removeThingFromGroup(t, g);
    return {};
  });
  router.add('ListThingGroupsForThing', 'GET', '/things/{thingName}/thing-groups', ({ params, query }) => {
    const t = reg.getThing(params.thingName);
    const p = page([...t.groups], query.get('nextToken'), query.get('maxResults'));
    return {
      thingGroups: p.items.map((g) => ({ groupName: g, groupArn: reg.arn(`thinggroup/${g}`) })),
      nextToken: p.next,
    };
  });
  router.add(
    'ListThingsInThingGroup',
    'GET',
    '/thing-groups/{thingGroupName}/things',
    ({ params, query }) => {
      const root = reg.getThingGroup(params.thingGroupName);
      const names = new Set(root.things);
      if (query.get('recursive') === 'true') {
        const stack = [root.thingGroupName];
        while (stack.length) {
          const parent = stack.pop() as string;
          for (const g of reg.thingGroups.values()) {
            if (g.parentGroupName === parent) {
              g.things.forEach((t) => names.add(t));
              stack.push(g.thingGroupName);
            }
          }
        }
      }
      const p = page([...names], query.get('nextToken'), query.get('maxResults'));
      return { things: p.items, nextToken: p.next };
    },
  );
}
