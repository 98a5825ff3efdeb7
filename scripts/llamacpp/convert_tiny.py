#!/usr/bin/env python3
"""Convert the tiny Llama (and its LoRA adapter) of scripts/vllm/make_tiny_model.py to GGUF with llama.cpp's own
converters.

Usage (with the vLLM venv's python: the converters need torch, numpy, transformers):
  convert_tiny.py base LLAMA_CPP_DIR HF_MODEL_DIR OUT.gguf
  convert_tiny.py lora LLAMA_CPP_DIR PEFT_LORA_DIR HF_BASE_DIR OUT.gguf

The converters (LLAMA_CPP_DIR/convert_hf_to_gguf.py, convert_lora_to_gguf.py, with the gguf package vendored
beside them in gguf-py) know a BPE tokenizer's pre-tokenizer by the hash of how it splits a fixed text, and refuse
one they have not seen. The tiny model's tokenizer is trained locally (a byte-level BPE with the GPT-2
pre-tokenizer), so its hash is new: this wrapper tells the converter it is "gpt-2" (what it is) and runs the
converter unchanged otherwise. Nothing is downloaded.
"""
import runpy
import sys
from pathlib import Path


def main():
    args = sys.argv[1:]
    if not args or args[0] not in ("base", "lora") or len(args) != {"base": 4, "lora": 5}[args[0]]:
        sys.exit(__doc__)
    llama_dir = Path(args[1])
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    import conversion.base as base  # the converters' own module, patched before they run

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    if args[0] == "base":
        script = llama_dir / "convert_hf_to_gguf.py"
        sys.argv = [str(script), args[2], "--outfile", args[3], "--outtype", "f32"]
    else:
        script = llama_dir / "convert_lora_to_gguf.py"
        sys.argv = [str(script), args[2], "--base", args[3], "--outfile", args[4], "--outtype", "f32"]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
