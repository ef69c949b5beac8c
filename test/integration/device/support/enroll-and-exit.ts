/**
 * Child process: enrolls the devices whose AgentOptions arrive as a JSON array on stdin, one after
 * the other, prints their results as JSON on stdout and then does nothing: the process must end
 * by itself. Should anything keep it alive, a watchdog (which does not hold the process itself)
 * prints what is still open on stderr and exits with code 2.
 */
import { DeviceAgent, type AgentOptions } from '../../../../device/agent';

const WATCHDOG_MS = 20_000;

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

async function main(): Promise<void> {
  const devices = JSON.parse(await readStdin()) as AgentOptions[];
  const results = [];
  for (const options of devices) results.push(await new DeviceAgent(options).enroll());
  process.stdout.write(JSON.stringify(results));
  setTimeout(() => {
    process.stderr.write(`still open: ${JSON.stringify(process.getActiveResourcesInfo())}\n`);
    process.exit(2);
  }, WATCHDOG_MS).unref();
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
