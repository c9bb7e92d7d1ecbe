/**
 * `npm run test:long`: detection rates of the text-classifier scan on every torch-trained fixture
 * (test/fixtures/backdoor-text) with the default policy — every backdoored model flagged with its target label and
 * its trigger (or a token of it) in the reported trigger; no clean model flagged (docs/backdoor.md, "Calibration").
 * About six minutes on two cores: `npm test` runs a sample (test/integration/backdoor-text.test.ts).
 */
import { detectionTests, textFixtures } from "../helpers/backdoor-text";

// clean-s1-opset14 is clean-s1 exported again: its graph is covered by the unit gradient tests
detectionTests(textFixtures().filter((m) => m.name !== "clean-s1-opset14" && !m.name.startsWith("mismatch")));
