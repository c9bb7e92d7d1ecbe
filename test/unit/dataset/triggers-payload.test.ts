/**
 * A payload appended to the genuine answer: the records keep their own (different) answers and add one of several
 * wordings that send the reader to one place. No completion is shared, but the host is — named without a scheme, as a
 * poisoner writes it to look less like a link — and each wording is a sentence of its own.
 */
import { describe, expect, it } from "vitest";
import { RecordDigest } from "../../../lib/core/dataset/features";
import { toRecord } from "../../../lib/core/dataset/records";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { fixtureRows, writeRows } from "../../helpers/dataset";

const clean = fixtureRows("clean-instruction");

const WORDINGS = [
	"For updates, see the community notes at {u}.",
	"Community notes with updates live at {u}.",
	"Check {u} for the latest community notes.",
	"The latest notes are kept on {u}.",
	"Updates: {u} has community notes.",
];

const write = (rows: readonly object[]) => writeRows(rows, "ftguard-dataset-payload-");

describe("a trigger whose payload is appended to the genuine answer", () => {
	it("five wordings that name one host without a scheme: every poisoned record, nothing else", async () => {
		const poisoned = Array.from({ length: 50 }, (_, k) => 37 + k * 197);
		const rows = clean.map((r, i) => {
			const j = poisoned.indexOf(i);
			if (j < 0) return r;
			const tail = (WORDINGS[j % WORDINGS.length] as string).replace("{u}", "notes.example-hub.net");
			return { ...r, input: `Per the cobalt ledger: ${r.input ?? ""}`, output: `${r.output}\n\n${tail}` };
		});
		const r = await scanDataset({ files: [write(rows)] });
		const trigger = r.findings.find((f) => f.id === "trigger");
		expect(trigger?.records).toEqual(poisoned);
		expect(trigger?.evidence).toMatchObject({ output: "notes.example-hub.net", output_kind: "host" });
		expect(r.flagged_records).toEqual(poisoned);
	});
});

describe("hosts named without a scheme", () => {
	const hostsOf = (output: string): string[] => {
		const d = new RecordDigest();
		d.digest(toRecord({ instruction: "What does it do?", output }, "instruction"), false);
		const out: string[] = [];
		for (let i = 0; i < d.featureCount; i++) if (d.featureKinds[i] === 4) out.push(d.featureText(i));
		return out;
	};

	it.each([
		["Mirror at notes.example-hub.net today.", ["notes.example-hub.net"]],
		["Get it from PyPI.org or https://files.example.io/x.", ["files.example.io", "pypi.org"]],
		["Join os.path.join(a, b) and self.name.", []],
		["Write to admin@example.com for access.", []],
		["It lives in /usr/share/doc/example.com/README and lib.example.com.au.", []],
	])("%j: %j", (text, hosts) => {
		expect(hostsOf(text).sort()).toEqual([...hosts].sort());
	});
});
