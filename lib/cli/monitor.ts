/** `ftguard monitor`: replay inference logs through the output monitor and report when and why it would have alarmed. */
import { createReadStream } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { createGunzip } from "node:zlib";
import { type Command, InvalidArgumentError } from "commander";
import { FtguardError, toFtguardError } from "../core/errors";
import type { MonitorAlarm, OutputMonitor } from "../core/monitor";
import type { LogFormat } from "../core/monitor/formats";
import { type Io, printJson, processIo, runCommand, stepProgress } from "./io";

interface MonitorFlags {
	format: "auto" | LogFormat;
	policy?: string;
	modelVersion?: string;
	json?: boolean;
	follow?: boolean;
}

const FORMATS = ["auto", "jsonl", "sagemaker-capture", "bedrock-invocation", "cloudwatch-export"];
/** alarms listed in the report; the metrics count them all */
const MAX_LISTED_ALARMS = 1000;
const MAX_MALFORMED_EXAMPLES = 10;
const CHUNK = 1 << 20;
/** A log line longer than this is malformed (an inference record is far shorter; the monitor reads text, not files). */
const MAX_LINE_CHARS = 32 << 20;

export function registerMonitor(program: Command, setExit: (code: number) => void): void {
	program
		.command("monitor")
		.description(
			"replay inference logs through the production output monitor: repeated outputs, bursts, suspicious patterns, length anomalies",
		)
		.argument(
			"<logs...>",
			"log files (optionally gzip): JSON lines, SageMaker Data Capture, Bedrock invocation logs, CloudWatch exports",
		)
		.option(
			"--format <format>",
			`log format: ${FORMATS.join(", ")}`,
			(v: string) => {
				if (!FORMATS.includes(v)) throw new InvalidArgumentError(`--format must be one of ${FORMATS.join(", ")}`);
				return v;
			},
			"auto",
		)
		.option(
			"--policy <file.json>",
			"policy file (its monitor section: window, thresholds, patterns, per-version settings)",
		)
		.option(
			"--model-version <name>",
			"model version of records that name none (JSON lines without model_version; Data Capture files outside their S3 layout)",
		)
		.option("--json", "machine-readable output")
		.option(
			"--follow",
			"keep reading the (one) log file as it grows, printing alarms as they fire; Ctrl-C ends with the report",
		)
		.addHelpText(
			"after",
			`
Alarms: repetition (more of the window's outputs repeat, exactly or nearly, than the policy allows),
burst (one output, or a word new to the version's outputs and absent from the requests, suddenly
spreads compared with its own history), pattern (an output matches the suspicious-pattern list),
length (outputs far outside the length range learned from the traffic). Repetition and burst alarms
name the candidate trigger: the rare input n-gram shared by the inputs behind the repeated output
(or the spreading word). A malformed line is counted and reported, never fatal; so is a Bedrock
record whose output body was delivered to S3 (outputBodyS3Path), which is read only in AWS.
Exit codes: 0 no alarm, 1 alarms, 2 could not read a log (or no line of it was a record).
Rules, configuration and formats: docs/monitor.md.`,
		)
		.action(async (logs: string[], flags: MonitorFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => monitorCommand(io, logs, flags)));
		});
}

interface Report {
	records: number;
	alarms: MonitorAlarm[];
	alarmsTotal: number;
	malformed: number;
	malformedExamples: { source: string; reason: string }[];
	formats: Record<string, LogFormat | "unrecognised">;
}

