/**
 * The `fleet` CLI's context on a running lab: resource names resolved from the synthesized
 * stack's outputs exactly as the CLI resolves them from CloudFormation on AWS, and SDK clients
 * on the lab's endpoints.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
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

/** An assembly the scenario cannot pick one fleet stack from; the message names the fix. */
export class LabStackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabStackError';
  }
}

/** The stacks of the lab that declare an output the scenario's commands read (fleet stacks). */
export function labFleetStacks(lab: LabRuntime): string[] {
  const contract = LAB_CLI_NEEDS.map((key) => RESOURCE_SOURCES[key].output);
  return lab.topology.stacks.filter((name) => {
    const outputs = lab.outputsByStack[name] ?? {};
    return contract.some((output) => output in outputs);
  });
}

/**
 * The stack the scenario and the CLI context use (the CLI's --stack): the lab's one fleet stack,
 * or its first stack when none declares the CLI's outputs (resolution then names what is
 * missing). More than one fleet stack is refused: the scenario would not know which to drive.
 */
export function labStackName(lab: LabRuntime): string {
  const fleet = labFleetStacks(lab);
  if (fleet.length > 1)
    throw new LabStackError(
      `the assembly has ${fleet.length} fleet stacks (${fleet.join(', ')}) and the lab drives one; choose it with --stack ${fleet[0]} (startLabRuntime({ stacks: ['${fleet[0]}'] }))`,
    );
  return fleet[0] ?? lab.topology.stacks[0];
}

/** The outputs of the stack the scenario drives (see {@link labStackName}). */
export function labStackOutputs(lab: LabRuntime): Record<string, string> {
  return lab.outputsByStack[labStackName(lab)] ?? {};
}

/** A CliContext on the lab: names from the stack outputs, as `fleet` reads them on AWS. */
export async function labCliContext(lab: LabRuntime, out: MemorySink = memorySink()): Promise<CliContext> {
  const env = lab.env;
  const resources = await resolveResources({
    flags: { stack: labStackName(lab) },
    env: {},
    needs: LAB_CLI_NEEDS,
    wants: ['devicePolicy', 'telemetryStream', 'telemetryRules', 'telemetryErrorBucket'],
    // As DescribeStacks: the outputs of the stack named, and an error for a stack the lab does not run.
    readStackOutputs: async (stackName) => {
      const outputs = lab.outputsByStack[stackName];
      if (!outputs) throw new Error(`Stack with id ${stackName} does not exist in the lab`);
      return outputs;
    },
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
      s3: new S3Client({ ...config, endpoint: env.AWS_ENDPOINT_URL_S3, forcePathStyle: true }),
      // kinesalite speaks HTTP/1.1 only.
      kinesis: new KinesisClient({
        ...config,
        endpoint: env.AWS_ENDPOINT_URL_KINESIS,
        requestHandler: new NodeHttpHandler(),
      }),
    },
    out,
    actor: 'lab',
  });
}

/**
 * What to export so the `fleet` CLI in another shell uses the lab: the SDK variables, the
 * stack name, and every resource the CLI reads, under the variable the CLI reads it from.
 */
export function labCliEnvironment(lab: LabRuntime): Record<string, string> {
  const stackName = labStackName(lab);
  const outputs = lab.outputsByStack[stackName] ?? {};
  const env: Record<string, string> = { ...lab.env, [CLI_ENV.stackName]: stackName };
  for (const source of Object.values(RESOURCE_SOURCES)) {
    const value = outputs[source.output];
    if (value !== undefined) env[source.env] = value;
  }
  return env;
}
