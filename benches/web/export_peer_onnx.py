#!/usr/bin/env python3
"""The ONNX towers transformers.js needs to run a CLIP model, for the benches' peer
(benches/web/run.mjs, suite `gpu` with --weights <folder>).

Given a Hugging Face CLIP folder (config.json + model.safetensors, CLIPModel's layout) it writes
into OUT_DIR:

  clip_vision.onnx               pixel_values [batch, 3, H, W] float32 -> image_embeds [batch, proj]
                                 (projected, NOT L2-normalised); dynamic batch
  clip_text_dyn.onnx             input_ids [batch, seq] int64 -> text_embeds [batch, proj]; dynamic
                                 batch AND sequence axis, as real transformers.js CLIP exports have
                                 (its zero-shot pipeline pads a batch to the LONGEST prompt, not to 77)
  clip_vision_quantized.onnx     with --quantize: dynamic int8 (onnxruntime quantize_dynamic, QUInt8
  clip_text_dyn_quantized.onnx   weights), as the `_quantized.onnx` (dtype 'q8') files transformers.js
                                 uses by default on wasm
  export_report.json             what was exported from what (sha256 of the weights), the checks' diffs

torch.onnx.export (dynamo, opset 17, one file without external data) of transformers' CLIPModel
(eager attention), each tower checked against PyTorch with onnxruntime (CPU): the vision tower at
batch 1 and 3, the text tower at sequence lengths 8 and 77, batch 1 and 3 (prompts tokenized with
the repository's assets/tokenizer.json and padded with the end-of-text token, as transformers.js
pads); max abs diff must stay under 1e-4. The same export as the oracle's make_oracle.py `onnx`
stage and make_peer_onnx.py (in ../shared/oracle), for any model folder.

Run with the oracle's venv (torch, transformers, onnx, onnxscript, onnxruntime):

  ~/.cache/oracle-venv/bin/python benches/web/export_peer_onnx.py tests/data/tiny OUT_DIR [--quantize]

(run.mjs prints the exact command, with the OUT_DIR it looks in, where the files are missing).
The tiny test model takes seconds; a ViT-B/32 a few minutes on 2 cores.
"""
import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def maxabs(a, b):
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def towers(model):
    from torch import nn

    class VisionTower(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m.visual_projection(self.m.vision_model(pixel_values=pixel_values).pooler_output)

    class TextTower(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            return self.m.text_projection(self.m.text_model(input_ids=input_ids).pooler_output)

    return VisionTower(model).eval(), TextTower(model).eval()


PROMPTS = [
    "a photo of a cat.",
    "a photo of Quercus robur, a type of tree.",
    "a black and white photo of a man with a camera, taken on a rainy afternoon in a small town by the sea "
    "with boats in the harbour, gulls over the water and a lighthouse on the far rocks behind the old stone pier.",
]


def token_ids(tokenizer_json, length, batch, vocab_size):
    """`batch` prompts as transformers.js feeds them: start, tokens, end-of-text, padded with
    end-of-text to `length` (a prompt longer than that is cut, its end-of-text kept last)."""
    import torch
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(tokenizer_json))
    eot = tk.token_to_id("<|endoftext|>")
    rows = []
    for p in PROMPTS[:batch]:
        ids = tk.encode(p).ids
        if len(ids) > length:
            ids = ids[: length - 1] + [eot]
        rows.append(ids + [eot] * (length - len(ids)))
    x = torch.tensor(rows, dtype=torch.long)
    assert int(x.max()) < vocab_size, f"token ids up to {int(x.max())}, the model's vocabulary has {vocab_size}"
    return x


def export(mod, example, path, iname, oname, dynamic):
    """torch.onnx.export with dynamo (one file, no external data); the TorchScript exporter if that fails."""
    import torch

    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    errors = []
    for dynamo in (True, False):
        try:
            kw = dict(input_names=[iname], output_names=[oname], opset_version=17, dynamo=dynamo)
            if dynamo:
                kw["dynamic_shapes"] = {iname: {axis: torch.export.Dim(name, min=lo, max=hi) for axis, (name, lo, hi) in dynamic.items()}}
                kw["external_data"] = False
            else:
                kw["dynamic_axes"] = {iname: {axis: name for axis, (name, _, _) in dynamic.items()}, oname: {0: "batch"}}
            with torch.no_grad():
                torch.onnx.export(mod, (example,), str(path), **kw)
            return f"torch.onnx.export(dynamo={dynamo})", errors
        except Exception as e:  # noqa: BLE001
            errors.append(f"dynamo={dynamo}: {type(e).__name__}: {str(e)[:300]}")
            print(f"  export with dynamo={dynamo} failed: {errors[-1]}", file=sys.stderr)
    sys.exit(f"could not export {path.name}: {errors}")


def describe(path):
    import onnx

    mp = onnx.load(str(path), load_external_data=False)
    shape = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {
        "inputs": {i.name: shape(i) for i in mp.graph.input},
        "outputs": {o.name: shape(o) for o in mp.graph.output},
        "opset_imports": {o.domain or "ai.onnx": o.version for o in mp.opset_import},
        "nodes": len(mp.graph.node),
        "op_types": sorted({n.op_type for n in mp.graph.node}),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="Hugging Face CLIP folder: config.json + model.safetensors")
    ap.add_argument("out", type=Path, help="where the .onnx files go (made if missing)")
    ap.add_argument("--quantize", action="store_true", help="also the dynamic-int8 *_quantized.onnx files (dtype 'q8')")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / "assets/tokenizer.json", help="tokenizer.json for the check's prompts")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch
    import transformers
    from transformers import CLIPModel

    torch.set_num_threads(a.threads)
    for f in ("config.json", "model.safetensors"):
        if not (a.model / f).exists():
            sys.exit(f"{a.model / f} is missing: expected a Hugging Face CLIP folder (config.json + model.safetensors)")
    a.out.mkdir(parents=True, exist_ok=True)
    model = CLIPModel.from_pretrained(str(a.model), dtype=torch.float32, attn_implementation="eager").eval()
    vcfg, tcfg = model.config.vision_config, model.config.text_config
    size, ctx = vcfg.image_size, tcfg.max_position_embeddings
    vision, text = towers(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    report = {
        "source": {"folder": str(a.model.resolve()), "model.safetensors sha256": sha256(a.model / "model.safetensors"),
                   "config.json sha256": sha256(a.model / "config.json")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "onnxruntime": ort.__version__},
        "opset": 17,
        "towers": {},
    }

    # Vision: pixels in the model's size, seeded; checked at batch 1 and 3.
    gen = torch.Generator().manual_seed(7)
    pixels = torch.randn(3, vcfg.num_channels, size, size, generator=gen)
    path = a.out / "clip_vision.onnx"
    t0 = time.time()
    exporter, errors = export(vision, pixels, path, "pixel_values", "image_embeds", {0: ("batch", 1, 64)})
    info = {"file": path.name, "exporter": exporter, "export_seconds": round(time.time() - t0, 1), **describe(path), "checks": {}}
    if errors:
        info["export_errors"] = errors
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = pixels[:batch]
        with torch.no_grad():
            ref = vision(x).numpy()
        info["checks"][f"batch {batch}"] = maxabs(sess.run(None, {"pixel_values": x.numpy()})[0], ref)
    report["towers"]["vision"] = info

    # Text: dynamic batch and sequence; exported from a 20-token example, checked at 8 and 77 (the context).
    path = a.out / "clip_text_dyn.onnx"
    t0 = time.time()
    example = token_ids(a.tokenizer, 20, 3, tcfg.vocab_size)
    exporter, errors = export(text, example, path, "input_ids", "text_embeds", {0: ("batch", 1, 64), 1: ("seq", 2, ctx)})
    info = {"file": path.name, "exporter": exporter, "export_seconds": round(time.time() - t0, 1), **describe(path), "checks": {}}
    if errors:
        info["export_errors"] = errors
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for length in sorted({8, ctx}):
        for batch in (1, 3):
            x = token_ids(a.tokenizer, length, batch, tcfg.vocab_size)
            with torch.no_grad():
                ref = text(x).numpy()
            info["checks"][f"seq {length}, batch {batch}"] = maxabs(sess.run(None, {"input_ids": x.numpy()})[0], ref)
    report["towers"]["text"] = info

    for tower, info in report["towers"].items():
        print(f"{info['file']}: {os.path.getsize(a.out / info['file'])} bytes, {info['exporter']}, {info['export_seconds']} s; "
              f"inputs {info['inputs']}, outputs {info['outputs']}; max abs diff vs torch: "
              + ", ".join(f"{k} {v:.2e}" for k, v in info["checks"].items()))
    bad = [f"{t} {k}: {v:.2e}" for t, i in report["towers"].items() for k, v in i["checks"].items() if not v < TOL]
    report["ok"] = not bad

    if a.quantize and not bad:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        report["quantized"] = {}
        for name in ("clip_vision", "clip_text_dyn"):
            t0 = time.time()
            q = a.out / f"{name}_quantized.onnx"
            quantize_dynamic(str(a.out / f"{name}.onnx"), str(q), weight_type=QuantType.QUInt8)
            report["quantized"][q.name] = {"bytes": os.path.getsize(q), "seconds": round(time.time() - t0, 1)}
            print(f"{q.name}: {os.path.getsize(q)} bytes (dynamic int8, QUInt8 weights)")

    (a.out / "export_report.json").write_text(json.dumps(report, indent=1) + "\n")
    if bad:
        # The files stay, for a look; run.mjs does not take a folder whose report is not ok.
        sys.exit(f"the ONNX towers disagree with torch (tolerance {TOL}): {'; '.join(bad)}")
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
