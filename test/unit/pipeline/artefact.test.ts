import { describe, expect, it } from "vitest";
import { normalizeEtag, resolveMarker, resourceNameOf, scanIdOf } from "../../../lib/core/pipeline/artefact";

describe("resolveMarker", () => {
	it("maps <dir>/model.sig to the directory prefix", () => {
		expect(resolveMarker("jobs/j1/ckpt-3/model.sig")).toEqual({ kind: "directory", artefact: "jobs/j1/ckpt-3/" });
	});
	it("maps <file>.sigstore.json to the single file it signs", () => {
		expect(resolveMarker("jobs/j1/adapter.safetensors.sigstore.json")).toEqual({
			kind: "file",
			artefact: "jobs/j1/adapter.safetensors",
		});
		expect(resolveMarker("model.gguf.sigstore.json")).toEqual({ kind: "file", artefact: "model.gguf" });
	});
	it.each([
		["jobs/j1/ckpt-3/model.safetensors"],
		["jobs/j1/ckpt-3/config.json"],
		["model.sig"], // the bucket root is never a checkpoint directory
		["/model.sig"],
		["jobs/j1/.sigstore.json"],
		["jobs/j1/x.sigstore.json.sigstore.json"],
		["jobs/j1/model.sig.sigstore.json"],
		["jobs/j1/model.sig.bak"],
	])("does not treat %s as a commit marker", (key) => {
		expect(resolveMarker(key)).toBeUndefined();
	});
});

describe("scanIdOf", () => {
	const v = { versionId: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY" };
	it("is deterministic and a valid execution name (≤ 80 of [A-Za-z0-9-_])", () => {
		const id = scanIdOf("b", "k/model.sig", v);
		expect(id).toBe(scanIdOf("b", "k/model.sig", v));
		expect(id).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
	});
	it("differs with the bucket, the key and the version", () => {
		const ids = new Set([
			scanIdOf("b", "k/model.sig", v),
			scanIdOf("c", "k/model.sig", v),
			scanIdOf("b", "j/model.sig", v),
			scanIdOf("b", "k/model.sig", { versionId: "other" }),
			scanIdOf("b", "k/model.sig", { etag: "abc" }),
		]);
		expect(ids.size).toBe(5);
	});
	it("prefers the version id, and binds the ETag with or without quotes", () => {
		expect(scanIdOf("b", "k", { versionId: "1", etag: "x" })).toBe(scanIdOf("b", "k", { versionId: "1", etag: "y" }));
		expect(scanIdOf("b", "k", { etag: '"abc"' })).toBe(scanIdOf("b", "k", { etag: "abc" }));
		expect(normalizeEtag('W/"abc"')).toBe("abc");
	});
	it("cannot be forged by moving characters between bucket and key", () => {
		expect(scanIdOf("a", "b/c", { etag: "e" })).not.toBe(scanIdOf("a/b", "c", { etag: "e" }));
	});
});

describe("resourceNameOf", () => {
	it("names objects relative to the directory, '.' for a single file, nothing outside", () => {
		expect(resourceNameOf("jobs/j1/c/", "jobs/j1/c/sub/w.bin")).toBe("sub/w.bin");
		expect(resourceNameOf("jobs/j1/c/", "jobs/j1/d/w.bin")).toBeUndefined();
		expect(resourceNameOf("jobs/j1/m.gguf", "jobs/j1/m.gguf")).toBe(".");
		expect(resourceNameOf("jobs/j1/m.gguf", "jobs/j1/m.gguf.sigstore.json")).toBeUndefined();
	});
});
