/** Runs the real CLI as a user would (spawned, through the published bin entry). */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Real model-signing vectors, read from ../shared at test time (never copied into the repo). */
export const VECTORS = resolve(REPO, "../shared/vectors/model-signing");

export interface CliResult {
	code: number | null;
	stdout: string;
	stderr: string;
	json: () => Record<string, unknown>;
}

export function ftguard(
	args: string[],
	options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
	return new Promise((resolvePromise, reject) => {
		const child = spawn(process.execPath, [join(REPO, "bin/ftguard.mjs"), ...args], {
			cwd: options.cwd ?? REPO,
			env: { ...process.env, FTGUARD_DEBUG: "", ...options.env },
			stdio: ["ignore", "pipe", "pipe"],
		});
		let stdout = "";
		let stderr = "";
		child.stdout.on("data", (d) => {
			stdout += d;
		});
		child.stderr.on("data", (d) => {
			stderr += d;
		});
		child.on("error", reject);
		child.on("close", (code) =>
			resolvePromise({ code, stdout, stderr, json: () => JSON.parse(stdout) as Record<string, unknown> }),
		);
	});
}

/** A writable copy of one vector folder (plus keys), for tampering tests. */
export function copyVector(name: string): string {
	const dir = mkdtempSync(join(tmpdir(), `ftguard-${name}-`));
	cpSync(join(VECTORS, name), join(dir, name), { recursive: true });
	return join(dir, name);
}

/** Resolves with the first match of `pattern` in what `child` writes to stderr; rejects on exit or timeout. */
export function waitForStderr(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
	return new Promise((resolve, reject) => {
		let seen = "";
		const timer = setTimeout(
			() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; stderr:\n${seen}`)),
			timeoutMs,
		);
		const onData = (d: Buffer) => {
			seen += d.toString();
			const m = pattern.exec(seen);
			if (m) {
				clearTimeout(timer);
				child.stderr?.off("data", onData);
				resolve(m);
			}
		};
		child.stderr?.on("data", onData);
		child.once("exit", (code) => reject(new Error(`the process exited (${code}) before ${pattern}:\n${seen}`)));
	});
}

/**
 * A short real backdoor scan of the digits8 BadNets fixture (class 5 backdoored) written to `out` (report.json and
 * trigger PNGs): the input the HTML report's tests render. Exit 1 (suspect).
 */
export function quickBackdoorScan(out: string, extra: readonly string[] = []): ReturnType<typeof ftguard> {
	const d8 = join(REPO, "test/fixtures/backdoor/digits8");
	return ftguard([
		"backdoor",
		join(d8, "mlp-badnets-t5-p10.onnx"),
		"--data",
		join(d8, "ref-x.npy"),
		"--labels",
		join(d8, "ref-y.npy"),
		...extra,
		"--out",
		out,
	]);
}
