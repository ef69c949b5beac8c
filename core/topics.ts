/**
 * MQTT topic contract shared by the device policy (lib/), the device simulator (device/) and
 * the lab. `prefix` is the configurable topic prefix (default `fleet`).
 */
export const topics = {
  telemetry: (prefix: string, thing: string): string => `dt/${prefix}/${thing}/telemetry`,
  health: (prefix: string, thing: string): string => `dt/${prefix}/${thing}/health`,
  command: (prefix: string, thing: string, name: string): string => `cmd/${prefix}/${thing}/${name}`,
  basicIngest: (ruleName: string, topic: string): string => `$aws/rules/${ruleName}/${topic}`,
  /** Every topic of one thing's own families, as policy resources (`*` matches the rest). */
  ownData: (prefix: string, thing: string): string => `dt/${prefix}/${thing}/*`,
  ownCommands: (prefix: string, thing: string): string => `cmd/${prefix}/${thing}/*`,
  ownJobs: (thing: string): string => `$aws/things/${thing}/jobs/*`,
  ownShadow: (thing: string): string => `$aws/things/${thing}/shadow/*`,
  /** Fleet provisioning MQTT API (format json). */
  createKeysAndCertificate: '$aws/certificates/create/json',
  createCertificateFromCsr: '$aws/certificates/create-from-csr/json',
  registerThing: (templateName: string): string =>
    `$aws/provisioning-templates/${templateName}/provision/json`,
  presence: (kind: 'connected' | 'disconnected', clientId: string): string =>
    `$aws/events/presence/${kind}/${clientId}`,
};
