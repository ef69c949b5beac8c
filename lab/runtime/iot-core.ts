/**
 * The part of the lab's AWS IoT Core emulation (lab/iot) the runtime uses. Declared
 * structurally so tests can inject a small fake, and so the runtime does not load the broker
 * when it is given one.
 */
export interface IotMessage {
  topic: string;
  payload: Buffer;
  clientId?: string;
  principal?: string;
}

export interface IotCoreLike {
  controlPlaneUrl: string;
  mqtt: { host: string; port: number; caPem: string };
  registry: {
    putPolicy(name: string, document: unknown): void;
    putThingType(name: string): void;
    putThingGroup(name: string): void;
    putProvisioningTemplate(t: {
      name: string;
      body: string;
      enabled: boolean;
      hookArn?: string;
      roleArn?: string;
    }): void;
  };
  onMessage(listener: (m: IotMessage) => void): void;
  publish(topic: string, payload: Buffer | string): Promise<void>;
  stats(): unknown;
  stop(): Promise<void>;
}

export interface StartIotCoreOptions {
  region: string;
  accountId: string;
  host?: string;
  invokeLambda(functionArn: string, event: unknown): Promise<unknown>;
  registerThingTps?: number;
  log?: (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
}
