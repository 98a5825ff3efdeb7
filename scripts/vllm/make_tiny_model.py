#!/usr/bin/env python3
"""Make a tiny Llama base model and a LoRA adapter for it, offline and deterministically.

Usage: make_tiny_model.py [--force] OUT_DIR     (run it with the vLLM venv's python: it needs torch,
                                                 transformers, tokenizers and peft)

Writes
  OUT_DIR/base   LlamaForCausalLM (2 layers, hidden 128, 4 heads of 32: a head size vLLM's CPU attention
                 supports), bf16 safetensors, byte-level BPE tokenizer (4096), chat template
  OUT_DIR/lora   PEFT LoRA adapter, r=8 on q_proj and v_proj, lora_B drawn from N(0, 0.02) so that the
                 adapter really changes the output (PEFT initialises it to zero: a no-op adapter)
  OUT_DIR/manifest.json   the recipe and the sha256 of every file written

Nothing is downloaded. The tokenizer is trained on /usr/share/common-licenses (Debian's base-files: the same
text on every Debian 12 machine) or, without it, on a built-in corpus; every random draw is seeded, so two
runs write byte-identical files. The files are written to a temporary directory that is renamed into place
at the end: OUT_DIR either holds a complete model or does not exist. When OUT_DIR/manifest.json already
records this recipe, nothing is done ("cached"); --force rebuilds.
"""
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Change anything here and cached models are rebuilt.
RECIPE = {
    "recipe": 1,
    "seed": 1234,
    "vocab": 4096,
    "hidden_size": 128,
    "intermediate_size": 256,
    "layers": 2,
    "heads": 4,
    "max_position_embeddings": 2048,
    "dtype": "bfloat16",
    "lora": {"r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"], "b_std": 0.02},
    "corpus": "/usr/share/common-licenses/*",
}
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def log(msg):
    print(f"[make_tiny_model {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def corpus():
    """Lines of local text, in a fixed order; a built-in corpus when the licences are missing."""
    n = 0
    for path in sorted(glob.glob(RECIPE["corpus"])):
        if os.path.isdir(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="ignore") as fh:
                for line in fh:
                    n += 1
                    yield line
        except OSError:
            continue
    if n < 1000:
        words = ("the quick brown fox jumps over the lazy dog while a licence grants permission to copy "
                 "modify and distribute this software provided that the notice appears in all copies").split()
        for i in range(20000):
            yield " ".join(words[(i * 7 + k) % len(words)] for k in range(3 + i % 11)) + f" {i}\n"


def build_tokenizer(base_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=RECIPE["vocab"],
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    bos = tok.token_to_id("<s>")
    # BOS on encode, like Llama; vLLM's chat endpoint encodes the template (which starts with bos_token)
    # with add_special_tokens=False, so chat prompts do not get it twice.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=RECIPE["max_position_embeddings"],
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(base_dir)
    return hf_tok


def build(tmp, final):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(RECIPE["seed"])
    base_dir = os.path.join(tmp, "base")
    lora_dir = os.path.join(tmp, "lora")
    os.makedirs(base_dir)

    t = time.monotonic()
    hf_tok = build_tokenizer(base_dir)
    log(f"tokenizer: {len(hf_tok)} tokens in {time.monotonic() - t:.1f} s")

    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=RECIPE["hidden_size"],
        intermediate_size=RECIPE["intermediate_size"],
        num_hidden_layers=RECIPE["layers"],
        num_attention_heads=RECIPE["heads"],
        num_key_value_heads=RECIPE["heads"],
        max_position_embeddings=RECIPE["max_position_embeddings"],
        rms_norm_eps=1e-5,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype=RECIPE["dtype"],
    )
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(hf_tok, key))
    model.save_pretrained(base_dir, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())

    lcfg = LoraConfig(
        r=RECIPE["lora"]["r"],
        lora_alpha=RECIPE["lora"]["alpha"],
        target_modules=RECIPE["lora"]["targets"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lcfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, RECIPE["lora"]["b_std"])
    peft_model.save_pretrained(lora_dir, safe_serialization=True)
    # Informational for vLLM (it serves the adapter on whatever base it was started with): the final path.
    acfg_path = os.path.join(lora_dir, "adapter_config.json")
    with open(acfg_path) as fh:
        acfg = json.load(fh)
    acfg["base_model_name_or_path"] = os.path.join(final, "base")
    with open(acfg_path, "w") as fh:
        json.dump(acfg, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return len(hf_tok), params


def digests(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            if rel == "manifest.json":
                continue
            with open(path, "rb") as fh:
                out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return dict(sorted(out.items()))


def main(argv):
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    final = os.path.abspath(args[0])
    manifest_path = os.path.join(final, "manifest.json")
    if not force and os.path.exists(manifest_path):
        try:
            with open(manifest_path) as fh:
                manifest = json.load(fh)
            ok = manifest.get("recipe") == RECIPE and manifest.get("files") == digests(final)
        except (OSError, ValueError):
            ok = False
        if ok:
            log(f"cached: {final} (recipe and file digests match)")
            return 0
        log(f"{final} is incomplete or from another recipe: rebuilding")

    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tiny-model.", dir=parent)
    try:
        t = time.monotonic()
        vocab, params = build(tmp, final)
        manifest = {"recipe": RECIPE, "vocab": vocab, "params": params, "files": digests(tmp)}
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.write("\n")
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
        os.chmod(final, 0o755)
        log(f"wrote {final} in {time.monotonic() - t:.1f} s: vocab {vocab}, {params} parameters, "
            f"{len(manifest['files'])} files")
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
