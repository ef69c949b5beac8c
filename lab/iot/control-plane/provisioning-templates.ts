/** Provisioning templates: DescribeProvisioningTemplate, ListProvisioningTemplates. */
import { epoch, page } from './fields';
import type { ControlPlaneDeps, Router } from './router';

export function registerProvisioningTemplateOperations(
  router: Router,
  { registry: reg }: ControlPlaneDeps,
): void {
  router.add(
    'DescribeProvisioningTemplate',
    'GET',
    '/provisioning-templates/{templateName}',
    ({ params }) => {
      const t = reg.getProvisioningTemplate(params.templateName);
      return {
        templateArn: t.templateArn,
        templateName: t.templateName,
        description: t.description,
        creationDate: epoch(t.creationDate),
        lastModifiedDate: epoch(t.lastModifiedDate),
        defaultVersionId: 1,
        templateBody: t.templateBody,
        enabled: t.enabled,
        provisioningRoleArn: t.provisioningRoleArn,
        preProvisioningHook: t.hookArn ? { targetArn: t.hookArn, payloadVersion: '2020-04-01' } : undefined,
        type: 'FLEET_PROVISIONING',
      };
    },
  );
  router.add('ListProvisioningTemplates', 'GET', '/provisioning-templates', ({ query }) => {
    const p = page([...reg.templates.values()], query.get('nextToken'), query.get('maxResults'));
    return {
      templates: p.items.map((t) => ({
        templateArn: t.templateArn,
        templateName: t.templateName,
        description: t.description,
        creationDate: epoch(t.creationDate),
        lastModifiedDate: epoch(t.lastModifiedDate),
        enabled: t.enabled,
        type: 'FLEET_PROVISIONING',
      })),
      nextToken: p.next,
    };
  });
}
