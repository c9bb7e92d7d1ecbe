// Node flags a command needs from the start of its process, and the re-run that
// gives them to it. Used by bin/ftguard.mjs (for `ftguard pipeline`) and by
// bench/pipeline.ts, so the benchmark measures the process users run.
//
// Why `ftguard pipeline` runs with --single-threaded-gc: it streams every
// checkpoint through three busy threads (the object server, the handler receiving
// the bytes, the hashing worker), and V8's parallel and concurrent GC helper
// threads — all that 1 GiB of socket buffers keeps them busy with — compete with
// those three for cores. On 2 vCPUs (npm run bench:pipeline -- --reps 7, 1 GiB,
// alternating) upload → verdict took 1.55 s and 1.41 s with the flag, 2.38 s and
// 2.02 s without, the reps without it drifting up to 4 s. GC then runs on the thread that allocates,
// and pauses stay short: the heaps are tens of MB.
// A V8 GC flag cannot be set once the isolate runs (v8.setFlagsFromString of these
// crashes Node 20 at the next GC) and NODE_OPTIONS does not accept it; hence a
// child process.
import { spawn } from "node:child_process";

export const PIPELINE_NODE_FLAGS = ["--single-threaded-gc"];

/** Whether this process was started with every one of `flags`. */
export function startedWith(flags) {
	return flags.every((f) => process.execArgv.includes(f));
}

/**
 * Runs this same script again in a child process with `flags` added, and ends this process as the child ends
 * (same exit code, or the same signal). Signals sent to this process are passed on: the child decides what they
 * mean. Where a terminal sends Ctrl-C to both, the child sees it twice, within milliseconds (lib/cli/pipeline.ts
 * counts that as one).
 */
export function rerunWith(flags) {
	const child = spawn(process.execPath, [...flags, ...process.execArgv, ...process.argv.slice(1)], {
		stdio: "inherit",
	});
	const signals = ["SIGINT", "SIGTERM", "SIGHUP"];
	for (const s of signals) {
		process.on(s, () => {
			if (child.exitCode === null && child.signalCode === null) child.kill(s);
		});
	}
	child.on("error", (e) => {
		process.stderr.write(`ftguard: INTERNAL: cannot start node again with ${flags.join(" ")}: ${e.message}\n`);
		process.exit(2);
	});
	child.on("exit", (code, signal) => {
		if (signal) {
			for (const s of signals) process.removeAllListeners(s);
			process.kill(process.pid, signal);
			return;
		}
		process.exit(code ?? 2);
	});
}
