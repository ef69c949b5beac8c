/**
 * The `fleet` CLI's context on a running lab: resource names resolved from the synthesized
 * stack's outputs exactly as the CLI resolves them from CloudFormation on AWS, and SDK clients
 * on the lab's endpoints.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  CLI_ENV,
  createContext,
  resolveResources,
  RESOURCE_SOURCES,
  type CliContext,
  type ResourceKey,
} from '../../cli/context';
import { memorySink, type MemorySink } from '../../cli/output';
import type { LabRuntime } from '../runtime';

/** The names the scenario's commands cannot run without (the CLI contract). */
export const LAB_CLI_NEEDS: readonly ResourceKey[] = [
  'devicesTable',
  'lotsTable',
  'eventsTable',
  'thingPrefix',
  'provisioningTemplates',
  'serialPattern',
  'ringShares',
  'topicPrefix',
];

/** The stack the lab runs (the first one of the assembly, as the CLI's --stack). */
export function labStackName(lab: LabRuntime): string {
  return lab.assembly.stacks[0]?.stackName ?? lab.topology.stacks[0];
}

/** A CliContext on the lab: names from the stack outputs, as `fleet` reads them on AWS. */
export async function labCliContext(lab: LabRuntime, out: MemorySink = memorySink()): Promise<CliContext> {
  const env = lab.env;
  const resources = await resolveResources({
    flags: { stack: labStackName(lab) },
    env: {},
    needs: LAB_CLI_NEEDS,
    wants: ['devicePolicy'],
    readStackOutputs: async () => lab.outputs,
  });
  const config = {
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  };
  const dynamo = new DynamoDBClient({ ...config, endpoint: env.AWS_ENDPOINT_URL_DYNAMODB });
  return createContext({
    resources,
    clients: {
      dynamo,
      doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
      iot: new IoTClient({ ...config, endpoint: env.AWS_ENDPOINT_URL_IOT }),
    },
    out,
    actor: 'lab',
  });
}

export function destroyContext(ctx: CliContext): void {
  ctx.clients.doc.destroy();
  ctx.clients.dynamo.destroy();
  ctx.clients.iot.destroy();
}

/**
 * What to export so the `fleet` CLI in another shell uses the lab: the SDK variables, the
 * stack name, and every resource the CLI reads, under the variable the CLI reads it from.
 */
export function labCliEnvironment(lab: LabRuntime): Record<string, string> {
  const env: Record<string, string> = { ...lab.env, [CLI_ENV.stackName]: labStackName(lab) };
  for (const source of Object.values(RESOURCE_SOURCES)) {
    const value = lab.outputs[source.output];
    if (value !== undefined) env[source.env] = value;
  }
  return env;
}
