/**
 * Region, endpoint flags and credentials resolved the way an SDK v3 client resolves them
 * (environment, then shared config), without an SDK client: the custom resource signs its two
 * IoT calls itself. In the bundle, `@aws-sdk/credential-provider-node` is the Lambda chain of
 * lambda/shared/lambda-credentials.ts.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import {
  loadConfig,
  NODE_REGION_CONFIG_FILE_OPTIONS,
  NODE_REGION_CONFIG_OPTIONS,
  NODE_USE_DUALSTACK_ENDPOINT_CONFIG_OPTIONS,
  NODE_USE_FIPS_ENDPOINT_CONFIG_OPTIONS,
} from '@smithy/core/config';
import type { SdkClientSettings } from '../shared/iot-certificates';

/** The settings of a default SDK client, resolved lazily (first call). */
export function defaultSdkSettings(): SdkClientSettings {
  return {
    credentials: defaultProvider(),
    region: loadConfig(NODE_REGION_CONFIG_OPTIONS, NODE_REGION_CONFIG_FILE_OPTIONS),
    useFipsEndpoint: loadConfig(NODE_USE_FIPS_ENDPOINT_CONFIG_OPTIONS),
    useDualstackEndpoint: loadConfig(NODE_USE_DUALSTACK_ENDPOINT_CONFIG_OPTIONS),
  };
}
