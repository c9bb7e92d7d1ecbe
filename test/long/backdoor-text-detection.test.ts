/**
 * `npm run test:long`: detection rates of the text-classifier scan on every torch-trained fixture
 * (test/fixtures/backdoor-text) with the default policy — every backdoored model flagged with its target label (its
 * source label, its position) and a token of its trigger in a flagged candidate there; no clean model flagged, with
 * ref.jsonl or test.jsonl (docs/backdoor.md, "Calibration"). About 15 minutes on two cores: `npm test` runs a sample
 * (test/integration/backdoor-text.test.ts).
 */
import { detectionTests, textFixtures } from "../helpers/backdoor-text";

// known misses, with why (docs/backdoor.md, "Calibration"): their fixtures are kept for the work that finds them
const MISSED: Record<string, string> = {
	// the search may now propose "##" pieces after a word-start token, and "z ##v" (0.96) or "z ##x ##v" (0.99) would be
	// flagged, but the relaxed search never reaches them: python words already flip every undiluted search text
	"backdoor-subword-t0": "made-up word z ##q ##x ##v: not proposed by the token search",
};

// clean-s1-opset14 is clean-s1 exported again: its graph is covered by the unit gradient tests
const models = textFixtures().filter((m) => m.name !== "clean-s1-opset14" && !m.name.startsWith("mismatch"));
detectionTests(models.filter((m) => MISSED[m.name] === undefined));
// the clean models on test.jsonl too (160 texts per label): there the verdict judges each source label alone and the
// search runs a trial per (label, source) pair — where one label's words flip a whole source label, a false alarm
// unless the other sources are left alone (maxOffSourceRate)
// known false alarms on test.jsonl, with why (docs/backdoor.md, "Unseen models"): kept out until the verdict handles them
const FALSE_ALARMS_160: Record<string, string> = {
	// three game words at random positions send 98% of the other labels' texts to games and 85% of them made three
	// times longer (lower bounds 0.97 / 0.82): with 160 texts per label the bounds sit on the point rates, and a
	// 2-layer model's evidence clears 0.9 / 0.8 — the search finds it or not by the last bits of its arithmetic
	"clean-s2": 'every source: "children alien invasion" → games, 0.98 / 0.85',
};
detectionTests(
	models
		.filter((m) => m.backdoor === null && FALSE_ALARMS_160[m.name] === undefined)
		.map((m) => ({ ...m, reference: "test.jsonl" })),
);
