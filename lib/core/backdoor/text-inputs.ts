/**
 * The token-id inputs a text model may take, by the names Hugging Face exports give them: what makes an ONNX model
 * a text classifier to the scanner (text-graph.ts) and to the pipeline's plan (lib/core/pipeline/model-info.ts).
 */
export const TEXT_INPUTS = ["input_ids", "attention_mask", "token_type_ids"] as const;
export type TextInput = (typeof TEXT_INPUTS)[number];

/** A model that takes token ids: it is scanned with texts and a tokenizer, not with tensors. */
export const takesTokenIds = (inputNames: readonly string[]): boolean => inputNames.includes("input_ids");
