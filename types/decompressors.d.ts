/** The parts of seek-bzip 2 ftguard uses (it ships no types). */

/** A byte sink with the decoders' output-stream shape (they call writeByte per byte). */
interface ByteSink {
	writeByte(b: number): void;
}

declare module "seek-bzip" {
	const Bunzip: {
		/** Decodes a whole bzip2 buffer into `output`; `multistream` reads concatenated streams. Throws on bad data. */
		decode(input: Buffer, output: ByteSink, multistream?: boolean): void;
	};
	export default Bunzip;
}
