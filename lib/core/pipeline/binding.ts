/**
 * The files step's export binding: when the artefact holds an ONNX export and weights, each export must be bound
 * to each checkpoint (lib/core/backdoor/binding.ts), or the artefact is not promotable — the backdoor scan
 * searches the export, and an export that is not the shipped weights proves nothing about them. A mismatch and
 * a binding that could not be checked (unreadable files, weights of a format binding cannot read) are both
 * reasons of the files stage: fail closed.
 */
import { type BindingReport, bindingLine, bindModel, planBinding, weightsName } from "../backdoor/binding-artefact";
import type { FileOpener } from "../backdoor/binding-weights";
import { toFtguardError } from "../errors";

export interface ArtefactBinding {
	reports: BindingReport[];
	/** one line per mismatch or binding that could not be checked: the files stage's reasons */
	reasons: string[];
}

const PREFIX = "export binding";

/**
 * Binds every ONNX export of the artefact to every checkpoint in it. `files` are the artefact's objects by key
 * with the format the files step detected; `open` reads one by key. Undefined when there is nothing to bind (no
 * export, or no weights beside it).
 */
export async function bindArtefact(
	files: readonly { key: string; format?: string | undefined }[],
	open: FileOpener,
): Promise<ArtefactBinding | undefined> {
	let plan: Awaited<ReturnType<typeof planBinding>>;
	try {
		plan = await planBinding(
			files.map((f) => ({ name: f.key, format: f.format })),
			open,
		);
	} catch (e) {
		const err = toFtguardError(e);
		return { reports: [], reasons: [`${PREFIX}: could not check: ${err.code}: ${err.message}`] };
	}
	if (plan.models.length === 0 || (plan.sets.length === 0 && plan.unreadable.length === 0)) return undefined;
	const reasons: string[] = [];
	if (plan.unreadable.length > 0)
		reasons.push(
			`${PREFIX}: could not check: weights binding cannot read (${plan.unreadable.map((f) => `${f.name}: ${f.format}`).join(", ")}) beside ${plan.models.join(", ")}`,
		);
	const reports: BindingReport[] = [];
	for (const model of plan.models)
		for (const set of plan.sets) {
			try {
				const r = await bindModel(model, set, open);
				reports.push(r);
				if (r.verdict !== "bound") reasons.push(`${PREFIX}: ${bindingLine(r)}`);
			} catch (e) {
				const err = toFtguardError(e);
				reasons.push(`${PREFIX}: ${model} ↔ ${weightsName(set)}: could not check: ${err.code}: ${err.message}`);
			}
		}
	return { reports, reasons };
}
