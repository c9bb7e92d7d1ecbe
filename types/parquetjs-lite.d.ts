/** The parts of parquetjs-lite the dataset tests use to write Parquet files (it ships no types). */
declare module "parquetjs-lite" {
	interface ParquetField {
		type?: "UTF8" | "INT64" | "INT32" | "DOUBLE" | "BOOLEAN";
		compression?: "UNCOMPRESSED" | "SNAPPY" | "GZIP";
		optional?: boolean;
		repeated?: boolean;
		fields?: Record<string, ParquetField>;
	}
	class ParquetSchema {
		constructor(fields: Record<string, ParquetField>);
	}
	class ParquetWriter {
		static openFile(
			schema: ParquetSchema,
			path: string,
			opts?: { rowGroupSize?: number; pageSize?: number; useDataPageV2?: boolean },
		): Promise<ParquetWriter>;
		appendRow(row: Record<string, unknown>): Promise<void>;
		close(): Promise<void>;
	}
	const parquet: { ParquetSchema: typeof ParquetSchema; ParquetWriter: typeof ParquetWriter };
	export default parquet;
}
