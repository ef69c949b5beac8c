/**
 * The staged-OTA resources of the stack: job templates and the firmware package into the lab's
 * IoT Jobs emulation and package catalog, and the account's job event configuration.
 */
import { arn, type ResourceHandler } from './types';

/** AWS::IoT::JobTemplate → a job template of the lab's Jobs emulation (CreateJob can name it). */
export const iotJobTemplateHandler: ResourceHandler = {
  types: ['AWS::IoT::JobTemplate'],
  phase: 30, // after IAM (acknowledged) so RoleArn resolves
  nameProperty: 'JobTemplateId',
  maxNameLength: 64,
  attributes: (name, c) => ({ Arn: arn('iot', c, `jobtemplate/${name}`) }),
  create(ctx) {
    const jobs = ctx.iot.jobs;
    if (!jobs) return { status: 'unsupported', detail: 'this IoT emulation has no Jobs service' };
    const { jobTemplateArn } = jobs.putJobTemplateFromCloudFormation({
      ...ctx.properties,
      JobTemplateId: ctx.physicalName,
    });
    return { status: 'created', detail: jobTemplateArn };
  },
};

/** AWS::IoT::SoftwarePackage → a package of the lab's catalog (through its control plane). */
export const iotSoftwarePackageHandler: ResourceHandler = {
  types: ['AWS::IoT::SoftwarePackage'],
  phase: 20,
  nameProperty: 'PackageName',
  maxNameLength: 128,
  attributes: (name, c) => ({ PackageArn: arn('iot', c, `package/${name}`) }),
  async create(ctx) {
    const description =
      typeof ctx.properties.Description === 'string' ? ctx.properties.Description : undefined;
    const res = await fetch(`${ctx.iot.controlPlaneUrl}/packages/${encodeURIComponent(ctx.physicalName)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(description ? { description } : {}),
    });
    if (!res.ok)
      throw new Error(
        `package ${ctx.physicalName}: CreatePackage answered ${res.status}: ${await res.text()}`,
      );
    return {
      status: 'created',
      detail: 'package catalog (versions are published by fleet firmware publish)',
    };
  },
};

/**
 * Custom::IotJobEventConfiguration → JOB and JOB_EXECUTION events on in the lab. Its Lambda is
 * not run: it answers CloudFormation on an https ResponseURL the lab does not serve, and its
 * read-enable-restore logic is tested on its own against a loopback server.
 */
export const iotJobEventConfigurationHandler: ResourceHandler = {
  types: ['Custom::IotJobEventConfiguration'],
  phase: 40,
  attributes: () => ({ PreviousJob: 'false', PreviousJobExecution: 'false' }),
  create(ctx) {
    const jobs = ctx.iot.jobs;
    if (!jobs) return { status: 'unsupported', detail: 'this IoT emulation has no Jobs service' };
    jobs.setEventConfiguration('JOB', true);
    jobs.setEventConfiguration('JOB_EXECUTION', true);
    return {
      status: 'created',
      detail: 'JOB and JOB_EXECUTION events enabled (the custom resource Lambda is not run)',
    };
  },
};
