/** DescribeEndpoint: the broker's `host:port` (the lab has one endpoint for every endpoint type). */
import type { ControlPlaneDeps, Router } from './router';

export function registerEndpointOperations(router: Router, { endpointAddress }: ControlPlaneDeps): void {
  router.add('DescribeEndpoint', 'GET', '/endpoint', () => ({ endpointAddress: endpointAddress() }));
}