async function monitorCommand(io: Io, logs: string[], flags: MonitorFlags): Promise<0 | 1 | 2> {
	if (flags.follow && logs.length !== 1) throw new FtguardError("USAGE", "--follow reads exactly one log file");
	const [{ OutputMonitor, MAX_VERSIONS }, formats, { defaultPolicy, parsePolicy }] = await Promise.all([
		import("../core/monitor"),
		import("../core/monitor/formats"),
		import("../core/policy"),
	]);
	let policy = defaultPolicy();
	if (flags.policy !== undefined) {
		let text: string;
		try {
			text = await readFile(flags.policy, "utf8");
		} catch (e) {
			throw toFtguardError(e, "cannot read the policy file");
		}
		policy = parsePolicy(text, flags.policy);
	}
	const monitor = new OutputMonitor(policy.monitor);
	const report: Report = { records: 0, alarms: [], alarmsTotal: 0, malformed: 0, malformedExamples: [], formats: {} };
	const progress = stepProgress(io);

	// every file is opened before any is replayed: an unreadable one is exit 2 before a partial report
	const sizes: number[] = [];
	for (const path of logs) {
		try {
			const s = await stat(path);
			if (!s.isFile()) throw new FtguardError("IO_ERROR", `${path}: not a regular file`);
			sizes.push(s.size);
			(await open(path, "r")).close();
		} catch (e) {
			throw toFtguardError(e, `cannot read ${path}`);
		}
	}
	const totalBytes = sizes.reduce((a, b) => a + b, 0);
	let doneBytes = 0;

	const onAlarms = (alarms: MonitorAlarm[]) => {
		for (const a of alarms) {
			report.alarmsTotal++;
			if (report.alarms.length < MAX_LISTED_ALARMS) report.alarms.push(a);
			if (flags.follow) {
				if (io.json) io.out(JSON.stringify({ alarm: a }));
				else io.out(alarmLine(a));
			}
		}
	};

	for (const [i, path] of logs.entries()) {
		const ctx = { defaultVersion: flags.modelVersion ?? formats.sagemakerVersionFromPath(path) };
		let format: LogFormat | undefined = flags.format === "auto" ? undefined : flags.format;
		let lineNo = 0;
		const onLine = (line: string | null) => {
			lineNo++;
			if (line === null) {
				countMalformed(report, `${path}:${lineNo}`, `a line longer than ${MAX_LINE_CHARS} characters`);
				return;
			}
			if (format === undefined) {
				if (line.trim().length === 0) return;
				format = formats.detectFormat(line);
				if (format === undefined) {
					countMalformed(report, `${path}:${lineNo}`, "format not recognised (give --format)");
					return;
				}
				report.formats[path] = format;
			}
			let r = formats.parseLine(format, line, ctx);
			// a Bedrock body delivered to S3: offline it cannot be read (an output in S3 is malformed, with its path)
			if (r.kind === "deferred") r = formats.offlineResult(r.record);
			if (r.kind === "blank") return;
			if (r.kind === "malformed") {
				countMalformed(report, `${path}:${lineNo}`, r.reason);
				return;
			}
			const index = report.records++;
			onAlarms(
				monitor.observe({
					modelVersion: r.record.modelVersion,
					input: r.record.input,
					output: r.record.output,
					ref: { index, source: `${path}:${lineNo}` },
				}),
			);
		};
		const base = doneBytes;
		const follow = flags.follow === true && i === logs.length - 1;
		await readLines(path, onLine, (bytes) => progress.update("monitor", base + bytes, totalBytes), follow);
		doneBytes += sizes[i] as number;
		report.formats[path] ??= format ?? "unrecognised";
	}
	progress.done();
	if (report.records === 0 && report.malformed > 0)
		throw new FtguardError(
			"DATA_INVALID",
			`no line of the logs is an inference record (${report.malformed} malformed; first: ${report.malformedExamples[0]?.source}: ${report.malformedExamples[0]?.reason})`,
		);
	render(io, report, monitor);
	if (report.alarmsTotal > 0) return 1;
	// records of versions past the monitor's limit were counted, not watched: not a clean bill (fail closed)
	const unwatched = monitor.metrics().unwatched_records;
	if (unwatched > 0) {
		io.err(
			`ftguard: ${unwatched} records of model versions beyond the first ${MAX_VERSIONS} could not be watched: replay them separately`,
		);
		return 2;
	}
	return 0;
}

function countMalformed(report: Report, source: string, reason: string): void {
	report.malformed++;
	if (report.malformedExamples.length < MAX_MALFORMED_EXAMPLES) report.malformedExamples.push({ source, reason });
}

/**
 * Calls `onLine` for every line of the file (gunzipped when it starts with the gzip magic). With `follow`, keeps
 * reading what is appended until SIGINT/SIGTERM; a file that shrinks (rotated or truncated) is read again from
 * its start.
 */
