/** `ftguard backdoor --texts … --tokenizer …`: the text-classifier scan (lib/core/backdoor/text-scan.ts) and its report. */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toFtguardError } from "../core/errors";
import type { BackdoorPolicy } from "../core/policy/backdoor";
import { type Io, printJson, stepProgress } from "./io";

export interface TextFlags {
	texts: string;
	tokenizer: string;
	textField?: string;
	labelsField?: string;
	device: "cpu" | "cuda" | "webgpu";
	threads?: number;
	out?: string;
}

export async function backdoorText(
	io: Io,
	modelPath: string,
	flags: TextFlags,
	policy: BackdoorPolicy,
): Promise<0 | 1> {
	const [{ loadTokenizer, readLabelledTexts }, { scanTextBackdoor }] = await Promise.all([
		import("../core/backdoor/text-data"),
		import("../core/backdoor/text-scan"),
	]);
	let modelBytes: Buffer;
	try {
		modelBytes = await readFile(modelPath);
	} catch (e) {
		throw toFtguardError(e, "cannot read the model");
	}
	const tokenizer = await loadTokenizer(flags.tokenizer);
	const data = await readLabelledTexts(flags.texts, {
		...(flags.textField !== undefined ? { textField: flags.textField } : {}),
		...(flags.labelsField !== undefined ? { labelField: flags.labelsField } : {}),
	});
	const progress = stepProgress(io);
	let report: Awaited<ReturnType<typeof scanTextBackdoor>>;
	try {
		report = await scanTextBackdoor(modelBytes, tokenizer, data, {
			policy: policy.text,
			device: flags.device,
			...(flags.threads !== undefined ? { threads: flags.threads } : {}),
			log: (line) => io.err(line),
			onProgress: (p) => progress.update(p.stage, p.done, p.total),
		});
	} finally {
		progress.done();
	}
	if (flags.out !== undefined)
		try {
			await mkdir(flags.out, { recursive: true });
			await writeFile(join(flags.out, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
		} catch (e) {
			throw toFtguardError(e, `cannot write to ${flags.out}`);
		}
	if (io.json) printJson(io, { ok: true, ...report });
	else {
		io.out(`${report.verdict.toUpperCase()} ${modelPath}`);
		for (const why of report.reasons) io.out(`  ${why}`);
		io.out(
			`\nToken-level trigger search (lengths 1–${report.policy.maxTriggerLength}, ${report.policy.steps} steps each; ${report.data.held_out} held-out texts, clean accuracy ${(report.data.clean_accuracy * 100).toFixed(1)}%)`,
		);
		io.out(
			"  label  trigger                         position  sources  held-out  ASR (lower)  diluted (lower)  natural  other sources  embedding loss  flagged",
		);
		const rate = (x: number, lo: number) => `${x.toFixed(2)} (${lo.toFixed(2)})`;
		for (const l of report.labels)
			io.out(
				`  ${String(l.label).padEnd(5)}  ${JSON.stringify(l.trigger).padEnd(30)}  ${l.position.padEnd(8)}  ${(l.sources === null ? "all" : l.sources.join(",")).padEnd(7)}  ${String(l.held_out).padEnd(8)}  ${rate(l.attack_success, l.attack_success_lower).padEnd(11)}  ${rate(l.diluted_attack_success, l.diluted_attack_success_lower).padEnd(15)}  ${l.natural_rate.toFixed(2).padEnd(7)}  ${(l.off_source_attack_success === null ? "" : l.off_source_attack_success.toFixed(2)).padEnd(13)}  ${l.embedding.loss.toFixed(3).padEnd(14)}  ${l.flagged ? "yes" : ""}`,
			);
		io.out(
			`  (rates at the position where the trigger works best; lower: one-sided ${(report.policy.confidence * 100).toFixed(0)}% Wilson bound, held against ${report.policy.asrThreshold} and ${report.policy.dilutedThreshold}; other sources: from one source label, the share of the others' texts it sends, at most ${report.policy.maxOffSourceRate})`,
		);
		for (const l of report.limits) io.out(`\nlimit: ${l}`);
		io.out(`\n${report.verdict} in ${(report.timings.total_ms / 1000).toFixed(1)} s on ${report.provider}`);
	}
	return report.verdict === "suspect" ? 1 : 0;
}
