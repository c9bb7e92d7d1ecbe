import { describe, expect, it } from "vitest";
import { scanIdOf } from "../../../lib/core/pipeline/artefact";
import { initialState } from "../../../lib/core/pipeline/start";

const event = (key: string, object: Record<string, unknown> = { etag: "abc" }) => ({
	source: "aws.s3",
	"detail-type": "Object Created",
	detail: { bucket: { name: "ckpts" }, object: { key, size: 1, ...object }, reason: "PutObject" },
});

describe("initialState", () => {
	it("turns a marker's event into the first scan state, bound to the marker's version", () => {
		expect(initialState(event("jobs/a/c/model.sig", { etag: "abc", "version-id": "v7" }))).toEqual({
			scanId: scanIdOf("ckpts", "jobs/a/c/model.sig", { versionId: "v7" }),
			bucket: "ckpts",
			marker: { key: "jobs/a/c/model.sig", versionId: "v7", etag: "abc" },
			artefact: "jobs/a/c/",
		});
	});
	it("binds to the ETag on a store without versioning", () => {
		expect(initialState(event("jobs/a/m.gguf.sigstore.json"))).toMatchObject({
			marker: { key: "jobs/a/m.gguf.sigstore.json", etag: "abc" },
			artefact: "jobs/a/m.gguf",
		});
	});
	it("tells a redelivered event from a re-upload of the same bytes by the sequencer, where there is no VersionId", () => {
		const id = (object: Record<string, unknown>) => initialState(event("jobs/a/c/model.sig", object))?.scanId;
		const first = id({ etag: "abc", sequencer: "0A1" });
		expect(id({ etag: "abc", sequencer: "0A1" })).toBe(first); // the same event again: one scan
		expect(id({ etag: "abc", sequencer: "0B2" })).not.toBe(first); // the same marker uploaded again: a new scan
		expect(id({ etag: "abd", sequencer: "0A1" })).not.toBe(first);
		// with a VersionId, the version alone names the scan (a new PUT is a new version)
		expect(id({ etag: "abc", "version-id": "v7", sequencer: "0A1" })).toBe(
			id({ etag: "abc", "version-id": "v7", sequencer: "0B2" }),
		);
	});
	it("takes the key as EventBridge gives it, not URL-decoded (S3's notifications to SQS/SNS/Lambda encode it)", () => {
		// the shape of a real EventBridge event (a CompleteMultipartUpload whose key carried raw colons, which an
		// S3 notification would send as %3A): a key with a space, a plus sign and colons is scanned as itself
		const key = "jobs/run 1+2/2023-08-08T14:03:40/model.sig";
		const real = {
			version: "0",
			id: "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf",
			"detail-type": "Object Created",
			source: "aws.s3",
			account: "111122223333",
			time: "2023-08-09T13:09:50Z",
			region: "eu-west-1",
			resources: ["arn:aws:s3:::ckpts"],
			detail: {
				version: "0",
				bucket: { name: "ckpts" },
				object: {
					key,
					size: 1832,
					etag: "4af981f98d22a0b9979da24b259e5e42-12",
					"version-id": "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G",
					sequencer: "0064D3901D00059242",
				},
				"request-id": "XRRTKJXSZQCWNQR1",
				requester: "111122223333",
				"source-ip-address": "1.2.3.4",
				reason: "CompleteMultipartUpload",
			},
		};
		expect(initialState(real)).toMatchObject({
			marker: { key, versionId: "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G" },
			artefact: "jobs/run 1+2/2023-08-08T14:03:40/",
		});
	});
	it("starts nothing for other keys", () => {
		expect(initialState(event("jobs/a/c/model.safetensors"))).toBeUndefined();
	});
	it.each([
		[{}],
		[{ ...event("k/model.sig"), source: "aws.s4" }],
		[{ ...event("k/model.sig"), "detail-type": "Object Deleted" }],
		[event("")],
	])("rejects %j as USAGE", (e) => {
		expect(() => initialState(e)).toThrow(/not an S3 Object Created event/);
	});
});
