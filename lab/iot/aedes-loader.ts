/**
 * aedes 1.x ships as an ES module only. Under tsx and plain Node 20.19+ `require('aedes')` works
 * (require(esm)); under jest the sandboxed `require` cannot load ESM, so we reach Node's own
 * loader through `process.getBuiltinModule` (Node >= 20.16) and keep aedes outside jest's
 * module registry. Types come from aedes' own declarations.
 */
import type { Aedes as AedesBroker, AedesOptions } from 'aedes';

interface AedesModule {
  Aedes: { createBroker(opts?: AedesOptions): Promise<AedesBroker> };
}

let cached: AedesModule | undefined;

function nativeRequire(): NodeJS.Require {
  const getBuiltin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  if (getBuiltin) {
    const mod = getBuiltin('node:module') as typeof import('node:module');
    return mod.createRequire(__filename);
  }
  return require;
}

export function loadAedes(): AedesModule {
  if (!cached) cached = nativeRequire()('aedes') as AedesModule;
  return cached;
}

export type { AedesBroker, AedesOptions };
