/** The lab's AWS IoT Jobs emulation: service (state and semantics), device MQTT API, templates. */
import type { IotRegistry } from '../state';
import type { JobsService } from './service';

const services = new WeakMap<IotRegistry, JobsService>();

/** Binds the Jobs service to its registry, so control-plane families find it through their deps. */
export function bindJobsService(registry: IotRegistry, service: JobsService): void {
  services.set(registry, service);
}

/** The Jobs service of this registry's lab. */
export function jobsServiceOf(registry: IotRegistry): JobsService | undefined {
  return services.get(registry);
}

export { JobsService, JobsRejection, type CreateJobInput, type JobsServiceOptions } from './service';
export { JobsDeviceApi, isJobsRequestTopic, isJobsServiceTopic, type PresignUrl } from './device-api';
export { jobTemplateFromCloudFormation, type JobTemplateInput } from './templates';
