#!/usr/bin/env -S npx tsx
/**
 * `fleet`: operator CLI of the IoT fleet stack. Thin entry point: the command tree lives in
 * cli/program.ts, the commands in cli/commands (callable in-process, e.g. by the local lab).
 * Exit codes: cli/errors.ts EXIT_CODES (0 success, 1 a check failed or a unit was denied or gave
 * up, 2 bad usage).
 */
import { main } from '../cli/program';
import { EXIT_CODES } from '../cli/errors';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * The process ends on its own once the command is done: the run wrapper closes the SDK clients
 * (cli/context.ts destroyContext) and the simulator ends its MQTT sessions, so nothing forces an
 * exit here, and a handle left open shows as a process that does not end (the tests that run this
 * entry point wait for it to end by itself). With FLEET_DEBUG=1, a process still alive a second
 * after the command finished names what is holding it; the timer is unref'd, so it never delays
 * an exit.
 */
const DEBUG_OPEN_HANDLES_AFTER_MS = 1000;

function finish(code: number): void {
  process.exitCode = code;
  if (!process.env.FLEET_DEBUG) return;
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    process.stderr.write(`fleet: still open after the command finished: ${open.join(', ')}\n`);
  }, DEBUG_OPEN_HANDLES_AFTER_MS).unref();
}

/**
 * A reader that went away (`fleet --help | head -1`) is not an error of the command: stop quietly
 * with the exit code so far (0 for help) instead of an unhandled EPIPE stack trace.
 */
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? EXIT_CODES.ok);
  });
}

main(process.argv.slice(2)).then(finish, (err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  finish(EXIT_CODES.failed);
});
