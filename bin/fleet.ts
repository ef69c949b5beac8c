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
 * Every command closes what it opens, so the process ends on its own once the command is done.
 * Should a library still hold the event loop (a socket or timer it failed to release), the CLI
 * exits after a short grace period rather than keep the operator waiting; FLEET_DEBUG=1 names
 * what was still open. The timer is unref'd: it never delays a clean exit.
 */
const EXIT_GRACE_MS = 1000;

function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => {
    if (process.env.FLEET_DEBUG) {
      const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
      process.stderr.write(`fleet: still open after the command finished: ${open.join(', ')}\n`);
    }
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
}

main(process.argv.slice(2)).then(finish, (err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  finish(EXIT_CODES.failed);
});
