#!/usr/bin/env -S npx tsx
/**
 * `fleet`: operator CLI of the IoT fleet stack. Thin entry point: the command tree lives in
 * cli/program.ts, the commands in cli/commands (callable in-process, e.g. by the local lab).
 */
import { main } from '../cli/program';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
