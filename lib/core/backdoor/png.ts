/**
 * A minimal PNG encoder for the reversed-trigger images a reviewer looks at.
 * 8-bit greyscale or RGB, one IDAT, no filtering: the images are tiny (a few
 * hundred pixels, upscaled), so compression ratio does not matter and a
 * dependency would be more code than this.
 */
import { crc32, deflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
	const out = Buffer.alloc(12 + data.length);
	out.writeUInt32BE(data.length, 0);
	out.write(type, 4, "ascii");
	data.copy(out, 8);
	out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
	return out;
}

/**
 * Encodes an image given as channel-first floats in [0, 1] (values outside are
 * clamped), `channels` 1 (grey) or 3 (RGB), each pixel repeated `scale` times in
 * both directions so an 8×8 trigger is visible.
 */
export function encodePng(pixels: Float32Array, channels: 1 | 3, height: number, width: number, scale = 1): Buffer {
	if (pixels.length !== channels * height * width) {
		throw new RangeError(`png: ${pixels.length} values for ${channels}×${height}×${width}`);
	}
	const W = width * scale;
	const H = height * scale;
	const rowBytes = 1 + W * channels;
	const raw = Buffer.alloc(rowBytes * H);
	for (let y = 0; y < H; y++) {
		const sy = Math.floor(y / scale);
		// filter byte 0 (None) starts each row
		for (let x = 0; x < W; x++) {
			const sx = Math.floor(x / scale);
			for (let c = 0; c < channels; c++) {
				const v = pixels[c * height * width + sy * width + sx] ?? 0;
				const byte = Number.isFinite(v) ? Math.round(Math.min(1, Math.max(0, v)) * 255) : 0;
				raw[y * rowBytes + 1 + x * channels + c] = byte;
			}
		}
	}
	const ihdr = Buffer.alloc(13);
	ihdr.writeUInt32BE(W, 0);
	ihdr.writeUInt32BE(H, 4);
	ihdr[8] = 8; // bit depth
	ihdr[9] = channels === 1 ? 0 : 2; // colour type: grey or truecolour
	// bytes 10-12: compression 0, filter 0, interlace 0
	return Buffer.concat([
		SIGNATURE,
		chunk("IHDR", ihdr),
		chunk("IDAT", deflateSync(raw)),
		chunk("IEND", Buffer.alloc(0)),
	]);
}
