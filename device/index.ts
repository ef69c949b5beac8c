/** Public API of the device simulator. */
export * from './backoff';
export * from './identity';
export * from './agent';
export * from './fleet-sim';
export * from './simulate';
export { MqttSession, RejectedError, TransportError } from './mqtt-session';
export type { LastWill, SessionOptions, TransportFailure } from './mqtt-session';
export { createKeyAndCsr } from './csr';
export type { DeviceKeyAndCsr } from './csr';
