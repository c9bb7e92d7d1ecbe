/** `ftguard report`: one self-contained HTML page from a scan's report (lib/core/report). */
import { open, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { FtguardError, toFtguardError } from "../core/errors";
import type { ImageMap, ModelReport, ReportInput } from "../core/report";
import { formatBytes, type Io, printJson, processIo, runCommand } from "./io";
import { VERSION } from "./version";

interface ReportFlags {
	output: string;
	json?: boolean;
}

/** The documents a scan directory may hold, in the order they are looked for. */
const DIR_DOCUMENTS = ["verdict.json", "report.json", "ftguard-dataset-report.json"];
/** A dataset report carries its lineage's leaf prefixes (~11 bytes a record): 256 MiB is ~20 million records. */
const MAX_DOC_BYTES = 256 << 20;
const MAX_SIDE_DOC_BYTES = 64 << 20;

export function registerReport(program: Command, setExit: (code: number) => void): void {
	program
		.command("report")
		.description("write a self-contained HTML page of a scan's report: the verdict, each check and its evidence")
		.argument(
			"<scan-dir|report.json>",
			"a report (backdoor report.json, verdict.json, files or dataset --json output) or the directory holding it",
		)
		.requiredOption("-o, --output <report.html>", "the page to write")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
Reads what ftguard writes: \`ftguard backdoor --out DIR\` (report.json and the trigger
images in DIR/triggers/), \`ftguard files --json\`, \`ftguard dataset --json\`, and the
pipeline's verdict record (verdict.json, with files.json and backdoor/<i>/ beside it when
present). The page loads nothing and runs no script: it opens offline, in a mail
attachment or an artefact store, and on a phone.

  ftguard backdoor model.onnx --data x.npy --labels y.npy --out scan/
  ftguard report scan/ -o scan/report.html

Exit codes: 0 written, 2 could not (not a report ftguard wrote, unreadable, unwritable).`,
		)
		.action(async (input: string, flags: ReportFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => report(io, input, flags)));
		});
}

/** The file's bytes, at most `max` (else TOO_LARGE); undefined when `optional` and it does not exist. */
async function readCapped(path: string, max: number, what: string, optional = false): Promise<Buffer | undefined> {
	let fh: Awaited<ReturnType<typeof open>> | undefined;
	try {
		fh = await open(path, "r");
		const { size, isFile } = await fh.stat().then((s) => ({ size: s.size, isFile: s.isFile() }));
		if (!isFile) throw new FtguardError("USAGE", `${path}: not a file`);
		if (size > max)
			throw new FtguardError("TOO_LARGE", `${what} ${path} is ${formatBytes(size)} (limit ${formatBytes(max)})`);
		return await fh.readFile();
	} catch (e) {
		if (optional && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
		throw toFtguardError(e, `cannot read ${what}`);
	} finally {
		await fh?.close();
	}
}

function parseJson(bytes: Buffer, path: string): unknown {
	try {
		return JSON.parse(bytes.toString("utf8"));
	} catch {
		throw new FtguardError("USAGE", `${path}: not JSON (expected a report ftguard wrote)`);
	}
}

/** The images of a backdoor report that its page embeds, read from `dir` (missing or oversized ones left out). */
async function readImages(dir: string, report: unknown): Promise<ImageMap> {
	const { LIMITS, wantedImages } = await import("../core/report");
	const out = new Map<string, Uint8Array>();
	for (const name of wantedImages(report)) {
		try {
			const bytes = await readCapped(join(dir, name), LIMITS.imageBytes, "an image", true);
			if (bytes !== undefined) out.set(name, bytes);
		} catch (e) {
			// an image too large or unreadable: the page says it has none for that class
			if (!(e instanceof FtguardError)) throw e;
		}
	}
	return out;
}

/** A verdict record's companions beside it: files.json and each model's backdoor/<i>/ folder. */
async function recordCompanions(dir: string, record: unknown): Promise<Pick<ReportInput, "files" | "models">> {
	const files = await readCapped(join(dir, "files.json"), MAX_SIDE_DOC_BYTES, "the files report", true);
	const results = (record as { stages?: { backdoor?: { results?: unknown } } })?.stages?.backdoor?.results;
	const models = new Map<number, ModelReport>();
	if (Array.isArray(results))
		for (const [i, r] of results.slice(0, 16).entries()) {
			const index = typeof r?.index === "number" && Number.isSafeInteger(r.index) && r.index >= 0 ? r.index : i;
			const modelDir = join(dir, "backdoor", String(index));
			const bytes = await readCapped(join(modelDir, "report.json"), 8 << 20, "a backdoor report", true);
			if (bytes === undefined) continue;
			const report = parseJson(bytes, join(modelDir, "report.json"));
			models.set(index, { report, images: await readImages(modelDir, report) });
		}
	return { ...(files === undefined ? {} : { files: parseJson(files, join(dir, "files.json")) }), models };
}

async function report(io: Io, input: string, flags: ReportFlags): Promise<0> {
	let path = input;
	let info: Awaited<ReturnType<typeof stat>>;
	try {
		info = await stat(input);
	} catch (e) {
		throw toFtguardError(e, `cannot read ${input}`);
	}
	if (info.isDirectory()) {
		const found = await Promise.all(
			DIR_DOCUMENTS.map((n) =>
				stat(join(input, n)).then(
					(s) => s.isFile(),
					() => false,
				),
			),
		);
		const i = found.indexOf(true);
		if (i < 0) throw new FtguardError("USAGE", `${input}: no ${DIR_DOCUMENTS.join(", ")} in this directory`);
		path = join(input, DIR_DOCUMENTS[i] as string);
	}
	if (resolve(path) === resolve(flags.output))
		throw new FtguardError("USAGE", "--output would overwrite the report it is made from");
	const { renderReport, requireReportKind } = await import("../core/report");
	const doc = parseJson((await readCapped(path, MAX_DOC_BYTES, "the report")) as Buffer, path);
	const kind = requireReportKind(doc, path);
	const dir = dirname(path);
	const extra: Partial<ReportInput> =
		kind === "backdoor-image"
			? { images: await readImages(dir, doc) }
			: kind === "verdict-record"
				? await recordCompanions(dir, doc)
				: {};
	const page = renderReport({
		doc,
		source: path,
		...extra,
		generator: `ftguard ${VERSION}`,
		generatedAt: new Date(),
	});
	try {
		await writeFile(flags.output, page.html);
	} catch (e) {
		throw toFtguardError(e, `cannot write ${flags.output}`);
	}
	const bytes = Buffer.byteLength(page.html);
	if (io.json) printJson(io, { ok: true, output: flags.output, kind: page.kind, verdict: page.verdict, bytes });
	else io.out(`wrote ${flags.output} (${page.kind}: ${page.verdict}; ${formatBytes(bytes)})`);
	return 0;
}
