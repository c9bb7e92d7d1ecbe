/**
 * The signature state's S3 side: the marker's bundle (its pinned version) and the manifest the manifest state
 * wrote to the report bucket, read back and checked to be the one the state names.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type { ResourceDescriptor, Serialization } from "../core/integrity/types";
import { parseManifestJson } from "../core/pipeline/manifest";
import type { ScanStateWith } from "../core/pipeline/types";
import { getObjectBytes, parseS3Uri } from "./object-store";
import { markerBytes } from "./objects";

const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

export async function signatureInputs(
	s3: S3Client,
	state: ScanStateWith<"objects" | "manifest">,
): Promise<{
	bundle: Uint8Array | undefined;
	manifest: {
		resources: ResourceDescriptor[];
		rootDigest: string;
		serialization: Pick<Serialization, "method" | "shard_size">;
	};
}> {
	const { bytes } = await getObjectBytes(s3, parseS3Uri(state.manifest.uri), MAX_MANIFEST_BYTES);
	const manifest = parseManifestJson(bytes, state.manifest);
	return { bundle: await markerBytes(s3, state), manifest };
}
