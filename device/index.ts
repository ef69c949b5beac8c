/** Public API of the device simulator. */
export * from './backoff';
export * from './identity';
export * from './agent';
export * from './enrollment';
export * from './faults';
export * from './provisioning-client';
export * from './thing-identity';
export * from './fleet-sim';
export * from './simulate';
export * from './tls-material';
export { MqttSession, RejectedError, TransportError, responseTopics } from './mqtt-session';
export type { LastWill, SessionOptions, TransportFailure } from './mqtt-session';
export { createKeyAndCsr } from './csr';
export type { DeviceKeyAndCsr } from './csr';
