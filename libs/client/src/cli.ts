#!/usr/bin/env node
/** Entry of the `relu-lstm` command (see cli/args.ts for the usage). */
import { runCli } from './cli/main';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// Ctrl-C while watching: end the progress line and say the job goes on (cancel is a separate command).
process.once('SIGINT', () => {
  process.stderr.write(
    '\nrelu-lstm: interrupted; the job goes on (relu-lstm watch <id> follows it, relu-lstm cancel <id> stops it)\n',
  );
  process.exit(130);
});

runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  stdin: readStdin,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`relu-lstm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
