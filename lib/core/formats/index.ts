/**
 * The scanner registry: every format scanner, in detection order — fixed magic numbers first, then zips by their first
 * entry, then files the loaders recognise by name (Hugging Face configs, Python), then the protobuf and pickle
 * heuristics, and `.h5` by name last. The engine (scan.ts) runs every scanner that claims a file, one per format (the
 * first names the file's format), and adds the loaders no scanner stands for (pickle from byte 0, decompressors,
 * archive readers). Add new scanners here.
 */
import { ggufScanner } from "./gguf";
import {
	hfConfigScanner,
	pythonFileScanner,
	sentenceTransformersModulesScanner,
	tokenizerConfigScanner,
} from "./hf-config";
import { kerasScanner } from "./keras";
import { kerasH5NamedScanner, kerasH5Scanner } from "./keras-h5";
import { npzScanner, numpyScanner } from "./numpy";
import { onnxScanner } from "./onnx";
import { pickleScanner } from "./pickle-scanner";
import { pytorchLegacyScanner, pytorchZipScanner } from "./pytorch";
import { pytorchTarScanner } from "./pytorch-tar";
import { safetensorsScanner } from "./safetensors";
import type { ScanOptions } from "./scan";
import type { Scanner } from "./types";

export const SCANNERS: readonly Scanner[] = [
	safetensorsScanner,
	ggufScanner,
	numpyScanner,
	pytorchTarScanner,
	kerasH5Scanner,
	pytorchLegacyScanner,
	pytorchZipScanner,
	npzScanner,
	kerasScanner,
	hfConfigScanner,
	tokenizerConfigScanner,
	sentenceTransformersModulesScanner,
	pythonFileScanner,
	onnxScanner,
	pickleScanner,
	kerasH5NamedScanner, // .h5 by name, last: an HDF5 superblock after a user block beyond the head
];

/** Formats looked for in files another scanner claimed (Scanner.alsoIn says where their loaders find them). */
export const POLYGLOTS: readonly Scanner[] = [kerasH5Scanner, pickleScanner];

export function defaultScanOptions(): Pick<ScanOptions, "scanners" | "archiveFallback" | "polyglots"> {
	return {
		scanners: SCANNERS,
		archiveFallback: pytorchZipScanner,
		polyglots: POLYGLOTS,
	};
}
