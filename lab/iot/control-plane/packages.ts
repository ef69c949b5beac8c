/** Software Package Catalog operations (CreatePackage, CreatePackageVersion, …). */
import type { ControlPlaneDeps, Router } from './router';

export function registerPackageOperations(_router: Router, _deps: ControlPlaneDeps): void {
  // The package catalog family registers its operations here.
}
