/**
 * `ftguard pipeline` runs in a child process that bin/ftguard.mjs starts with the
 * pipeline's V8 flags (bin/node-flags.mjs). The child must really get the flags,
 * and the launcher must behave as the pipeline itself would: signals reach the
 * pipeline, which closes cleanly (exit 0) also when a terminal's Ctrl-C reaches
 * it twice (from the terminal, and passed on by the launcher); its exit status
 * or fatal signal is the launcher's.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PIPELINE_NODE_FLAGS } from "../../bin/node-flags.mjs";
import { createDemoSigner } from "../../lib/local/demo-signer";
import { REPO, waitForStderr } from "../helpers/cli";

const work = mkdtempSync(join(tmpdir(), "ftguard-signals-"));
const POLICY = join(work, "policy.json");
writeFileSync(POLICY, JSON.stringify({ signers: [{ kind: "public-key", pem: createDemoSigner().publicKeyPem }] }));

function launch(): ChildProcess {
	return spawn(process.execPath, [join(REPO, "bin/ftguard.mjs"), "pipeline", "--port", "0", "--policy", POLICY], {
		cwd: work,
		detached: true,
		stdio: ["ignore", "ignore", "pipe"],
		env: { ...process.env, FTGUARD_DEBUG: "" },
	});
}

/** The processes whose parent is `pid`, with their command lines (from /proc). */
function childrenOf(pid: number): { pid: number; argv: string[] }[] {
	const out: { pid: number; argv: string[] }[] = [];
	for (const entry of readdirSync("/proc")) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
			const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
			if (ppid === pid) {
				out.push({ pid: Number(entry), argv: readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0") });
			}
		} catch {
			// the process ended while we looked
		}
	}
	return out;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
	return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

async function ready(child: ChildProcess): Promise<{ pid: number; argv: string[] }> {
	await waitForStderr(child, /S3 endpoint http:\/\/127\.0\.0\.1:\d+/, 60_000);
	const kids = childrenOf(child.pid as number);
	expect(kids).toHaveLength(1);
	return kids[0] as { pid: number; argv: string[] };
}

describe.skipIf(process.platform !== "linux")("ftguard pipeline's launcher", () => {
	it("runs the pipeline with the pipeline's V8 flags; SIGTERM to the launcher closes it cleanly (exit 0)", async () => {
		const child = launch();
		const pipeline = await ready(child);
		for (const flag of PIPELINE_NODE_FLAGS) expect(pipeline.argv).toContain(flag);
		expect(pipeline.argv).toContain("pipeline");
		const done = exited(child);
		child.kill("SIGTERM");
		expect(await done).toEqual({ code: 0, signal: null });
	}, 90_000);

	it("a terminal's Ctrl-C (SIGINT to the whole group, so the pipeline hears it twice) is one request: exit 0", async () => {
		const child = launch();
		await ready(child);
		const done = exited(child);
		process.kill(-(child.pid as number), "SIGINT");
		expect(await done).toEqual({ code: 0, signal: null });
	}, 90_000);

	it("copies of that Ctrl-C arriving all through its close (a launcher slow to pass it on) still end in exit 0", async () => {
		const child = launch();
		const pipeline = await ready(child);
		const done = exited(child);
		process.kill(-(child.pid as number), "SIGINT");
		// a copy every 2 ms until it is gone — within the second that counts them as the same Ctrl-C
		const started = Date.now();
		const burst = setInterval(() => {
			try {
				if (Date.now() - started < 800) process.kill(pipeline.pid, "SIGINT");
			} catch {
				// gone
			}
		}, 2);
		try {
			expect(await done).toEqual({ code: 0, signal: null });
		} finally {
			clearInterval(burst);
		}
	}, 90_000);

	it("the pipeline killed by a signal: the launcher ends with the same signal", async () => {
		const child = launch();
		const pipeline = await ready(child);
		const done = exited(child);
		process.kill(pipeline.pid, "SIGKILL");
		expect(await done).toEqual({ code: null, signal: "SIGKILL" });
	}, 90_000);
});
