/**
 * What the broker does with AWS IoT reserved topics (`$aws/…`), as pure functions.
 * AWS IoT Developer Guide, "Reserved topics": clients may publish and subscribe to reserved
 * topics only as each topic allows; other operations can end the connection.
 *
 * - Basic Ingest (`$aws/rules/<rule>/…`, "Reducing messaging costs with Basic Ingest"): clients
 *   publish, the message goes to the named rule only. Nobody can subscribe to these topics, and
 *   the broker never delivers them to a subscriber (wildcards included).
 * - Fleet provisioning requests (`$aws/certificates/create[-from-csr]/<json|cbor>`,
 *   `$aws/provisioning-templates/<name>/provision/<json|cbor>`): publish only. The provisioning
 *   service consumes them (they may carry an ownership token); they are never delivered to a
 *   subscriber. Their `…/accepted|rejected` answers are subscribe only and go to the requesting
 *   connection alone.
 * - Lifecycle, job and job-execution events (`$aws/events/…`): subscribe only; AWS IoT publishes them.
 * - Jobs device API (`$aws/things/<thing>/jobs/…`, "Jobs device MQTT API operations"): requests
 *   (`get`, `start-next`, `<jobId>/get`, `<jobId>/update`) are consumed by the Jobs service and
 *   never delivered to a subscriber; answers (`…/accepted|rejected`) and `notify`/`notify-next`
 *   are published by the service only.
 */
import { isJobsRequestTopic, isJobsServiceTopic } from './jobs/device-api';
import { isProvisioningRequestTopic, isProvisioningTopic } from './provisioning';

const BASIC_INGEST_PREFIX = '$aws/rules/';

/** True for a Basic Ingest topic (`$aws/rules/<rule>/…`). */
export function isBasicIngestTopic(topic: string): boolean {
  return topic.startsWith(BASIC_INGEST_PREFIX);
}

/**
 * True when the service consumes messages on `topic` itself and the broker never delivers them
 * to a subscriber: Basic Ingest, fleet provisioning requests and Jobs API requests.
 */
export function isServiceConsumedTopic(topic: string): boolean {
  return isBasicIngestTopic(topic) || isProvisioningRequestTopic(topic) || isJobsRequestTopic(topic);
}

/** Why a client may not PUBLISH to `topic` whatever its policy says, or undefined. */
export function reservedPublishRefusal(topic: string): string | undefined {
  if (topic.startsWith('$aws/events/')) return 'reserved topic: clients cannot publish lifecycle events';
  if (isProvisioningTopic(topic) && !isProvisioningRequestTopic(topic))
    return 'reserved topic: fleet provisioning answers are published by AWS IoT only';
  if (isJobsServiceTopic(topic))
    return 'reserved topic: Jobs answers and notifications are published by AWS IoT Jobs only';
  return undefined;
}

/** Why a client may not SUBSCRIBE to `filter` whatever its policy says, or undefined. */
export function reservedSubscribeRefusal(filter: string): string | undefined {
  if (filter === '$aws/rules' || isBasicIngestTopic(filter))
    return 'reserved topic: Basic Ingest topics cannot be subscribed to';
  if (isProvisioningRequestTopic(filter))
    return 'reserved topic: fleet provisioning requests are consumed by the provisioning service';
  return undefined;
}
