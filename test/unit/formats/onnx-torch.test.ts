/** ONNX models exported by torch.onnx.export (test/fixtures/formats/make_torch_onnx.py), as users' models are. */
import { cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats";
import { scanPaths } from "../../../lib/core/formats/scan";

const DIR = join(__dirname, "../../fixtures/formats/onnx/torch");
const scan = (path: string) => scanPaths([path], { ...defaultScanOptions(), policy: { allowPickle: false } });

describe("when a model comes from torch.onnx.export", () => {
	it.each(["cnn.onnx", "mlp.onnx", "mlp-external/model.onnx"])("%s is recognised as ONNX and safe", async (name) => {
		const r = await scan(join(DIR, name));
		expect(r.files[0]).toMatchObject({ format: "onnx", verdict: "safe", findings: [] });
	});

	it("flags the exported model's external data once it is swapped for a symlink out of the directory", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "ftguard-onnx-")), "m");
		cpSync(join(DIR, "mlp-external"), dir, { recursive: true });
		rmSync(join(dir, "model.onnx.data"));
		symlinkSync("/etc/hostname", join(dir, "model.onnx.data"));
		const r = await scanPaths([join(dir, "model.onnx")], { ...defaultScanOptions(), policy: { allowPickle: false } });
		// Scanned as a single file the model has no directory to stay in: the scanner
		// resolves external data next to the file and refuses a symlink.
		const onnx = r.files.find((f) => f.format === "onnx");
		expect(onnx?.verdict).toBe("unsafe");
		expect(onnx?.findings.map((f) => f.id)).toContain("external-data-escape");
	});
});
