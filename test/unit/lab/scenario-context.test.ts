/**
 * Which stack the scenario drives when the assembly holds several: the fleet stack (the one
 * declaring the outputs the CLI reads), with that stack's own outputs; more than one fleet stack
 * is refused with one line naming the fix. The lab here is a plain object: no emulator runs.
 */
import { destroyContext } from '../../../cli/context';
import { STACK_OUTPUTS } from '../../../core/stack-outputs';
import type { LabRuntime } from '../../../lab/runtime';
import {
  labCliContext,
  labCliEnvironment,
  LabStackError,
  labStackName,
  labStackOutputs,
} from '../../../lab/scenario/context';

/** Every output the scenario's commands need, with values tagged by `tag`. */
function fleetOutputs(tag: string): Record<string, string> {
  return {
    [STACK_OUTPUTS.devicesTable]: `${tag}-devices`,
    [STACK_OUTPUTS.lotsTable]: `${tag}-lots`,
    [STACK_OUTPUTS.eventsTable]: `${tag}-events`,
    [STACK_OUTPUTS.thingNamePrefix]: tag,
    [STACK_OUTPUTS.topicPrefix]: tag,
    [STACK_OUTPUTS.devicePolicy]: `${tag}-device`,
    [STACK_OUTPUTS.provisioningTemplates]: JSON.stringify([
      {
        templateName: `${tag}-tpl`,
        claimPolicyName: `${tag}-claim`,
        thingTypeName: `${tag}-type`,
        claimClientIdPrefix: 'prov-',
      },
    ]),
    [STACK_OUTPUTS.serialPattern]: '^[A-Z0-9]{10}$',
    [STACK_OUTPUTS.ringShares]: '2:18',
  };
}

function labWith(outputsByStack: Record<string, Record<string, string>>): LabRuntime {
  return {
    env: {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'lab',
      AWS_SECRET_ACCESS_KEY: 'lab',
      AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9',
      AWS_ENDPOINT_URL_IOT: 'http://127.0.0.1:9',
    },
    outputsByStack,
    topology: { stacks: Object.keys(outputsByStack) },
    assembly: {
      dir: '/nowhere',
      stacks: Object.keys(outputsByStack).map((stackName) => ({ stackName, tags: {} })),
    },
  } as unknown as LabRuntime;
}

describe('the stack the scenario drives', () => {
  // A support stack first (the first stack would have been picked by position), with an
  // output of the same name as one of the fleet stack's.
  const lab = labWith({
    Support: { Stage: 'support', AlarmTopic: 'arn:alarms' },
    Fleet: { ...fleetOutputs('acme'), Stage: 'prod' },
  });

  test('is the stack that declares the CLI outputs, not the first one', () => {
    expect(labStackName(lab)).toBe('Fleet');
    expect(labStackOutputs(lab)).toEqual({ ...fleetOutputs('acme'), Stage: 'prod' });
  });

  test('the CLI context resolves the names from that stack outputs', async () => {
    const ctx = await labCliContext(lab);
    try {
      expect(ctx.resources).toMatchObject({
        devicesTable: 'acme-devices',
        lotsTable: 'acme-lots',
        eventsTable: 'acme-events',
        thingPrefix: 'acme',
        devicePolicy: 'acme-device',
        topicPrefix: 'acme',
      });
    } finally {
      destroyContext(ctx);
    }
  });

  test('the exported environment names that stack and its outputs', () => {
    const env = labCliEnvironment(lab);
    expect(env.FLEET_STACK_NAME).toBe('Fleet');
    expect(env.FLEET_RING_SHARES).toBe('2:18');
    expect(env.FLEET_THING_PREFIX).toBe('acme');
  });

  test('two fleet stacks are refused with one line naming the fix', () => {
    const two = labWith({ Fleet: fleetOutputs('acme'), Fleet2: fleetOutputs('beta') });
    expect(() => labStackName(two)).toThrow(LabStackError);
    expect(() => labStackName(two)).toThrow(
      "the assembly has 2 fleet stacks (Fleet, Fleet2) and the lab drives one; choose it with --stack Fleet (startLabRuntime({ stacks: ['Fleet'] }))",
    );
    expect(() => labCliEnvironment(two)).toThrow(LabStackError);
  });

  test('without a fleet stack, the first stack is named (the CLI resolution then names what is missing)', async () => {
    const none = labWith({ Only: { Other: 'x' } });
    expect(labStackName(none)).toBe('Only');
    await expect(labCliContext(none)).rejects.toThrow(/missing resource name\(s\) .*stack Only/);
  });
});
