"""Writes the small `torch.save` files the unit tests of src/weights/torch_zip.rs read, with real
torch (the oracle's venv: ~/.cache/oracle-venv/bin/python tests/data/torch/make.py). Each is a
few KB; they are kept in the repository, so the tests need no torch.

- state_dict.pt: a state dict as `model.state_dict()` gives it (an OrderedDict with `_metadata`):
  views into one shared storage at offsets, float16 and bfloat16, a Parameter, an int buffer,
  an empty tensor, and a name that JSON must escape.
- training.pt: a training checkpoint: the weights under `state_dict` with DataParallel's
  `module.` prefix, next to an epoch, an optimizer's state (tensors too) and an
  argparse.Namespace.
- strided.pt: a transposed view (not contiguous).
- whole_model.pt: `torch.save(model)`, a pickled nn.Module rather than its state dict.
"""
import argparse
import collections
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
out = lambda name: os.path.join(here, name)
torch.manual_seed(0)

base = torch.arange(40, dtype=torch.float32) / 7
sd = collections.OrderedDict()
sd['visual.proj'] = base[3:15].view(3, 4)
sd['visual.bias'] = base[:3]
sd['text.half'] = (torch.arange(6, dtype=torch.float32) / 3).half().view(2, 3)
sd['text.bf16'] = (torch.arange(5, dtype=torch.float32) / 9).bfloat16()
sd['logit_scale'] = torch.nn.Parameter(torch.tensor(4.6052))
sd['text.position_ids'] = torch.arange(4)
sd['text.empty'] = torch.zeros(0, 3)
sd['odd "name"\twith\\escapes'] = base[30:32]
sd._metadata = collections.OrderedDict({'': {'version': 1}, 'visual': {'version': 1}})
torch.save(sd, out('state_dict.pt'))

weights = collections.OrderedDict(('module.' + k, v) for k, v in sd.items())
optimizer = {'state': {0: {'step': torch.tensor(3.0), 'exp_avg': torch.randn(3, 4)}},
             'param_groups': [{'lr': 0.1, 'betas': (0.9, 0.98), 'eps': 1e-6, 'params': [0]}]}
torch.save({'epoch': 3, 'name': 'run', 'state_dict': weights, 'optimizer': optimizer,
            'args': argparse.Namespace(lr=0.1, model='ViT-B-16')}, out('training.pt'))

torch.save({'visual.proj': torch.arange(12, dtype=torch.float32).view(3, 4).t()}, out('strided.pt'))

torch.save(torch.nn.Linear(2, 3), out('whole_model.pt'))
