/**
 * The lab's AWS IoT Core (lab/iot, loopback only) set up for streaming devices: a provisioning
 * template that names things `fleet-<serial>`, the per-device policy of lib/provisioning (own
 * `dt/fleet/<thing>/*` topics, their Basic Ingest form for the two telemetry rules, Last Will
 * allowed), a claim, and every accepted PUBLISH recorded as the rules engine sees it.
 */
import { AttachPolicyCommand, CreateKeysAndCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { TelemetryRulesOutput } from '../../../../core/stack-outputs';
import {
  runFleet,
  type DeviceAgent,
  type FleetResult,
  type MqttVersion,
  type TlsCredentials,
} from '../../../../device';
import type { IotCore, IotMessage } from '../../../../lab/iot';
import {
  arn,
  claimPolicy,
  connectAsThing,
  FLEET_THING_RESOURCES,
  startCore,
  THING_NAME,
} from '../../lab-iot/helpers';

export const TEMPLATE = 'fleet-stream';
export const TOPIC_PREFIX = 'fleet';
export const RULES: TelemetryRulesOutput = { telemetry: 'fleet_telemetry', health: 'fleet_health' };

/** The device policy as lib/provisioning/device-policy.ts builds it, for prefix `fleet` and RULES. */
export function streamingDevicePolicy(): unknown {
  const ownDt = `dt/${TOPIC_PREFIX}/${THING_NAME}/*`;
  return {
    Version: '2012-10-17',
    Statement: [
      connectAsThing({
        'ForAllValues:StringEquals': {
          'iot:ConnectAttributes': ['PersistentConnect', 'LastWill', 'MQTTv5'],
        },
      }),
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [ownDt, ...Object.values(RULES).map((r) => `$aws/rules/${r}/${ownDt}`)].map((t) =>
          arn(`topic/${t}`),
        ),
      },
    ],
  };
}

const templateBody = JSON.stringify({
  Parameters: {
    SerialNumber: { Type: 'String' },
    HardwareRevision: { Type: 'String' },
    FirmwareVersion: { Type: 'String' },
    'AWS::IoT::Certificate::Id': { Type: 'String' },
  },
  Resources: FLEET_THING_RESOURCES,
});

export class LabFleet {
  /** Every accepted PUBLISH (device messages, Last Wills, presence events), in order. */
  readonly messages: IotMessage[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(
    readonly core: IotCore,
    readonly iot: IoTClient,
    readonly claim: TlsCredentials,
  ) {
    core.onMessage((m) => {
      this.messages.push(m);
      for (const l of [...this.listeners]) l();
    });
  }

  static async start(): Promise<LabFleet> {
    const { core, iot } = await startCore({ invokeLambda: async () => ({ allowProvisioning: true }) });
    core.registry.putPolicy('fleet-device', streamingDevicePolicy());
    core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
    core.registry.putProvisioningTemplate({
      name: TEMPLATE,
      body: templateBody,
      enabled: true,
      hookArn: 'arn:aws:lambda:us-east-1:123456789012:function:hook',
    });
    const c = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachPolicyCommand({ policyName: 'fleet-claim', target: c.certificateArn }));
    return new LabFleet(core, iot, { certPem: c.certificatePem!, keyPem: c.keyPair!.PrivateKey! });
  }

  get endpoint(): { host: string; port: number; caPem: string } {
    return { host: this.core.mqtt.host, port: this.core.mqtt.port, caPem: this.core.mqtt.caPem };
  }

  /**
   * Enroll units (`serial` → firmware) and keep their thing sessions open, on `mqtt` (one version
   * for all, or per serial; 3.1.1 by default).
   */
  async enroll(
    units: Record<string, string>,
    mqtt: MqttVersion | Record<string, MqttVersion> = '3.1.1',
  ): Promise<FleetResult & { list: DeviceAgent[] }> {
    const result = await runFleet({
      devices: Object.entries(units).map(([serial, firmware]) => ({
        identity: { serial, lot: 'LOT-A', hwRev: 'A', firmware },
        mqttVersion: typeof mqtt === 'string' ? mqtt : (mqtt[serial] ?? '3.1.1'),
      })),
      endpoint: this.endpoint,
      claims: { 'LOT-A': this.claim },
      templateName: TEMPLATE,
      topicPrefix: TOPIC_PREFIX,
      keepConnected: true,
      sleep: async () => undefined,
    });
    const failed = result.results.filter((r) => r.outcome !== 'enrolled');
    if (failed.length > 0) throw new Error(`enrollment failed: ${JSON.stringify(failed)}`);
    return { ...result, list: [...result.agents.values()] };
  }

  /** Messages on topics matching `predicate`, payload parsed. */
  received(predicate: (m: IotMessage) => boolean): Array<IotMessage & { body: Record<string, unknown> }> {
    return this.messages
      .filter(predicate)
      .map((m) => ({ ...m, body: JSON.parse(m.payload.toString()) as Record<string, unknown> }));
  }

  /** Resolves once `condition` holds (checked now and on every message), or rejects after `ms`. */
  until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.listeners.add(check);
    });
  }

  clear(): void {
    this.messages.length = 0;
  }

  async stop(): Promise<void> {
    this.iot.destroy();
    await this.core.stop();
  }
}
