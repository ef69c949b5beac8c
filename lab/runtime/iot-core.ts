/**
 * The part of the lab's AWS IoT Core emulation (lab/iot) the runtime uses. The types come from
 * lab/iot itself (type-only imports, so the runtime does not load the broker when a test injects
 * a small fake); `stats()` and `faults` are loosened so fakes need not provide them.
 */
import type { IotCore, IotCoreOptions, IotMessage } from '../iot';

export type { IotMessage };
export type IotCoreLike = Omit<IotCore, 'stats' | 'faults'> & {
  stats(): unknown;
  faults?: IotCore['faults'];
};
export type StartIotCoreOptions = IotCoreOptions;
