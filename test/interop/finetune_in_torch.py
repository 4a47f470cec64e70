"""The PyTorch half of the hand-off test: load an exported backbone strictly, fine-tune it with
a new classifier for a few SGD steps (BatchNorm in training mode), and write the fine-tuned
backbone (no classifier) plus its eval-mode features on the test input."""
import json
import os
import sys

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "lib", "interop", "python"))
import mixmask_torch as mt  # noqa: E402

spec = json.loads(sys.argv[1])
torch.manual_seed(0)
model, meta = mt.load_exported(spec["exported"])  # strict=True
model.fc = nn.Linear(mt.model_feature_dim(model), 4)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = torch.rand(8, 3, spec["size"], spec["size"])
y = torch.arange(8) % 4
for _ in range(3):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
model.fc = nn.Identity()
model.eval()
state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
mt.write_safetensors(spec["finetuned"], state)
inp, _ = mt.read_safetensors(spec["input"])
with torch.no_grad():
    f = model(inp["x"].permute(0, 3, 1, 2).contiguous())
mt.write_safetensors(spec["features"], {"features": f.contiguous()})
