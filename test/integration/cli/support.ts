/** Shared by the in-process `fleet` command tests: a CLI context on fresh registry tables in dynalite. */
import type { IoTClient } from '@aws-sdk/client-iot';
import { DEFAULT_SERIAL_PATTERN } from '../../../core/model';
import { parseRingShares } from '../../../core/rings';
import { Registry } from '../../../lambda/shared/registry';
import { CliContext, createContext, FleetResources } from '../../../cli/context';
import { memorySink, MemorySink } from '../../../cli/output';
import { createRegistryTables, LocalDynamo, RegistryTableNames } from '../../helpers/dynalite';

/** The clock every fixture's context and registry read. */
export const NOW = new Date('2026-07-10T12:00:00.000Z');

export interface Fixture {
  ctx: CliContext;
  out: MemorySink;
  tables: RegistryTableNames;
  registry: Registry;
}

/**
 * A context on new registry tables (names suffixed `suffix`, unique per call) in `local`, with
 * thing prefix `fleet`, the default serial pattern, ring shares 2:18 and `resources` on top; IoT
 * calls go to `iot`, the clock stands at NOW, the actor is `tester` and retries do not wait.
 */
export async function registryFixture(
  local: LocalDynamo,
  iot: IoTClient,
  suffix: string,
  resources: FleetResources = {},
): Promise<Fixture> {
  const tables = await createRegistryTables(local.client, suffix);
  const out = memorySink();
  const ctx = createContext({
    resources: {
      devicesTable: tables.devices,
      lotsTable: tables.lots,
      eventsTable: tables.events,
      thingPrefix: 'fleet',
      serialPattern: DEFAULT_SERIAL_PATTERN,
      ringShares: parseRingShares('2:18'),
      ...resources,
    },
    clients: { dynamo: local.client, doc: local.doc, iot },
    out,
    now: () => NOW,
    actor: 'tester',
    sleep: async () => undefined,
  });
  return { ctx, out, tables, registry: new Registry(local.doc, tables, () => NOW) };
}
