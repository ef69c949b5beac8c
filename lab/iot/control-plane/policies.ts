/** Policies: CreatePolicy, GetPolicy, AttachPolicy, DetachPolicy, ListAttachedPolicies, ListTargetsForPolicy. */
import { epoch, page, requireStr, str } from './fields';
import type { ControlPlaneDeps, Router } from './router';

export function registerPolicyOperations(router: Router, { registry: reg }: ControlPlaneDeps): void {
  router.add('CreatePolicy', 'POST', '/policies/{policyName}', ({ params, body }) => {
    const p = reg.createPolicy(params.policyName, requireStr(str(body, 'policyDocument'), 'policyDocument'));
    return {
      policyName: p.policyName,
      policyArn: p.policyArn,
      policyDocument: p.policyDocument,
      policyVersionId: p.defaultVersionId,
    };
  });
  router.add('GetPolicy', 'GET', '/policies/{policyName}', ({ params }) => {
    const p = reg.getPolicy(params.policyName);
    return {
      policyName: p.policyName,
      policyArn: p.policyArn,
      policyDocument: p.policyDocument,
      defaultVersionId: p.defaultVersionId,
      creationDate: epoch(p.creationDate),
      lastModifiedDate: epoch(p.lastModifiedDate),
      generationId: String(p.lastModifiedDate.getTime()),
    };
  });
  router.add('AttachPolicy', 'PUT', '/target-policies/{policyName}', ({ params, body }) => {
    reg.attachPolicy(params.policyName, requireStr(str(body, 'target'), 'target'));
    return {};
  });
  router.add('DetachPolicy', 'POST', '/target-policies/{policyName}', ({ params, body }) => {
    reg.detachPolicy(params.policyName, requireStr(str(body, 'target'), 'target'));
    return {};
  });
  router.add('ListAttachedPolicies', 'POST', '/attached-policies/{target}', ({ params, query }) => {
    const names = reg.attachedPolicies(params.target);
    const p = page(names, query.get('marker'), query.get('pageSize'));
    return {
      policies: p.items.map((n) => ({ policyName: n, policyArn: reg.getPolicy(n).policyArn })),
      nextMarker: p.next,
    };
  });
  router.add('ListTargetsForPolicy', 'POST', '/policy-targets/{policyName}', ({ params, query }) => {
    reg.getPolicy(params.policyName);
    const p = page(
      [...(reg.policyTargets.get(params.policyName) ?? [])],
      query.get('marker'),
      query.get('pageSize'),
    );
    return { targets: p.items, nextMarker: p.next };
  });
}
