#!/usr/bin/env python3
"""Writes a safetensors file as a PyTorch zip checkpoint (what `torch.save(state_dict)` writes:
a zip of `archive/data.pkl`, one `archive/data/<n>` file per storage, `archive/version`),
without torch: the pickle names torch's own rebuild functions, as torch.save's does.

Made for the tests (#16): BioCLIP ships `open_clip_pytorch_model.bin`, and the tiny open_clip
model of the oracle written this way must load to the same outputs as its safetensors.

    python3 scripts/make-torch-checkpoint.py IN.safetensors OUT.bin
"""
import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile

# Stand-ins that pickle under torch's names (only their names go into the file).
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("written, never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
STORAGES = {"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage"}
for name in STORAGES.values():
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)


class Storage:
    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce__(self):
        stride, step = [], 1
        for d in reversed(self.shape):
            stride.insert(0, step)
            step *= d
        return (_rebuild_tensor_v2, (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, STORAGES[obj.dtype]), obj.key, "cpu", obj.numel)
        return None


def main(src, dst):
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    state = collections.OrderedDict()
    blobs = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        size = {"F32": 4, "F16": 2, "BF16": 2}[info["dtype"]]
        storage = Storage(str(len(blobs)), info["dtype"], (end - start) // size)
        blobs.append(data[start:end])
        state[key] = Tensor(storage, info["shape"])
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(state)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl.getvalue())
        z.writestr("archive/byteorder", "little")
        for i, blob in enumerate(blobs):
            z.writestr(f"archive/data/{i}", blob)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
