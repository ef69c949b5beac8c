/** IoT Jobs control-plane operations (CreateJob, DescribeJob, …). Served by the lab's Jobs emulation. */
import type { ControlPlaneDeps, Router } from './router';

export function registerJobOperations(_router: Router, _deps: ControlPlaneDeps): void {
  // The Jobs family registers its operations here.
}
