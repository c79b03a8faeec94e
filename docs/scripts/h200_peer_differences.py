# ruff: noqa  (a measuring script run on the lent GPU, 2026-12-04; docs/benchmarks.md)
"""Dump the blocks where the GPU peers' bytes differ from fp4ref's (for classification on the CPU)."""
import os, sys, warnings
import numpy as np, torch
import fp4ref
from fp4ref.bench import gpu_peers
warnings.simplefilter("ignore")
out = os.environ.get("OUT", "/tmp")
rows, cols = 8192, 32768
g = torch.Generator(device="cuda").manual_seed(0)
t = torch.randn(rows, cols, device="cuda", generator=g)
amax = t.abs().max()
ts = float(amax.to(torch.float32) / (448.0 * 6.0))
dump = {"tensor_scale": np.float32(ts)}
def ours(**kw):
    q = fp4ref.quantize(t, **kw)
    return q.scales.reshape(rows, -1), gpu_peers.unpacked(q.blocks)
cases = []
tq = gpu_peers.torchao_quantizers(t, ts)
nv_ref = ours(format="nvfp4", profile="torchao-floor", tensor_scale=ts)
mx_ref = ours(format="mxfp4", profile="torchao-floor")
for name in ("nvfp4 eager", "nvfp4 compiled", "mxfp4 eager", "mxfp4 compiled"):
    r = tq[name](); s, c = r[0].reshape(rows, -1), gpu_peers.unpacked(r[1])
    cases.append((name.replace(" ", "_"), name.split()[0], (s, c), nv_ref if "nv" in name else mx_ref))
import qwantize
q_ref = ours(format="mxfp4", profile="qwantize")
r = qwantize.mxfp4_naive_triton(t.reshape(-1, 32))
cases.append(("qw_naive", "mxfp4", gpu_peers.qwantize_bytes("mxfp4", *r, rows), q_ref))
for name, fmt, (ps, pc), (fs, fc) in cases:
    b = 32 if fmt == "mxfp4" else 16
    diff = ((pc.reshape(rows, -1, b) != fc.reshape(rows, -1, b)).any(-1) | (ps.reshape(rows, -1) != fs.reshape(rows, -1))).reshape(-1)
    idx = torch.nonzero(diff).reshape(-1)[:400]
    print(name, int(diff.sum()), "differ")
    xb = t.reshape(-1, b)[idx]
    dump[name + "_x"] = xb.cpu().numpy()
    dump[name + "_peer_scale"] = ps.reshape(-1)[idx].cpu().numpy()
    dump[name + "_peer_codes"] = pc.reshape(-1, b)[idx].cpu().numpy()
    dump[name + "_ours_scale"] = fs.reshape(-1)[idx].cpu().numpy()
    dump[name + "_ours_codes"] = fc.reshape(-1, b)[idx].cpu().numpy()
np.savez(os.path.join(out, "diag.npz"), **dump)
