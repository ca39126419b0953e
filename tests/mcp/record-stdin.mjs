#!/usr/bin/env node
// A transparent stdio shim that records what a server receives:
//
//   node record-stdin.mjs <logfile> -- <command> <args...>
//
// Spawns the command, copies this process's stdin to the child's stdin unchanged (chunks are
// forwarded as they arrive) and appends every line of it to <logfile> (written synchronously,
// so the log is complete as soon as the child could have read the line; a last line without a
// newline is appended at end of input). The child's stdout is piped to this process's stdout,
// its stderr is inherited. SIGTERM/SIGINT/SIGHUP are forwarded to the child; this process exits
// with the child's exit status (128 + signal number if the child was killed by a signal).
//
// Used by the gateway tests to prove that a denied tools/call never reached the server.
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync } from "node:fs";
import { constants } from "node:os";
import { StringDecoder } from "node:string_decoder";

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
if (sep !== 1 || argv.length < 3) {
    process.stderr.write("usage: node record-stdin.mjs <logfile> -- <command> <args...>\n");
    process.exit(2);
}
const logfile = argv[0];
const [command, ...args] = argv.slice(2);

// Create (or keep) the log file before the child starts, so an empty log means "nothing received".
closeSync(openSync(logfile, "a"));

const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });

child.on("error", (err) => {
    process.stderr.write(`record-stdin: cannot start ${command}: ${err.message}\n`);
    process.exit(127);
});

// The child may exit while input is still arriving: writes to its closed stdin are not an error here.
child.stdin.on("error", () => {});

const decoder = new StringDecoder("utf8"); // a character split across chunks stays whole in the log
let pending = "";
process.stdin.on("data", (chunk) => {
    const text = pending + decoder.write(chunk);
    const end = text.lastIndexOf("\n");
    if (end >= 0) {
        appendFileSync(logfile, text.slice(0, end + 1));
        pending = text.slice(end + 1);
    } else {
        pending = text;
    }
    if (!child.stdin.destroyed) child.stdin.write(chunk);
});
process.stdin.on("end", () => {
    pending += decoder.end();
    if (pending) appendFileSync(logfile, pending + "\n");
    pending = "";
    child.stdin.end();
});

child.stdout.pipe(process.stdout);
process.stdout.on("error", () => {}); // the reader went away; the child's exit still decides ours

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    process.on(signal, () => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
}

// 'close' fires after the child exited and its stdout was drained, so nothing is cut off.
child.on("close", (code, signal) => {
    process.stdin.destroy();
    if (signal) process.exitCode = 128 + (constants.signals[signal] ?? 0);
    else process.exitCode = code ?? 1;
});
