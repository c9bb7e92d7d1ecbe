/**
 * Preloaded into every local batch job (`node --import`, before the job's own code). The job runs in a process group
 * of its own, so that cancelling it (batch-runner.ts: a state timeout, a stopped execution) kills all it started,
 * as TerminateJob stops a whole container. Being out of the pipeline's group, it would outlive a pipeline killed
 * outright (SIGKILL): its stdin is the pipeline's pipe, which the kernel closes when the pipeline dies, and then this
 * ends the group — a job dies with its host.
 */
import process from "node:process";

const end = () => {
	try {
		process.kill(-process.pid, "SIGKILL");
	} catch {
		process.exit(137);
	}
};
process.stdin.once("end", end).once("close", end).once("error", end);
process.stdin.resume();
// the job ends when its own work is done: this watch must not keep it alive
process.stdin.unref?.();
