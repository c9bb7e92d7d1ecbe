/** The mark state's rules (lib/core/pipeline/mark.ts): which keys are pinned, a stale marker, the SCANNING tags. */
import { describe, expect, it } from "vitest";
import { inKeyOrder, keysToMark, markerReplaced, scanningTags } from "../../../lib/core/pipeline/mark";

describe("keysToMark", () => {
	it("takes a directory's listed keys without folder placeholders, the marker included", () => {
		const dir = { artefact: "m/", marker: { key: "m/model.sig" } };
		expect(keysToMark(dir, ["m/", "m/config.json", "m/sub/", "m/sub/w.bin", "m/model.sig"])).toEqual([
			"m/config.json",
			"m/sub/w.bin",
			"m/model.sig",
		]);
		// a marker the listing missed (listed before it landed) is still pinned
		expect(keysToMark(dir, ["m/config.json"])).toEqual(["m/config.json", "m/model.sig"]);
	});
	it("takes a single file and its marker, whatever was listed", () => {
		const file = { artefact: "a.onnx", marker: { key: "a.onnx.sigstore.json" } };
		expect(keysToMark(file, ["other"])).toEqual(["a.onnx", "a.onnx.sigstore.json"]);
	});
});

describe("markerReplaced", () => {
	it("compares ETags without their quotes", () => {
		expect(markerReplaced({ key: "k", etag: '"abc"' }, "abc")).toBe(false);
		expect(markerReplaced({ key: "k", etag: "abc" }, '"abd"')).toBe(true);
	});
	it("cannot tell without an ETag on both sides", () => {
		expect(markerReplaced({ key: "k", versionId: "v1" }, '"abc"')).toBe(false);
		expect(markerReplaced({ key: "k", etag: "abc" }, undefined)).toBe(false);
	});
});

describe("scanningTags and inKeyOrder", () => {
	it("tags SCANNING with the scan id", () => {
		expect(scanningTags("ftg-1")).toEqual({ "ftguard:status": "SCANNING", "ftguard:scan-id": "ftg-1" });
	});
	it("orders pinned objects by key without changing the input", () => {
		const objects = [
			{ key: "m/w.bin", size: 2 },
			{ key: "m/a.json", size: 1 },
			{ key: "m/model.sig", size: 3 },
		];
		expect(inKeyOrder(objects).map((o) => o.key)).toEqual(["m/a.json", "m/model.sig", "m/w.bin"]);
		expect(objects[0]?.key).toBe("m/w.bin");
	});
});
