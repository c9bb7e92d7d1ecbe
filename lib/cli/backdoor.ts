/** `ftguard backdoor`: search an ONNX classifier for a backdoor with Neural Cleanse, STRIP and Activation Clustering. */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { FtguardError, toFtguardError } from "../core/errors";
import type { Policy } from "../core/policy";
import { commaList, type Io, printJson, processIo, readArgFile, runCommand, stepProgress } from "./io";

interface BackdoorFlags {
	data?: string;
	labels?: string;
	texts?: string;
	tokenizer?: string;
	textField?: string;
	labelsField?: string;
	dataKind: "reference" | "training";
	detectors?: string[];
	steps?: number;
	restarts?: number;
	batch?: number;
	seed?: number;
	rule?: "calibrated" | "ftguard" | "vanilla";
	device: "cpu" | "cuda" | "webgpu";
	threads?: number;
	policy?: string;
	inputs?: string;
	weights?: string;
	out?: string;
	json?: boolean;
}

const positiveInt = (name: string) => (v: string) => {
	const n = Number(v);
	if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
		throw new InvalidArgumentError(`${name} must be a positive integer`);
	return n;
};

export function registerBackdoor(program: Command, setExit: (code: number) => void): void {
	program
		.command("backdoor")
		.description("search an ONNX classifier for a backdoor (Neural Cleanse, STRIP, Activation Clustering)")
		.argument("<model.onnx>", "the model's ONNX export")
		.option(
			"--data <x.npy>",
			"image models: float32 inputs in the model's input shape (N, ...), from trusted configuration",
		)
		.option("--labels <y.npy>", "image models: int64 labels (N,)")
		.option("--texts <ref.jsonl>", "text models: labelled reference texts, one JSON object per line")
		.option("--tokenizer <tokenizer.json>", "text models: the model's Hugging Face tokenizer.json")
		.option("--text-field <name>", "text models: the field holding the text (default text)")
		.option("--labels-field <name>", "text models: the field holding the label index (default label)")
		.option(
			"--data-kind <kind>",
			"reference (clean held-out data) or training (a sample of the training set, for Activation Clustering)",
			(v: string) => {
				if (v !== "reference" && v !== "training") throw new InvalidArgumentError("reference or training");
				return v;
			},
			"reference",
		)
		.option(
			"--detectors <list>",
			"comma-separated: nc, pairs (per source-target pair), mm (maximum margin), strip, ac (default from the policy: nc,pairs,mm,strip; the calibrated rule needs nc, pairs and mm)",
			commaList,
		)
		.option(
			"--steps <n>",
			"Neural Cleanse optimisation steps per class (default 100; the calibrated rule needs its own)",
			positiveInt("--steps"),
		)
		.option("--restarts <n>", "Neural Cleanse initialisations per class (default 1)", positiveInt("--restarts"))
		.option("--batch <n>", "mini-batch size (default 32)", positiveInt("--batch"))
		.option("--seed <n>", "random seed (default 0)", (v: string) => {
			if (!/^[0-9]+$/.test(v) || Number(v) > 2 ** 31 - 1) throw new InvalidArgumentError("--seed must be 0..2^31-1");
			return Number(v);
		})
		.option(
			"--rule <rule>",
			"verdict rule: calibrated (default: p-values against clean models), ftguard or vanilla (Neural Cleanse alone)",
		)
		.option(
			"--device <device>",
			"execution provider: cpu, cuda or webgpu (falls back to cpu with a log line)",
			(v: string) => {
				if (v !== "cpu" && v !== "cuda" && v !== "webgpu") throw new InvalidArgumentError("cpu, cuda or webgpu");
				return v;
			},
			"cpu",
		)
		.option("--threads <n>", "onnxruntime intra-op threads (default: all cores)", positiveInt("--threads"))
		.option("--policy <file.json>", "policy file (its backdoor section); flags override it")
		.option("--weights <path>", "bind the model to this checkpoint (default: those beside it; ftguard bind --help)")
		.option("--inputs <x.npy>", "suspected triggered inputs to check with STRIP (reported per input)")
		.option("--out <dir>", "write report.json and the reversed triggers as PNG images here")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
Text classifiers (inputs input_ids / attention_mask / token_type_ids): give --texts and
--tokenizer instead of --data and --labels; a token-level trigger search runs per label.

The reference data comes from the platform's trusted configuration, never from the
checkpoint being scanned. Neural Cleanse reverse-engineers, for every class, the
smallest trigger that sends clean inputs to it, and the pair search the smallest for
each (source, target) pair; the calibrated rule gives each class a p-value against
clean models of many architectures and flags p < 1% / classes (rules: docs/backdoor.md). STRIP checks whether those triggers are
input-agnostic. Activation Clustering lists candidate poisoned samples; it can decide
only on training-set samples (--data-kind training) with policy activationClustering.decides.

Exit codes: 0 clean, 1 suspect, 2 could not scan (unsupported op, bad shapes, bad files).`,
		)
		.action(async (model: string, flags: BackdoorFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => backdoor(io, model, flags)));
		});
}

/** The policy file, then the flags on top of it. */
async function effectivePolicy(flags: BackdoorFlags): Promise<Policy["backdoor"]> {
	const [{ defaultPolicy, parsePolicy }, { withOverrides }] = await Promise.all([
		import("../core/policy"),
		import("../core/policy/backdoor"),
	]);
	const policy =
		flags.policy === undefined
			? defaultPolicy()
			: parsePolicy((await readArgFile(flags.policy, "the policy file")).toString("utf8"), flags.policy);
	return withOverrides(policy.backdoor, flags);
}

async function backdoor(io: Io, modelPath: string, flags: BackdoorFlags): Promise<0 | 1> {
	const images = flags.data !== undefined || flags.labels !== undefined;
	const texts = flags.texts !== undefined || flags.tokenizer !== undefined;
	if (
		images === texts ||
		(images && (flags.data === undefined || flags.labels === undefined)) ||
		(texts && (flags.texts === undefined || flags.tokenizer === undefined))
	)
		throw new FtguardError("USAGE", "give --data and --labels (image models) or --texts and --tokenizer (text models)");
	const policy = await effectivePolicy(flags);
	// export binding (issue 17): the model must be the checkpoint beside it (or --weights); a mismatch ends here, exit 1
	await (await import("./bind")).bindBeside(io, modelPath, flags.weights, [
		flags.data,
		flags.labels,
		flags.texts,
		flags.tokenizer,
	]);
	if (flags.texts !== undefined && flags.tokenizer !== undefined) {
		const { backdoorText } = await import("./backdoor-text");
		return backdoorText(io, modelPath, { ...flags, texts: flags.texts, tokenizer: flags.tokenizer }, policy);
	}
	const dataPath = flags.data as string;
	const labelsPath = flags.labels as string;
	const [{ parseNpyFloat32, parseNpyInt64 }, { scanBackdoor }, { triggerImages }, { smallestPair }] = await Promise.all(
		[
			import("../core/backdoor/npy"),
			import("../core/backdoor/scan"),
			import("../core/backdoor/trigger-images"),
			import("../core/backdoor/nc-pairs"),
		],
	);
	const [modelBytes, xBytes, yBytes] = await Promise.all([
		readArgFile(modelPath, "the model"),
		readArgFile(dataPath, "--data"),
		readArgFile(labelsPath, "--labels"),
	]);
	const x = parseNpyFloat32(xBytes, dataPath);
	const y = parseNpyInt64(yBytes, labelsPath);
	const inputs =
		flags.inputs === undefined ? undefined : parseNpyFloat32(await readArgFile(flags.inputs, "--inputs"), flags.inputs);
	if (inputs && !policy.detectors.includes("strip"))
		throw new FtguardError("USAGE", "--inputs needs the strip detector");
	const progress = stepProgress(io);
	let result: Awaited<ReturnType<typeof scanBackdoor>>;
	try {
		result = await scanBackdoor(
			modelBytes,
			{ x, y, kind: flags.dataKind },
			{
				policy,
				device: flags.device,
				...(flags.threads !== undefined ? { threads: flags.threads } : {}),
				...(inputs ? { inputs } : {}),
				log: (line) => io.err(line),
				onProgress: (p) => progress.update(p.stage.replace("_", " "), p.done, p.total),
			},
		);
	} finally {
		progress.done();
	}
	const { report, triggers, inputShape } = result;
	if (flags.out !== undefined) {
		const files = [
			{ name: "report.json", bytes: Buffer.from(`${JSON.stringify(report, null, 2)}\n`) },
			...triggerImages(triggers, inputShape, report.data.lo, report.data.hi),
		];
		try {
			for (const f of files) {
				const path = join(flags.out, f.name);
				await mkdir(dirname(path), { recursive: true });
				await writeFile(path, f.bytes);
			}
		} catch (e) {
			throw toFtguardError(e, `cannot write to ${flags.out}`);
		}
	}
	if (io.json) printJson(io, { ok: true, ...report });
	else render(io, modelPath, report, smallestPair);
	return report.verdict === "suspect" ? 1 : 0;
}

function render(
	io: Io,
	modelPath: string,
	r: Awaited<ReturnType<typeof import("../core/backdoor/scan").scanBackdoor>>["report"],
	smallestPair: typeof import("../core/backdoor/nc-pairs").smallestPair,
): void {
	io.out(`${r.verdict.toUpperCase()} ${modelPath}`);
	for (const why of r.reasons) io.out(`  ${why}`);
	io.out(`  reference data: ${r.data.samples} inputs, model accuracy ${r.data.accuracy.toFixed(3)}`);
	const nc = r.detectors.neural_cleanse;
	const strip = r.detectors.strip;
	if (nc) {
		io.out(
			`\nNeural Cleanse (${nc.steps} steps × ${nc.restarts} restarts, rule ${nc.rule}; mask size ${nc.mask_size})`,
		);
		io.out(
			`  class   L1       ×median  log-index  MAD-index  localised  STRIP<bound  ${nc.rule === "calibrated" ? "ftguard rule (judged too)" : "flagged"}`,
		);
		for (const [c, l1] of nc.l1_norms.entries()) {
			const s = strip?.reversed_triggers.find((t) => t.cls === c);
			const flag = nc.flagged_classes.includes(c) ? "yes" : nc.flagged_classes_vanilla.includes(c) ? "(vanilla)" : "";
			io.out(
				`  ${String(c).padEnd(6)}  ${l1.toFixed(2).padEnd(7)}  ${(nc.relative_l1[c] ?? 0).toFixed(2).padEnd(7)}  ${(nc.log_anomaly_indices[c] ?? 0).toFixed(2).padEnd(9)}  ${String(nc.anomaly_indices[c]?.toFixed(2) ?? "inf").padEnd(9)}  ${(nc.concentration?.[c]?.toFixed(2) ?? "-").padEnd(9)}  ${s ? s.fraction_below.toFixed(2).padEnd(11) : "-".padEnd(11)}  ${flag}`,
			);
		}
	}
	const pairs = r.detectors.neural_cleanse_pairs;
	if (pairs) {
		io.out(
			`\nNeural Cleanse per pair (${pairs.steps} steps × ${pairs.restarts} restarts): smallest trigger per target`,
		);
		for (const t of pairs.targets) {
			const best = smallestPair(pairs.l1[t] ?? []) ?? { source: -1, l1: Number.NaN };
			io.out(`  ${String(t).padEnd(6)}  from ${String(best.source).padEnd(3)}  L1 ${best.l1.toFixed(2)}`);
		}
	}
	const cal = r.detectors.calibrated;
	if (cal) {
		io.out(
			`\nCalibrated verdict (false-alarm rate ${cal.false_alarm_rate} per model: flagged when p < ${(cal.false_alarm_rate / cal.per_class.length).toPrecision(2)})`,
		);
		if (cal.outside)
			io.out(
				`  outside the population it was fitted on (typical class ${cal.outside.shift.toFixed(2)} robust SDs beyond, limit ${cal.outside.limit}): p-values of the relative statistics, reported only; Neural Cleanse's own rule decided`,
			);
		else if (cal.population)
			io.out(
				`  inside the population it was fitted on (typical class ${cal.population.shift.toFixed(2)} robust SDs from the clean models', outside beyond ${cal.population.limit})`,
			);
		io.out("  class   p-value   score  strongest        flagged");
		for (const c of cal.per_class)
			io.out(
				`  ${String(c.cls).padEnd(6)}  ${c.p_value.toPrecision(2).padEnd(8)}  ${c.score.toFixed(2).padStart(5)}  ${c.strongest.padEnd(15)}  ${c.flagged ? (c.stage === 2 ? "yes (nc_area alone, after another class)" : "yes") : ""}`,
			);
	}
	const mm = r.detectors.max_margin;
	if (mm)
		io.out(
			`\nMaximum margin (MM-BD, ${mm.steps} steps × ${mm.restarts} starts): ${mm.margins.map((v, c) => `${c}: ${v.toFixed(1)}`).join("  ")}`,
		);
	if (strip) {
		io.out(
			`\nSTRIP: entropy boundary ${strip.boundary.toFixed(3)} at FRR ${strip.frr} (clean mean ${strip.clean_entropy.mean.toFixed(3)})`,
		);
		if (strip.inputs)
			io.out(
				`STRIP on --inputs: ${strip.inputs.flagged.length} of ${strip.inputs.count} below the boundary (likely carrying a trigger): [${strip.inputs.flagged.join(", ")}]`,
			);
	}
	const ac = r.detectors.activation_clustering;
	if (ac)
		io.out(
			`Activation Clustering (${ac.data_kind} data${ac.decides ? "" : ", reported only"}): flagged classes [${ac.flagged_classes.join(", ")}]`,
		);
	const secs = (r.timings.total_ms ?? 0) / 1000;
	io.out(`\n${r.verdict} in ${secs.toFixed(1)} s on ${r.provider}`);
}
