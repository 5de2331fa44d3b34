"""Does masking cross-attention by clause bind each motion to its character? A test on the
built-in model, two-character captions of the validation sets only.

For a caption with two clauses ("a red circle moves left while an orange square bounces"), each
cross-attention layer assigns every video token to a character by where its attention goes (the
summed probability on one clause's noun phrase over RATIO times the other's), then hides the
other clause from it: its verb phrase (--mode vp) or the whole clause (--mode clause). The
regions come from the attention itself, at every step below --max-step; --layers limits the
blocks. --mode off is plain sampling through the same processor.

    python benchmarks/binding_masks.py --mode off --first-seed 2000000000
    python benchmarks/binding_masks.py --mode vp --ratio 3 --max-step 10 --first-seed 2000000000

Prints one JSON line (two-character motion, count and its misses); --out appends it to a file.
Result: benchmarks/results/binding_masks.json (docs/model-card.md, Known limitations).
"""
import os, sys, json, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from motionq.backbones import load_backbone
from motionq.backbones.animatic import published_config
from motionq.train import world_config, sample_frames_batch
from motionq.spriteworld import analyse, caption, match_characters, parse_caption, sample_scene
from motionq.spriteworld.captions import clause_roles
from diffusers.models.transformers.transformer_wan import _get_qkv_projections

class State:
    groups = None   # (A_np, A_vp, B_np, B_vp) token index lists
    cond = False
    mode = "vp"
    ratio = 1.5
    thr = 0.0
    step = 0
    max_step = 99
    layers = None

S = State()

class Proc:
    def __init__(self, idx): self.idx = idx
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        q, k, v = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q = q.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        k = k.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        v = v.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        mask = None
        if S.cond and S.groups is not None and S.step < S.max_step and (S.layers is None or self.idx in S.layers):
            an, av, bn, bv = S.groups
            p = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1).mean(1)  # B,S,T
            ma, mb = p[..., an].sum(-1), p[..., bn].sum(-1)
            isa = (ma > S.ratio * mb) & (ma > S.thr)
            isb = (mb > S.ratio * ma) & (mb > S.thr)
            T = k.shape[2]
            mask = torch.zeros(q.shape[0], 1, q.shape[2], T)
            hideb = bv if S.mode == "vp" else bn + bv
            hidea = av if S.mode == "vp" else an + av
            neg = torch.finfo(q.dtype).min
            ib = torch.zeros(T, dtype=torch.bool)
            ib[hideb] = True
            ia = torch.zeros(T, dtype=torch.bool)
            ia[hidea] = True
            mask = mask.masked_fill(isa[:, None, :, None] & ib[None, None, None, :], neg)
            mask = mask.masked_fill(isb[:, None, :, None] & ia[None, None, None, :], neg)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).flatten(2, 3).type_as(q)
        o = attn.to_out[1](attn.to_out[0](o))
        return o

def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--first-seed", type=int, default=2_000_000_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--mode", default="off")
    ap.add_argument("--ratio", type=float, default=1.5)
    ap.add_argument("--thr", type=float, default=0.0)
    ap.add_argument("--max-step", type=int, default=99)
    ap.add_argument("--layers", default=None)
    ap.add_argument("--all", action="store_true", help="score one-character clips too")
    ap.add_argument("--out", default=None, help="append the result line to this file")
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = load_backbone("animatic").pipe
    pipe.set_progress_bar_config(disable=True)
    tr = pipe.transformer
    procs = {}
    for name in tr.attn_processors:
        if ".attn2." in name:
            procs[name] = Proc(int(name.split(".")[1]))
    tr.set_attn_processor({**tr.attn_processors, **procs})
    S.mode, S.ratio, S.thr, S.max_step = a.mode, a.ratio, a.thr, a.max_step
    S.layers = None if a.layers is None else {int(x) for x in a.layers.split(",")}
    def pre(mod, args, kwargs):
        ehs = kwargs["encoder_hidden_states"]
        S.cond = bool(ehs[:, 1:].abs().sum() > 0)  # the empty prompt has only </s>
        return None
    tr.register_forward_pre_hook(pre, with_kwargs=True)
    def post(mod, args, kwargs, out):
        if not S.cond:  # the unconditional pass ends a step
            S.step += 1
    tr.register_forward_hook(post, with_kwargs=True)
    cfg = published_config()
    wcfg = world_config(cfg)
    tot = {"asked": 0, "motion": 0, "clips": 0, "count": 0, "two_asked": 0, "two_motion": 0, "colour": 0, "shape": 0}
    errs = {}
    t0 = time.time()
    for i in range(a.samples):
        seed = a.first_seed + i
        rng = np.random.default_rng(seed)
        text = caption(sample_scene(rng, wcfg), rng, detail="full", cfg=wcfg)
        asked = parse_caption(text)["characters"]
        if len(asked) != 2 and not a.all:
            continue
        S.groups = None
        roles = clause_roles(text) if a.mode != "off" else None
        if roles and len(asked) == 2:
            # split into the two clauses by order: roles list is clause A's np, vp then B's
            idx_np, idx_vp = [[], []], [[], []]
            c, prev = -1, None
            for (k, kind, lab) in roles:
                if kind == "subject" and prev != "subject":
                    c += 1
                (idx_np if kind == "subject" else idx_vp)[c].append(k)
                prev = kind
            S.groups = (idx_np[0], idx_vp[0], idx_np[1], idx_vp[1])
        S.step = 0
        frames = sample_frames_batch(pipe, [text], [seed], cfg, 20, 4.0)[0]
        found = analyse(frames).characters
        tot["clips"] += 1
        tot["count"] += int(len(found) == len(asked))
        if len(found) != len(asked):
            key = f"{len(asked)}->{len(found)}"
            errs[key] = errs.get(key, 0) + 1
        for want, got in match_characters(asked, found):
            tot["asked"] += 1
            ok = int(got is not None and got.motion == want.get("motion"))
            tot["motion"] += ok
            tot["colour"] += int(got is not None and got.colour == want.get("colour"))
            tot["shape"] += int(got is not None and got.shape == want.get("shape"))
            if len(asked) == 2:
                tot["two_asked"] += 1
                tot["two_motion"] += ok
    line = json.dumps({"args": vars(a), **tot, "errs": errs, "s": round(time.time() - t0)})
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")

if __name__ == "__main__":
    main()
