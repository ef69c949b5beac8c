/**
 * The part of the lab's AWS IoT Core emulation (lab/iot) the runtime uses. The types come from
 * lab/iot itself (type-only imports, so the runtime does not load the broker when a test injects
 * a small fake); `stats()`, `faults` and the registry reads are loosened so fakes need not
 * provide them.
 */
import type { IotCore, IotCoreOptions, IotMessage, IotRegistryApi } from '../iot';

export type { IotMessage };
type RegistryReads = 'describeThing' | 'listThingGroupsForThing';
export type IotCoreLike = Omit<IotCore, 'stats' | 'faults' | 'registry'> & {
  registry: Omit<IotRegistryApi, RegistryReads> & Partial<Pick<IotRegistryApi, RegistryReads>>;
  stats(): unknown;
  faults?: IotCore['faults'];
};
export type StartIotCoreOptions = IotCoreOptions;
