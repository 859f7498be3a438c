"""PyTorch reference timings for `cargo bench` (benches/encode.rs runs it in the same run) and for
the GPU comparison of #18 (`fieldclip bench --backend wgpu` next to PyTorch CUDA).

Reads a JSON request on stdin: {"config": path to HF config.json, "pixels": [npy paths], "ids": [[77 ints]...],
"weights": optional safetensors path, "device": "cpu" (default) or "cuda", "dtype": "float32" (default) or
"float16", "threads": CPU threads (default 2), "batches": image batch sizes (default [1, 8]; the pixels are
repeated to fill a batch)}. Builds transformers.CLIPModel (random init unless weights are given: timings do not
depend on the values), its default attention (sdpa), and prints medians and minimums in ms.

Prompts are cut to the batch's longest end-of-text, as transformers' processor pads them
(`padding=True`, to the longest): the peer as its users run it, not padded to 77.
Every timed call ends with the embeddings on the CPU, as fieldclip's calls do.
"""
import json
import pathlib
import sys
import time

import numpy as np
import torch
import transformers

req = json.load(sys.stdin)
device = torch.device(req.get("device", "cpu"))
dtype = getattr(torch, req.get("dtype", "float32"))
torch.set_num_threads(req.get("threads", 2))
config = transformers.CLIPConfig.from_pretrained(req["config"])
if req.get("weights"):
    model = transformers.CLIPModel.from_pretrained(str(pathlib.Path(req["weights"]).parent))
else:
    torch.manual_seed(0)
    model = transformers.CLIPModel(config)
model = model.to(device=device, dtype=dtype).eval()
pixels = torch.from_numpy(np.concatenate([np.load(p) for p in req["pixels"]]))
ids = torch.tensor(req["ids"], dtype=torch.long)
# The first <|endoftext|> (49407) of each row; the batch cut after the longest.
eot = (ids == 49407).int().argmax(dim=1)
ids = ids[:, : int(eot.max()) + 1].to(device)
warmup, runs = req.get("warmup", 3), req.get("runs", 10)


def timed(fn):
    start = time.perf_counter()
    fn()
    first = (time.perf_counter() - start) * 1000
    for _ in range(max(warmup - 1, 0)):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(min(times)), first


def features(x):
    # transformers 5 returns a model output with the projected embeddings as `pooler_output`.
    return (x if hasattr(x, "shape") else x.pooler_output).float().cpu()


def batch_of(n):
    reps = -(-n // len(pixels))
    return pixels.repeat(reps, 1, 1, 1)[:n].to(device=device, dtype=dtype)


out = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(device),
       "dtype": str(dtype).replace("torch.", ""), "prompt_tokens": ids.shape[1]}
if device.type == "cuda":
    out["gpu"] = torch.cuda.get_device_name(0)
with torch.no_grad():
    for n in req.get("batches", [1, 8]):
        x = batch_of(n)
        median, minimum, first = timed(lambda: features(model.get_image_features(pixel_values=x)))
        out[f"image_b{n}"], out[f"image_b{n}_min"], out[f"image_b{n}_first"] = median, minimum, first
    median, minimum, first = timed(lambda: features(model.get_text_features(input_ids=ids)))
    out[f"text_{len(ids)}"], out[f"text_{len(ids)}_min"], out[f"text_{len(ids)}_first"] = median, minimum, first
print(json.dumps(out))
