/**
 * `ftguard pipeline`: the scan pipeline on this machine — a local S3-compatible
 * server, the synthesized state machine run in-process with the same handlers,
 * the backdoor-scan job as a child process (lib/local).
 */
import { createWriteStream, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, InvalidArgumentError } from "commander";
import { FtguardError } from "../core/errors";
import type * as LocalDemo from "../local/demo";
import { repositoryRoot } from "../local/package-root";
import type * as LocalPipelineModule from "../local/pipeline";
import { type Io, printJson, processIo, runCommand } from "./io";

interface PipelineFlags {
	port: number;
	dataDir?: string;
	policy?: string;
	demo?: boolean;
	once?: boolean;
	json?: boolean;
	monitorBucket?: string;
	provenanceKey?: string;
}

const port = (v: string): number => {
	const n = Number(v);
	if (!/^[0-9]+$/.test(v) || n > 65_535) throw new InvalidArgumentError("--port must be 0 to 65535");
	return n;
};

export function registerPipeline(program: Command, setExit: (code: number) => void): void {
	program
		.command("pipeline")
		.description(
			"run the scan pipeline locally: an S3-compatible server on 127.0.0.1; each commit marker uploaded to the checkpoints bucket runs the synthesized state machine",
		)
		.option("--port <n>", "port of the local S3 endpoint (0: any free port)", port, 4568)
		.option("--data-dir <dir>", "where the server keeps objects (default: a temporary directory, removed on exit)")
		.option("--policy <file>", "policy JSON (signers, reference data, backdoor settings); required without --demo")
		.option("--demo", "upload the bundled examples and print each verdict")
		.option("--once", "exit after the demo, or after the first verdict")
		.option(
			"--provenance-key <pem>",
			"EC private key that signs each verdict's provenance record (default: ./ftguard-provenance.key.pem, created if missing)",
		)
		.option("--json", "print one JSON document on stdout")
		.option(
			"--monitor-bucket <name>",
			"a bucket for inference logs (Data Capture, Bedrock, JSONL): each object written there goes to the output monitor, its windows in a local DynamoDB-compatible server; alarms are printed",
		)
		.action(async (flags: PipelineFlags) => {
			const io = processIo(Boolean(flags.json));
			const code = await runCommand(io, () => runPipeline(flags, io));
			setExit(code);
			// Stopped by a signal: exit here rather than by draining the event loop. Draining closes the signal
			// handlers first, and the launcher's copy of a terminal's Ctrl-C (bin/node-flags.mjs) arriving in that
			// moment would kill the process by SIGINT after a clean close; process.exit keeps them to the end.
			if (stopRequested) process.exit(code);
		});
}

/**
 * lib/local synthesizes the CDK stack in-process: aws-cdk-lib stays out of the CLI bundle (it would add ~150 MB
 * and half a minute to every build), so the local pipeline is loaded from the sources, through tsx when the CLI
 * itself runs bundled. The specifiers are computed so that esbuild leaves them alone.
 */
async function importSource<T>(root: string, path: string): Promise<T> {
	if (!import.meta.url.endsWith(".ts") && !tsxRegistered) {
		const api = "tsx/esm/api";
		const { register } = (await import(api)) as { register: () => unknown };
		register();
		tsxRegistered = true;
	}
	return (await import(pathToFileURL(join(root, path)).href)) as T;
}
let tsxRegistered = false;
/** A SIGINT/SIGTERM asked the running pipeline to stop. */
let stopRequested = false;

/**
 * Resolves on the first SIGINT/SIGTERM: the pipeline then closes (running scans finish first); one more a second
 * later stops at once (exit 130). A repeat within that second is the same Ctrl-C twice — the terminal sends it to
 * bin/ftguard.mjs's launcher, which passes it on (bin/node-flags.mjs) — and is not a second request.
 */
function untilStopSignal(): Promise<void> {
	return new Promise<void>((resolve) => {
		let first = 0;
		const stop = () => {
			if (first === 0) {
				first = Date.now();
				stopRequested = true;
				resolve();
			} else if (Date.now() - first > 1000) process.exit(130);
		};
		process.on("SIGINT", stop);
		process.on("SIGTERM", stop);
	});
}

