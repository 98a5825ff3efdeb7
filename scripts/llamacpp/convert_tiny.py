#!/usr/bin/env python3
"""Convert the tiny Llama of scripts/vllm/make_tiny_model.py to GGUF with llama.cpp's own converter.

Usage: convert_tiny.py LLAMA_CPP_DIR HF_MODEL_DIR OUT.gguf    (run it with the vLLM venv's python: the
                                                              converter needs torch, numpy, transformers)

The converter (LLAMA_CPP_DIR/convert_hf_to_gguf.py, with the gguf package vendored beside it in gguf-py) knows
a BPE tokenizer's pre-tokenizer by the hash of how it splits a fixed text, and refuses any tokenizer it has not
seen. The tiny model's tokenizer is trained locally (a byte-level BPE with the GPT-2 pre-tokenizer), so its hash
is new: this wrapper tells the converter it is "gpt-2" (what it is) and runs the converter unchanged otherwise.
Nothing is downloaded.
"""
import runpy
import sys
from pathlib import Path


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    llama_dir, model_dir, out = (Path(a) for a in sys.argv[1:])
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    import conversion.base as base  # the converter's own module, patched before it runs

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    sys.argv = [str(llama_dir / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(out), "--outtype", "f32"]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
