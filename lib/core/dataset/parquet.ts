/**
 * Parquet dataset files through hyparquet (pure JavaScript, maintained; hyparquet-compressors adds zstd, gzip,
 * brotli and lz4), one row group at a time so memory is one row group whatever the file size. Rows come out as
 * objects keyed by column, exactly what a JSON-lines record of the same dataset would be, so format detection and
 * lineage treat both alike. BigInt columns are turned into numbers where exact, else strings.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { FtguardError } from "../errors";
import type { DatasetItem } from "./reader";

function plain(v: unknown): unknown {
	if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
	if (v instanceof Date) return v.toISOString();
	if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
	if (Array.isArray(v)) return v.map(plain);
	if (typeof v === "object" && v !== null) {
		const o: Record<string, unknown> = {};
		for (const [k, x] of Object.entries(v)) o[k] = plain(x);
		return o;
	}
	return v;
}

export async function* readParquet(file: string): AsyncGenerator<DatasetItem> {
	let buffer: Awaited<ReturnType<typeof asyncBufferFromFile>>;
	let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
	try {
		buffer = await asyncBufferFromFile(file);
		metadata = await parquetMetadataAsync(buffer);
	} catch (e) {
		throw new FtguardError("DATA_INVALID", `${file}: not a readable Parquet file: ${(e as Error).message}`);
	}
	let row = 0;
	for (const group of metadata.row_groups) {
		const rows = Number(group.num_rows);
		let objects: Record<string, unknown>[];
		try {
			objects = await parquetReadObjects({ file: buffer, metadata, rowStart: row, rowEnd: row + rows, compressors });
		} catch (e) {
			throw new FtguardError(
				"DATA_INVALID",
				`${file}: row group at row ${row + 1} unreadable: ${(e as Error).message}`,
			);
		}
		for (const o of objects) {
			row++;
			yield { file, line: row, value: plain(o) };
		}
	}
}