async function runPipeline(flags: PipelineFlags, io: Io): Promise<0 | 1> {
	if (flags.demo && flags.policy) throw new FtguardError("USAGE", "--demo brings its own policy; leave out --policy");
	if (!flags.demo && !flags.policy) throw new FtguardError("USAGE", "give --policy <file> (or --demo)");
	// The handlers log and emit EMF metrics on stdout in AWS; here stdout is the command's output: they go to a file.
	const logPath = resolve("ftguard-pipeline.log");
	const handlerLog = createWriteStream(logPath, { flags: "a" });
	const root = repositoryRoot();
	const [{ LocalPipeline }, demo] = await Promise.all([
		importSource<typeof LocalPipelineModule>(root, "lib/local/pipeline.ts"),
		importSource<typeof LocalDemo>(root, "lib/local/demo.ts"),
	]);
	const setup = flags.demo ? demo.demoSetup(root) : undefined;
	let policy: unknown = setup?.policy;
	if (flags.policy) {
		try {
			policy = JSON.parse(readFileSync(flags.policy, "utf8"));
		} catch (e) {
			throw new FtguardError("USAGE", `--policy ${flags.policy}: ${(e as Error).message}`, { cause: e });
		}
	}
	const started = Date.now();
	const pipeline = await LocalPipeline.start({
		port: flags.port,
		...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
		// beside the handler log, and kept: records of earlier runs verify with the same public key
		provenanceKeyFile: resolve(flags.provenanceKey ?? "ftguard-provenance.key.pem"),
		policy,
		extraBuckets: [demo.TRUSTED_BUCKET],
		...(flags.monitorBucket !== undefined ? { monitorBucket: flags.monitorBucket } : {}),
		handlerLog,
		log: (line) => {
			if (!io.json) io.err(`  ${line}`);
		},
	});
	const buckets = pipeline.definition.buckets;
	if (pipeline.provenance) {
		io.err(
			`ftguard pipeline: provenance records signed with ${pipeline.provenance.keyFile}${pipeline.provenance.created ? " (new)" : ""}; verify with: ftguard provenance verify <record> --artefact <dir|s3 uri> --public-key ${pipeline.provenance.publicKeyFile}`,
		);
	}
	// Serving until stopped: the signal handlers go in before the endpoint is printed — whoever reads that line
	// may signal at once, and a signal before them would kill the process outright. (The demo and --once run
	// without them: a signal there ends the process, as a crash would; the next run rescans what it left.)
	const stopSignal = setup || flags.once ? undefined : untilStopSignal();
	io.err(
		`ftguard pipeline: S3 endpoint ${pipeline.endpoint} (path-style; access key S3RVER, secret key S3RVER); upload to s3://${buckets.checkpoints}/, reports in s3://${buckets.reports}/${flags.monitorBucket !== undefined ? `, inference logs to s3://${flags.monitorBucket}/` : ""}; handler logs and EMF metrics in ${logPath} (ready in ${((Date.now() - started) / 1000).toFixed(1)} s)`,
	);
	try {
		if (setup) {
			const results = await demo.runDemo(pipeline, setup);
			const ok = results.every((r) => r.ok);
			if (io.json) printJson(io, { ok, endpoint: pipeline.endpoint, results });
			else {
				io.out(demo.renderDemoTable(results));
				io.out(ok ? "demo: every verdict as expected" : "demo: UNEXPECTED VERDICT above");
			}
			if (flags.once) return ok ? 0 : 1;
		}
		if (flags.once) {
			const v = await new Promise<LocalPipelineModule.LocalVerdict>((resolve) => {
				const off = pipeline.onVerdict((verdict) => {
					off();
					resolve(verdict);
				});
			});
			if (io.json) printJson(io, { ok: v.status === "PROMOTABLE", endpoint: pipeline.endpoint, verdicts: [v] });
			else io.out(`${v.markerKey}: ${v.status}${because(v)}`);
			return v.status === "PROMOTABLE" ? 0 : 1;
		}
		pipeline.onVerdict((v) => {
			if (io.json) io.out(JSON.stringify(v));
			else io.out(`${v.markerKey}: ${v.status} in ${v.seconds.toFixed(1)} s${because(v)}`);
		});
		await (stopSignal as Promise<void>);
		return 0;
	} finally {
		await pipeline.close();
		await new Promise((r) => handlerLog.end(r));
	}
}

/** A verdict's reasons and notes (a waived scan) for one text line. */
function because(v: LocalPipelineModule.LocalVerdict): string {
	const parts = [...v.reasons, ...(v.notes ?? []).map((n) => `note: ${n}`)];
	return parts.length ? ` (${parts.join("; ")})` : "";
}
