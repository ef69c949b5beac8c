/**
 * Things and their principals: CreateThing, DescribeThing, UpdateThing, DeleteThing, ListThings,
 * AttachThingPrincipal, DetachThingPrincipal, ListThingPrincipals, ListPrincipalThings.
 */
import type { IncomingMessage } from 'node:http';
import { page, requireStr, str } from './fields';
import type { ControlPlaneDeps, Router } from './router';

function attributePayload(body: Record<string, unknown>): {
  attributes?: Record<string, string>;
  merge?: boolean;
} {
  const p = body.attributePayload as { attributes?: Record<string, string>; merge?: boolean } | undefined;
  return { attributes: p?.attributes, merge: p?.merge };
}

/** The principal (certificate ARN) travels in the `x-amzn-principal` header. */
function principalHeader(h: IncomingMessage['headers']): string {
  return requireStr(
    typeof h['x-amzn-principal'] === 'string' ? h['x-amzn-principal'] : undefined,
    'principal',
  );
}

export function registerThingOperations(router: Router, { registry: reg }: ControlPlaneDeps): void {
  router.add('CreateThing', 'POST', '/things/{thingName}', ({ params, body }) => {
    const t = reg.createThing(params.thingName, {
      thingTypeName: str(body, 'thingTypeName'),
      attributes: attributePayload(body).attributes,
    });
    return { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId };
  });
  router.add('DescribeThing', 'GET', '/things/{thingName}', ({ params }) =>
    reg.describeThing(reg.getThing(params.thingName)),
  );
  router.add('UpdateThing', 'PATCH', '/things/{thingName}', ({ params, body }) => {
    const a = attributePayload(body);
    reg.updateThing(params.thingName, {
      thingTypeName: str(body, 'thingTypeName'),
      removeThingType: body.removeThingType === true,
      attributes: a.attributes,
      merge: a.merge,
      expectedVersion: typeof body.expectedVersion === 'number' ? body.expectedVersion : undefined,
    });
    return {};
  });
  router.add('DeleteThing', 'DELETE', '/things/{thingName}', ({ params, query }) => {
    const v = query.get('expectedVersion');
    reg.deleteThing(params.thingName, v === null ? undefined : Number(v));
    return {};
  });
  router.add('ListThings', 'GET', '/things', ({ query }) => {
    const an = query.get('attributeName');
    const av = query.get('attributeValue');
    const tt = query.get('thingTypeName');
    const prefix = query.get('usePrefixAttributeValue') === 'true';
    const all = [...reg.things.values()].filter((t) => {
      if (tt && t.thingTypeName !== tt) return false;
      if (an) {
        const v = t.attributes[an];
        if (v === undefined) return false;
        if (av !== null && (prefix ? !v.startsWith(av) : v !== av)) return false;
      }
      return true;
    });
    const p = page(all, query.get('nextToken'), query.get('maxResults'));
    return {
      things: p.items.map((t) => ({
        thingName: t.thingName,
        thingTypeName: t.thingTypeName,
        thingArn: t.thingArn,
        attributes: t.attributes,
        version: t.version,
      })),
      nextToken: p.next,
    };
  });
  router.add('AttachThingPrincipal', 'PUT', '/things/{thingName}/principals', ({ params, headers }) => {
    reg.attachThingPrincipal(params.thingName, principalHeader(headers));
    return {};
  });
  router.add('DetachThingPrincipal', 'DELETE', '/things/{thingName}/principals', ({ params, headers }) => {
    reg.detachThingPrincipal(params.thingName, principalHeader(headers));
    return {};
  });
  router.add('ListThingPrincipals', 'GET', '/things/{thingName}/principals', ({ params, query }) => {
    const p = page(
      reg.listThingPrincipals(params.thingName),
      query.get('nextToken'),
      query.get('maxResults'),
    );
    return { principals: p.items, nextToken: p.next };
  });
  router.add('ListPrincipalThings', 'GET', '/principals/things', ({ headers, query }) => {
    const p = page(
      reg.principalThings(principalHeader(headers)),
      query.get('nextToken'),
      query.get('maxResults'),
    );
    return { things: p.items, nextToken: p.next };
  });
}
