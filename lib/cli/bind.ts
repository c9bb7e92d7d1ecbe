/**
 * `ftguard bind`: is this ONNX export an export of these weights? Also the binding `ftguard backdoor` runs against
 * the checkpoints beside the model it scans (bindBeside).
 */
import { writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import type { ArtefactFile, BindingReport } from "../core/backdoor/binding-artefact";
import type { FileOpener } from "../core/backdoor/binding-weights";
import { FtguardError, toFtguardError } from "../core/errors";
import { FileSource } from "../core/formats/source";
import { formatBytes, type Io, printJson, processIo, runCommand } from "./io";
import { VERSION } from "./version";

interface BindFlags {
	sarif?: string;
	json?: boolean;
}

export function registerBind(program: Command, setExit: (code: number) => void): void {
	program
		.command("bind")
		.description("check that an ONNX export's weights are a checkpoint's, byte for byte (export binding)")
		.argument("<model.onnx>", "the ONNX export (the model the backdoor scan searches)")
		.argument(
			"<weights>",
			"a safetensors file, a sharded checkpoint's *.safetensors.index.json, a PyTorch zip checkpoint, or a directory (every checkpoint in it)",
		)
		.option("--sarif <out.sarif>", "also write SARIF 2.1.0 for code-scanning dashboards")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
A clean ONNX export beside backdoored weights would pass the backdoor scan while the
weights ship. Binding hashes every floating-point constant the export computes with
(its data reaches an output) and every tensor of the checkpoint and matches them: as
is, reshaped, transposed (MatMul stores W^T), or widened from float16/bfloat16. Bound
when every constant of 1,024 or more elements is a checkpoint tensor, smaller ones too
when the graph computes with more than 16 of their numbers or they have a twin in the
checkpoint (same name, or an unbound tensor of the same shape), every checkpoint tensor
of 2 or more elements is in the export, and token inputs reach the graph only as
lookup indices (docs/backdoor.md, "Export binding"). Constants folded at export
(BatchNorm into a convolution, a pre-scaled projection) are not checkpoint tensors:
reported, not guessed. Binding does not prove the graph computes the checkpoint's
function: only a run against a reference implementation could.

Exit codes: 0 bound, 1 mismatch (EXPORT_MISMATCH), 2 could not check (unreadable or
unsupported files: ONNX subgraphs, float weights computed at run time, quantized
checkpoints, pickles weights_only refuses or that re-point a tensor, weights of a
format binding cannot read).`,
		)
		.action(async (model: string, weights: string, flags: BindFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => bind(io, model, weights, flags)));
		});
}

const HEAD_BYTES = 64 * 1024;
/** Findings listed per binding in text (every finding is in --json). */
const MAX_SHOWN = 20;

/** Files opened once, closed together. */
function fileOpener(): { open: FileOpener; close: () => Promise<void> } {
	const opened = new Map<string, Promise<FileSource>>();
	return {
		open(name) {
			let s = opened.get(name);
			if (s === undefined) {
				s = FileSource.open(name).catch((e: unknown) => {
					throw toFtguardError(e, `cannot open ${name}`);
				});
				opened.set(name, s);
			}
			return s;
		},
		async close() {
			for (const s of opened.values()) await s.then((f) => f.close()).catch(() => {});
		},
	};
}

/**
 * The format the file scanners' detection gives a file (its first bytes and name), raw weights as the files step
 * names them (GGML, Flax msgpack); a `.safetensors` file nothing claims is still read as one, so that a broken
 * checkpoint is "could not check" with the parser's reason rather than no checkpoint at all.
 */
async function formatOf(path: string, open: FileOpener): Promise<string | undefined> {
	const [{ SCANNERS }, { isGgml }, { inertView }] = await Promise.all([
		import("../core/formats/index"),
		import("../core/formats/scan"),
		import("../core/formats/inert"),
	]);
	const src = await open(path);
	const head = await src.read(0, HEAD_BYTES);
	const format = SCANNERS.find((s) => s.detect(head, path, src.size))?.format;
	if (format !== undefined) return format;
	if (isGgml(head)) return "raw-weights";
	if ((await inertView(src, path, head))?.format === "raw-weights") return "raw-weights";
	return path.toLowerCase().endsWith(".safetensors") ? "safetensors" : undefined;
}

/** The files of `path` (a file, or a directory walked as a model is) with their formats. */
async function filesAt(path: string, open: FileOpener): Promise<ArtefactFile[]> {
	const { walkModel } = await import("../core/integrity/walk");
	const walked = await walkModel(path, { allowSymlinks: false, ignorePaths: [], maxFiles: 100_000, maxDepth: 128 });
	const names = walked.isFile ? [path] : walked.files.map((f) => join(path, f.name));
	return Promise.all(names.map(async (name) => ({ name, format: await formatOf(name, open) })));
}

/**
 * Binds `model` to every checkpoint among `files` (the ONNX models among them are not checkpoints), and lists the
 * weights files binding cannot read (for refuseUnreadable, once a mismatch — a finding — has had its say).
 * `required`: finding no weights at all is "could not check".
 */
async function bindTo(
	model: string,
	files: readonly ArtefactFile[],
	open: FileOpener,
	where: string,
	required: boolean,
): Promise<{ reports: BindingReport[]; unreadable: ArtefactFile[] }> {
	const { bindModel, planBinding } = await import("../core/backdoor/binding-artefact");
	// the model among the files, so that its own external data is not taken for weights beside it
	const withModel = files.some((f) => f.name === model) ? files : [...files, { name: model, format: "onnx" }];
	const plan = await planBinding(withModel, open);
	if (required && plan.sets.length === 0 && plan.unreadable.length === 0)
		throw new FtguardError("NOT_FOUND", `no safetensors or PyTorch zip checkpoint in ${where}`);
	const reports: BindingReport[] = [];
	for (const set of plan.sets) reports.push(await bindModel(model, set, open));
	return { reports, unreadable: plan.unreadable };
}

/** Weights binding cannot read are weights nothing proves the export stands for: could not check. */
function refuseUnreadable(unreadable: readonly ArtefactFile[]): void {
	if (unreadable.length > 0)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`binding cannot read ${unreadable.map((f) => `${f.name} (${f.format})`).join(", ")}: compare safetensors or PyTorch zip checkpoints`,
		);
}

async function bind(io: Io, model: string, weights: string, flags: BindFlags): Promise<0 | 1> {
	const files = fileOpener();
	try {
		const { reports, unreadable } = await bindTo(model, await filesAt(weights, files.open), files.open, weights, true);
		const bound = reports.every((r) => r.verdict === "bound");
		if (bound) refuseUnreadable(unreadable);
		if (flags.sarif !== undefined) {
			const { bindingSarif } = await import("../core/backdoor/binding-sarif");
			try {
				await writeFile(flags.sarif, `${JSON.stringify(bindingSarif(reports, VERSION), null, 2)}\n`);
			} catch (e) {
				throw toFtguardError(e, `cannot write SARIF to ${flags.sarif}`);
			}
		}
		const { weightsName } = await import("../core/backdoor/binding-artefact");
		if (io.json) printJson(io, { ok: true, verdict: bound ? "bound" : "mismatch", model, bindings: reports });
		else for (const r of reports) render(io, r, weightsName(r.weights));
		return bound ? 0 : 1;
	} finally {
		await files.close();
	}
}

/** NumPy arrays beside a model are data (reference sets, triggers), not weights, unless `--weights` names them. */
const ARRAY_FORMATS: ReadonlySet<string | undefined> = new Set(["numpy", "numpy-npz"]);

/**
 * `ftguard backdoor`'s binding: the model against `weights` when given, else against the checkpoints in the model's
 * own directory, walked as `ftguard bind` walks one (subfolders too: a checkpoint there ships as well). `inputs`
 * are the scan's own files, and NumPy arrays there data, not weights. A mismatch is an EXPORT_MISMATCH finding
 * (exit 1) before any scan runs; weights binding cannot read are "could not check" (exit 2); no checkpoint at all:
 * said on stderr, nothing to bind (undefined) — the export is then all there is, and it is what the scan judges.
 */
export async function bindBeside(
	io: Io,
	model: string,
	weights?: string,
	inputs: readonly (string | undefined)[] = [],
): Promise<BindingReport[] | undefined> {
	const files = fileOpener();
	try {
		const where = weights ?? dirname(model);
		const own = new Set(inputs.filter((i) => i !== undefined).map((i) => resolve(i)));
		const found = (await filesAt(where, files.open)).filter(
			(f) => !own.has(resolve(f.name)) && (weights !== undefined || !ARRAY_FORMATS.has(f.format)),
		);
		const { reports, unreadable } = await bindTo(model, found, files.open, where, weights !== undefined);
		const { bindingLine } = await import("../core/backdoor/binding-artefact");
		const bad = reports.filter((r) => r.verdict !== "bound");
		if (bad.length > 0)
			throw new FtguardError("EXPORT_MISMATCH", bad.map(bindingLine).join("; "), { details: { bindings: reports } });
		refuseUnreadable(unreadable);
		if (reports.length === 0) {
			io.err(`export binding: no checkpoint beside ${model} (in ${where}): the scan judges the export alone`);
			return undefined;
		}
		for (const r of reports) io.err(`export binding: ${bindingLine(r)}`);
		return reports;
	} finally {
		await files.close();
	}
}

function render(io: Io, r: BindingReport, weights: string): void {
	io.out(`${r.verdict === "bound" ? "BOUND" : "MISMATCH"} ${r.model} ↔ ${weights}`);
	const forms = { "as-is": 0, reshaped: 0, transposed: 0 };
	let widened = 0;
	for (const m of r.matched) {
		forms[m.form]++;
		if (m.widenedFrom !== undefined) widened++;
	}
	io.out(
		`  export: ${r.constants.float} floating-point constants (${r.constants.large} of ${r.thresholds.minElements}+ elements), ${r.constants.other} others not compared`,
	);
	io.out(
		`  matched: ${forms["as-is"]} as is, ${forms.reshaped} reshaped, ${forms.transposed} transposed${widened > 0 ? ` (${widened} widened to float32)` : ""}; unmatched: ${r.unmatched.length}${r.ignored > 0 ? ` (+${r.ignored} small constants without a twin, ignored)` : ""}`,
	);
	const c = r.coverage;
	io.out(
		`  checkpoint: ${r.tensors.float} floating-point tensors, ${(100 * c.fraction).toFixed(2)}% of ${formatBytes(c.totalBytes)} bound (minimum ${100 * r.thresholds.minCoverage}%)${r.unbound.length > 0 ? `, ${r.unbound.length} unbound` : ""}${r.tensors.skipped.length > 0 ? `; ${r.tensors.skipped.length} integer tensors not compared` : ""}`,
	);
	for (const f of r.findings.slice(0, MAX_SHOWN)) io.out(`  ${f.id}: ${f.message}`);
	if (r.findings.length > MAX_SHOWN)
		io.out(`  … and ${r.findings.length - MAX_SHOWN} more findings (--json lists all)`);
	io.out(`  in ${r.ms} ms`);
}