async function readLines(
	path: string,
	onLine: (line: string | null) => void,
	onBytes: (bytes: number) => void,
	follow: boolean,
): Promise<void> {
	const decoder = new StringDecoder("utf8");
	// the unfinished line, in pieces (joined once it ends: a line spanning many chunks costs its length, not its
	// length squared); past MAX_LINE_CHARS it is dropped and reported as one malformed line
	let pieces: string[] = [];
	let pending = 0;
	let overlong = false;
	const emit = (last: string) => {
		if (overlong) onLine(null);
		else {
			const line = pieces.length > 0 ? pieces.join("") + last : last;
			onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
		}
		pieces = [];
		pending = 0;
		overlong = false;
	};
	const feed = (text: string) => {
		let start = 0;
		for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
			emit(text.slice(start, nl));
			start = nl + 1;
		}
		if (start < text.length && !overlong) {
			pieces.push(text.slice(start));
			pending += text.length - start;
			if (pending > MAX_LINE_CHARS) {
				overlong = true;
				pieces = [];
			}
		}
	};
	const fh = await open(path, "r").catch((e) => {
		throw toFtguardError(e, `cannot read ${path}`);
	});
	try {
		const head = Buffer.alloc(2);
		const { bytesRead } = await fh.read(head, 0, 2, 0);
		const gzip = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
		if (gzip) {
			if (follow) throw new FtguardError("USAGE", `--follow cannot tail a gzip file (${path})`);
			let read = 0;
			const stream = createReadStream(path, { highWaterMark: CHUNK });
			stream.on("data", (b) => {
				read += b.length;
			});
			const gunzip = stream.pipe(createGunzip());
			stream.on("error", (e) => gunzip.destroy(e));
			try {
				for await (const chunk of gunzip) {
					feed(decoder.write(chunk as Buffer));
					onBytes(read);
				}
			} catch (e) {
				throw toFtguardError(e, `cannot read ${path}`);
			}
		} else {
			const buf = Buffer.allocUnsafe(CHUNK);
			let pos = 0;
			let stop = false;
			const onSignal = () => {
				stop = true;
			};
			if (follow) {
				process.once("SIGINT", onSignal);
				process.once("SIGTERM", onSignal);
			}
			try {
				for (;;) {
					const { bytesRead: n } = await fh.read(buf, 0, CHUNK, pos);
					if (n > 0) {
						pos += n;
						feed(decoder.write(buf.subarray(0, n)));
						onBytes(pos);
						continue;
					}
					if (!follow || stop) break;
					// tail: wait for the file to grow (or be replaced by a shorter one)
					await new Promise((r) => setTimeout(r, 500));
					if (stop) break;
					const size = (await fh.stat()).size;
					if (size < pos) {
						pos = 0;
						pieces = [];
						pending = 0;
						overlong = false;
					}
				}
			} finally {
				process.off("SIGINT", onSignal);
				process.off("SIGTERM", onSignal);
			}
		}
		feed(decoder.end());
		if (pending > 0 || overlong) emit("");
	} finally {
		await fh.close();
	}
}

function alarmLine(a: MonitorAlarm): string {
	const where = a.record?.source ?? "";
	const trig = a.candidate_trigger !== undefined ? ` [candidate trigger: "${a.candidate_trigger}"]` : "";
	return `ALARM ${a.type} ${a.model_version} at record ${a.at_record}${where ? ` (${where})` : ""}: ${a.detail}${trig}`;
}

function render(io: Io, report: Report, monitor: OutputMonitor): void {
	const m = monitor.metrics();
	const metrics = {
		malformed: report.malformed,
		malformed_examples: report.malformedExamples,
		alarms_total: report.alarmsTotal,
		alarms_listed: report.alarms.length,
		formats: report.formats,
		unwatched_records: m.unwatched_records,
		versions: m.versions,
	};
	if (io.json) {
		printJson(io, { records: report.records, alarms: report.alarms, metrics });
		return;
	}
	for (const a of report.alarms) io.out(alarmLine(a));
	if (report.alarmsTotal > report.alarms.length)
		io.out(`… ${report.alarmsTotal - report.alarms.length} more alarms (--json lists the first ${MAX_LISTED_ALARMS})`);
	for (const [v, x] of Object.entries(m.versions))
		io.out(
			`${v}: ${x.records} records, repetition ${(100 * x.repetition_rate).toFixed(1)}% now (max ${(100 * x.max_repetition_rate).toFixed(1)}%), top output ${(100 * x.max_top_output_share).toFixed(1)}% at most, ${x.suspicious_output_total} suspicious outputs, ${x.length_outliers_in_window} length outliers in the window`,
		);
	for (const e of report.malformedExamples) io.out(`malformed ${e.source}: ${e.reason}`);
	io.out(
		`${report.records} records${report.malformed > 0 ? `, ${report.malformed} malformed lines` : ""}: ${report.alarmsTotal === 0 ? "no alarm" : `${report.alarmsTotal} alarm${report.alarmsTotal === 1 ? "" : "s"}`}`,
	);
}
