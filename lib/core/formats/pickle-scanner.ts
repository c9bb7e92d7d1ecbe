/**
 * The scanner for plain pickle files (`.pkl`, `.pickle`, old `.bin` / `.ckpt` …), recognised by their first
 * opcodes: the pickle analyser (pickle.ts) over the stream, or under --allow-pickle the weights_only model over
 * every pickle in a row.
 */
import { looksLikePickle, mayBeUnpickled } from "./pickle";
import {
	analyzeStream,
	judgeWeightsOnly,
	MAX_PICKLE_BYTES,
	tooLargeFinding,
	toScanResult,
	weightsOnlyStream,
} from "./pickle-stream";
import { isLegacyTorch } from "./pytorch";
import { inputSource } from "./source";
import { type ByteSource, type Finding, guarded, type ScanInput, type Scanner, type ScanResult } from "./types";

/**
 * --allow-pickle on a plain pickle: pickle.load (and torch's weights_only unpickler) reads the first pickle; loaders
 * that call it again read the next ones, so every pickle that follows in a row is checked too. Bytes after a
 * pickle that are no pickle (one that fails as corrupt) are left: no loader runs them.
 */
async function scanPlainAllowed(src: ByteSource): Promise<ScanResult> {
	const findings: Finding[] = [];
	let offset = 0;
	for (let k = 0; k < MAX_PICKLES_IN_A_ROW && offset < src.size; k++) {
		// strings decoded as the most lenient loader does (numpy.load(encoding="latin1"); torch: utf-8, pickle: ASCII):
		// one that fails in one loader does not hide what another reads next
		const { r, buf, tooLarge } = await weightsOnlyStream(src, offset, { mode: "none", encoding: "bytes" });
		if (tooLarge) return { findings: [...findings, tooLargeFinding(undefined, MAX_PICKLE_BYTES)] };
		const j = judgeWeightsOnly(buf, r, { baseOffset: offset });
		if (k > 0 && j.malformed !== undefined && j.findings.length === 0) break;
		findings.push(...j.findings);
		if (j.malformed !== undefined) return { findings, malformed: j.malformed };
		if (r.outcome !== "loaded" || r.end === undefined) break;
		offset = r.end;
	}
	return { findings };
}

/** Pickles checked in a row in one plain pickle file. */
const MAX_PICKLES_IN_A_ROW = 64;

/** A plain pickle file (`.pkl`, `.pickle`, old `.bin` / `.ckpt` …), recognised by its first opcodes. */
export const pickleScanner: Scanner = {
	format: "pickle",
	detect(head) {
		return looksLikePickle(head) && !isLegacyTorch(head);
	},
	scan(input: ScanInput) {
		return guarded(async () => {
			if (input.policy.allowPickle) return scanPlainAllowed(inputSource(input));
			const r = await analyzeStream(inputSource(input), { policy: input.policy });
			return toScanResult(r);
		});
	},
	// pickle.load (and torch.load's legacy path) runs a pickle from byte 0 and ignores what follows it. An HDF5
	// file's user block is bytes of the writer's choosing before the superblock: one named like a pickle whose
	// first byte is an opcode is analysed as the pickle it may also be (the engine's rule for unclaimed files).
	alsoIn: async (source, head, name, claimed) => claimed === "keras-h5" && mayBeUnpickled(head, name, source.size),
};
