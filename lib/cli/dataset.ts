/** `ftguard dataset`: scan fine-tuning data for poisoning before training, and record which version it is. */
import { open, writeFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import type { DatasetReport } from "../core/dataset/scan";
import { FtguardError, toFtguardError } from "../core/errors";
import { errorJson, type Io, printJson, processIo, readArgText, runCommand } from "./io";
import { VERSION } from "./version";

interface DatasetFlags {
	format: "auto" | "instruction" | "chat" | "text" | "fields";
	fields?: string;
	json?: boolean;
	sarif?: string;
	lineageOut?: string;
	lineageBase?: string;
	policy?: string;
	failOn?: "low" | "medium" | "high" | "critical";
}

const FORMATS = ["auto", "instruction", "chat", "text", "fields"];
const SEVERITIES = ["low", "medium", "high", "critical"];

function oneOf(name: string, allowed: readonly string[]) {
	return (v: string) => {
		if (!allowed.includes(v)) throw new InvalidArgumentError(`${name} must be one of ${allowed.join(", ")}`);
		return v;
	};
}

export function registerDataset(program: Command, setExit: (code: number) => void): void {
	program
		.command("dataset")
		.description(
			"scan fine-tuning data for poisoning (triggers, injected outputs, invisible and homoglyph characters, duplicates and label flips) and write its lineage",
		)
		.argument("<paths...>", "dataset files (.jsonl, .json, .parquet, optionally .gz) or directories of shards")
		.option(
			"--format <format>",
			"record layout: auto, instruction, chat, text, fields",
			oneOf("--format", FORMATS),
			"auto",
		)
		.option("--fields <spec>", "the fields of another layout: prompt=FIELD,…,completion=FIELD (dotted paths allowed)")
		.option("--json", "machine-readable output")
		.option("--sarif <out.sarif>", "also write SARIF 2.1.0 for code-scanning dashboards")
		.option("--lineage-out <file>", "write the dataset version manifest (per-file SHA-256, record count, Merkle root)")
		.option("--lineage-base <file>", "an earlier version's manifest: report the records added and removed since")
		.option("--policy <file.json>", "policy file (its dataset section: detectors, thresholds, failOn)")
		.option(
			"--fail-on <severity>",
			"lowest severity that fails the scan (default from the policy: medium)",
			oneOf("--fail-on", SEVERITIES),
		)
		.addHelpText(
			"after",
			`
Every finding names its records (0-based, in file order across the paths given) so a curator can
drop exactly them. Exit codes: 0 no finding at or above the fail-on severity, 1 such a finding,
2 could not scan (not a dataset, unreadable). Detectors and thresholds: docs/dataset.md.`,
		)
		.action(async (paths: string[], flags: DatasetFlags) => {
			const io = processIo(Boolean(flags.json));
			const crashed = (raw: unknown) => {
				// an error no promise of the scan awaited (a stream's or a worker's): Node would exit 1, "a finding"
				const e = uncheckable(raw);
				if (io.json) printJson(io, errorJson(e));
				io.err(`ftguard: ${e.code}: ${e.message}`);
				process.exit(e.exitCode);
			};
			process.on("uncaughtException", crashed);
			process.on("unhandledRejection", crashed);
			try {
				setExit(
					await runCommand(io, async () => {
						try {
							return await dataset(io, paths, flags);
						} catch (e) {
							throw uncheckable(e);
						}
					}),
				);
			} finally {
				process.off("uncaughtException", crashed);
				process.off("unhandledRejection", crashed);
			}
		});
}

/**
 * What anything thrown by `ftguard dataset` becomes. Its findings reach the user only through the report (exit 1);
 * an error means the data could not be checked, so it is always exit 2 with a stable code, even where the shared
 * errno mapping gives a code of the finding family (a symlink loop is SYMLINK_REFUSED elsewhere, an I/O failure here).
 */
export function uncheckable(raw: unknown): FtguardError {
	const e = toFtguardError(raw);
	if (e.exitCode === 2) return e;
	return new FtguardError(e.code === "SYMLINK_REFUSED" ? "IO_ERROR" : "INTERNAL", e.message, {
		cause: raw,
		...(e.details ? { details: e.details } : {}),
	});
}

async function dataset(io: Io, paths: string[], flags: DatasetFlags): Promise<0 | 1> {
	if (flags.format === "fields" && flags.fields === undefined)
		throw new FtguardError("USAGE", "--format fields needs --fields");
	if (flags.fields !== undefined && flags.format !== "fields" && flags.format !== "auto")
		throw new FtguardError("USAGE", "--fields goes with --format fields");
	const [{ defaultPolicy, parsePolicy }, { scanDataset }, { datasetFiles }, { parseFieldMap, RecordError }, lineage] =
		await Promise.all([
			import("../core/policy"),
			import("../core/dataset/scan"),
			import("../core/dataset/reader"),
			import("../core/dataset/records"),
			import("../core/dataset/lineage"),
		]);
	const policy =
		flags.policy === undefined
			? defaultPolicy()
			: parsePolicy(await readArgText(flags.policy, "the policy file"), flags.policy);
	const datasetPolicy = flags.failOn ? { ...policy.dataset, failOn: flags.failOn } : policy.dataset;
	let fields: ReturnType<typeof parseFieldMap> | undefined;
	try {
		fields = flags.fields === undefined ? undefined : parseFieldMap(flags.fields);
	} catch (e) {
		if (e instanceof RecordError) throw new FtguardError("USAGE", e.message);
		throw e;
	}
	let files: string[];
	try {
		files = await datasetFiles(paths);
	} catch (e) {
		throw toFtguardError(e, "cannot read the dataset");
	}
	const base =
		flags.lineageBase === undefined
			? undefined
			: parseLineage(await readArgText(flags.lineageBase, "--lineage-base"), flags.lineageBase);
	const progress = progressOf(io);
	let report: DatasetReport;
	try {
		report = await scanDataset({
			files,
			format: fields !== undefined ? "fields" : flags.format,
			...(fields !== undefined ? { fields } : {}),
			policy: datasetPolicy,
			onProgress: progress.update,
		});
	} finally {
		progress.done();
	}
	const changes = base === undefined ? undefined : lineage.diffLineage(base, report.lineage);
	if (flags.lineageOut !== undefined)
		await writeOut(flags.lineageOut, lineagePieces(report.lineage, report.lineage.leaf_prefixes), "--lineage-out");
	if (flags.sarif !== undefined) {
		const { datasetSarif } = await import("../core/dataset/sarif");
		await writeOut(flags.sarif, `${JSON.stringify(datasetSarif(report, VERSION), null, 2)}\n`, "--sarif");
	}
	if (io.json) printReport(io, { ...report, ...(changes ? { changes } : {}) });
	else render(io, report, changes);
	return report.ok ? 0 : 1;
}

function parseLineage(text: string, source: string): { leaf_prefixes: string } {
	try {
		const v = JSON.parse(text) as { leaf_prefixes?: unknown };
		if (typeof v.leaf_prefixes === "string") return { leaf_prefixes: v.leaf_prefixes };
	} catch {}
	throw new FtguardError("USAGE", `${source}: not a dataset lineage manifest (written by --lineage-out)`);
}

/**
 * A document holding a lineage, as JSON (2-space layout) in pieces: the leaf prefixes (base64, 11 bytes a record:
 * 107 MB at 10^7 records) are written as they are, not copied into the document's string and its bytes once more.
 */
export function lineagePieces(value: object, prefixes: string, slice = 1 << 20): string[] {
	const text = JSON.stringify(value, (k, v) => (k === "leaf_prefixes" ? PREFIXES_MARK : v), 2);
	const [head, tail] = text.split(JSON.stringify(PREFIXES_MARK));
	if (head === undefined || tail === undefined) return [`${JSON.stringify(value, null, 2)}\n`];
	const out = [head, '"'];
	for (let i = 0; i < prefixes.length; i += slice) out.push(prefixes.slice(i, i + slice));
	out.push('"', tail, "\n");
	return out;
}

const PREFIXES_MARK = "\u0000leaf prefixes\u0000";

function printReport(io: Io, report: DatasetReport & { changes?: unknown }): void {
	const write = io.write;
	if (write === undefined) printJson(io, report);
	else for (const piece of lineagePieces(report, report.lineage.leaf_prefixes)) write(piece);
}

/** Writes a file, as one text or in pieces (a document holding a lineage: see `lineagePieces`). */
async function writeOut(path: string, text: string | readonly string[], what: string): Promise<void> {
	try {
		if (typeof text === "string") await writeFile(path, text);
		else {
			const fh = await open(path, "w");
			try {
				for (const piece of text) await fh.write(piece);
			} finally {
				await fh.close();
			}
		}
	} catch (e) {
		throw toFtguardError(e, `cannot write ${what} ${path}`);
	}
}

/** Records/s and MB/s on a TTY, redrawn at most ten times a second. */
function progressOf(io: Io): { update: (records: number, bytes: number) => void; done: () => void } {
	if (!io.interactive) return { update: () => {}, done: () => {} };
	const started = performance.now();
	let last = 0;
	let drawn = false;
	return {
		update(records, bytes) {
			const now = performance.now();
			if (now - last < 100) return;
			last = now;
			const secs = Math.max(0.001, (now - started) / 1000);
			process.stderr.write(
				`\rdataset: ${records.toLocaleString("en-US")} records  ${Math.round(records / secs).toLocaleString("en-US")} records/s  ${(bytes / 1e6 / secs).toFixed(1)} MB/s\x1b[K`,
			);
			drawn = true;
		},
		done() {
			if (drawn) process.stderr.write("\r\x1b[K");
		},
	};
}

function render(
	io: Io,
	r: DatasetReport,
	changes: { added: readonly number[]; removed: readonly number[] } | undefined,
): void {
	io.out(
		`${r.records.toLocaleString("en-US")} records, ${r.findings.length} finding(s), ${r.flagged_records.length} record(s) flagged`,
	);
	for (const f of r.findings.slice(0, 50)) {
		const ids = f.records.slice(0, 10).join(", ") + (f.records.length > 10 ? `, … (${f.records.length})` : "");
		io.out(`  ${f.severity.toUpperCase().padEnd(8)} ${f.id}: ${f.message}\n           records: ${ids}`);
	}
	if (r.findings.length > 50) io.out(`  … ${r.findings.length - 50} more (--json lists them all)`);
	io.out(
		`lineage: Merkle root ${r.lineage.merkle_root} over ${r.lineage.records} records in ${r.lineage.files.length} file(s)`,
	);
	if (changes)
		io.out(
			`since the base version: ${changes.added.length} record(s) added or changed, ${changes.removed.length} removed`,
		);
	io.out(
		r.ok ? "PASS: no finding at or above the fail-on severity" : "FAIL: findings at or above the fail-on severity",
	);
}
