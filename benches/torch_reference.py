"""PyTorch reference timings for `cargo bench` (run by benches/encode.rs in the same run).

Reads a JSON request on stdin: {"config": path to HF config.json, "pixels": [npy paths], "ids": [[77 ints]...],
"weights": optional safetensors path}. Builds transformers.CLIPModel (random init unless weights are given:
timings do not depend on the values), float32, 2 threads, eager/sdpa default, and prints medians in ms.
"""
import json
import sys
import time

import numpy as np
import torch
import transformers

req = json.load(sys.stdin)
torch.set_num_threads(2)
config = transformers.CLIPConfig.from_pretrained(req["config"])
if req.get("weights"):
    model = transformers.CLIPModel.from_pretrained(str(__import__("pathlib").Path(req["weights"]).parent))
else:
    torch.manual_seed(0)
    model = transformers.CLIPModel(config)
model.eval()
pixels = torch.from_numpy(np.concatenate([np.load(p) for p in req["pixels"]]))
ids = torch.tensor(req["ids"], dtype=torch.long)
warmup, runs = req.get("warmup", 3), req.get("runs", 10)


def median_ms(fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


with torch.no_grad():
    out = {
        "image_b1": median_ms(lambda: model.get_image_features(pixel_values=pixels[:1])),
        "image_b8": median_ms(lambda: model.get_image_features(pixel_values=pixels)),
        "text_30": median_ms(lambda: model.get_text_features(input_ids=ids)),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
print(json.dumps(out))
