/**
 * In-process API of the `fleet` CLI (for the local lab and scripts): build a context with
 * {@link createContext}, call the commands (each returns its result and writes to `ctx.out`), and
 * close the context's SDK clients with {@link destroyContext} when done.
 */
export {
  createContext,
  contextFromFlags,
  destroyContext,
  resolveResources,
  CLI_ENV,
  RESOURCE_SOURCES,
} from './context';
export type { CliContext, FleetClients, FleetResources, GlobalFlags, ResourceKey } from './context';
export { CliError, UsageError, EXIT_CODES, describeExitCodes } from './errors';
export type { ExitCode } from './errors';
export { consoleSink, memorySink } from './output';
export type { MemorySink, OutputSink, Progress } from './output';
export { main } from './program';
export * from './commands/manifest-import';
export * from './commands/manifest-validate';
export * from './commands/lot';
export * from './commands/claim';
export * from './commands/enrollment';
export * from './commands/device';
export * from './commands/sim';
export * from './commands/telemetry';
export { ErrorStore, putStreamRecords, putRecordsBatches, PUT_RECORDS_LIMITS } from './telemetry-store';
export type { ErrorStoreObject, ReceiveWindow, StreamPut, StreamPutOutcome } from './telemetry-store';
