"""Character-level GPT on Tiny Shakespeare: nanoGPT's CPU reference recipe vs sslab's recipe, in plain PyTorch.

RESULTS (2 shared CPU cores, torch 2.14, transformers 5.24, 2 threads, OMP_WAIT_POLICY=PASSIVE, seed 0):
    .venv/bin/python benchmarks/gpt_reference.py --interleave   # both recipes in one process, in turns
  reference (nanoGPT CPU recipe, 2000 iters x 12 x 64 = 1.54M characters): val 2.62 @100, 2.08 @1000, 1.953 @1600,
      final 1.907 (whole val set 1.897) after 322 s of training. It NEVER reaches 1.88 in its 2000 iterations
      (nanoGPT's model differs: bias=False, exact GELU; its eval uses fresh random batches); the same curve, to
      4 decimals, in all three runs of it. So the budget used below is the reference's whole 2000-iteration training time, stricter
      than "time to 1.88".
  sslab recipe (SSLAB below: same model, batch 8 x 64, lr 3e-3, 30 warm-up iters, cosine to 1e-4 over 3000 iters):
      val 1.8001 @2550 (288 s), <= 1.80 first at iter 2700 = 303.6 s (1.38M characters), final 1.771 @3000
      (whole val set 1.754) after 333 s.
  => time to 1.80 (sslab) / reference's full 2000-iteration time = 303.6 / 322.3 = 0.94 (interleaved run).
  Seconds per step, interleaved (step_seconds, --timing): sslab/ref = 0.67 on a quieter machine, 0.71 in the run
  above; a sequential back-to-back run (ref, then sslab) gave 0.86 from load drift (315.6 s vs 274.7 s, ratio
  1.15 there), which is why the recipes are compared interleaved. The margin is thin (~5-10%): 1.80 is crossed
  between iters 2550 and 2700.
  Search (loss vs iteration does not depend on the load, so most runs used 1 thread each, two in parallel):
      ref arch, 16 x 128 batch, lr 3e-3, 700 iters (1.43M chars)     -> 2.012: large batches lose, step-limited
      ref arch, 12 x 64, lr 3e-3, warm-up 30, 2000 iters             -> 1.80 at iter 1800 (0.90 of the ref's
                                                                        steps, same step time), final 1.786
      ref arch, 12 x 64, lr 6e-3                                     -> no better than 3e-3 (2.080 vs 2.065 @700)
      ref arch, 8 x 64, lr 3e-3, 3000 iters  (chosen)                 -> 1.80 at ~2550-2700 x 0.67-0.71 step time
      ref arch, 8 x 64, lr 3e-3, 2400 iters                           -> final 1.820: too short
      ref arch, 4 x 64, lr 2e-3, 4000 iters                           -> worse per unit time (2.061 vs 2.031)
      n_embd 192 / 6 heads, 4 x 64, lr 2e-3, 2400 iters               -> much worse per unit time (2.237 vs 2.095)
  Contrary to the hint, larger batch x context did not use the 2 cores better here: step time was proportional
  to characters per step (8 x 64 took 0.67 of 12 x 64; 4 x 64 0.40), and fewer, larger steps learn less per
  character in this short, step-limited regime.

THROUGH THE ENGINE, AFTER THE STEP WAS MADE CHEAPER (2026-12-01, `--engine`, one process, nothing else running):
  reference: 2000 iters in 216.7 s of training, final val 1.9072 (whole val set 1.8971): never reaches 1.88.
  sslab engine: 2,921 steps (configs/gpt-char.yaml, now 1.5 epochs) in 211.9 s engine clock, 213.6 s wall;
      held-out loss 1.776 on its own stream. Time ratio 0.99: within the reference's time, by a thin margin.
  What changed in sslab (the reference keeps HF's defaults and PyTorch's default AdamW, as nanoGPT does on a CPU):
      - AdamW fused (`fused=True`; optimiser step 2.6 ms against 11.0 ms foreach, medians, micro-benchmark);
      - the NaN guard reads the total gradient norm that clipping computes instead of summing every gradient again
        (2.5 ms a step);
      - GPT-2's tanh GELU as PyTorch's one fused op ("gelu_pytorch_tanh", the same function) rather than
        transformers' "gelu_new" (five elementwise ops): 74 against 83 ms a step (medians of 4 x 40 steps).
      With the first two changes alone (1.554 epochs, `--engine`): ratio 1.01, held-out 1.780. With all three at
      1.45 epochs (the engine alone, no reference in that process): 201 s wall, held-out 1.790.
  A day whose step ratio is nearer the 0.77 below than the 0.67 of this run would put the ratio above 1 again.

THROUGH THE ENGINE (2026-11-30, `--engine`: the reference in a plain loop, then `sslab.pretrain` with
configs/gpt-char.yaml in the same process; the machine ran faster than on the day above):
  reference: 2000 iters in 196.6 s of training (evaluation excluded), final val 1.9072, whole val set 1.8971.
  sslab engine: 3,026 steps (1.554 epochs) in 238.3 s engine clock (probes and checkpoints included), 240.2 s wall
      with tokenizer and token files. Time ratio 1.22: NOT within the reference's time today. Seconds per step,
      interleaved in the same session (`--timing`): plain-loop sslab recipe / reference = 0.773 (0.67-0.71 on
      2026-11-29), and the engine's step costs what the plain loop's does (0.079 vs 0.078 s; profile: forward 31 ms,
      backward 35 ms, AdamW 11 ms, NaN guard 3 ms, clipping 2 ms, ~13 s one-off set-up). So the recipe's margin
      depends on the day's step-time ratio; it needs ~2,700 batch-8 steps for 1.80 (plain loop, 2026-11-29).
      Tried in the plain loop to need fewer steps: linear decay to zero over 2,200 steps -> 1.8245; lr 4e-3 cosine
      over 2,200 -> 1.8507; torch.optim.Muon for the hidden matrices: ~1 s a step on this CPU (its Newton-Schulz
      runs in bf16), abandoned; AdamW foreach=True: no measurable change (83/77/92 vs 83/87/81 ms a step).
  Held-out measure: sslab trains on speeches with one end-of-text token between them where the raw text has a
  blank line, so scoring sslab's model on the raw text (1.99) charges it for every unseen "\n\n"; its own held-out
  stream (the same speeches) is the comparable figure (1.775 in the run recorded in the README).

Reference = nanoGPT README, "I only have a macbook":
    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
        --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
i.e. lr 1e-3 -> min lr 1e-4, cosine with 100 warm-up iterations (nanoGPT's get_lr), AdamW betas (0.9, 0.99),
weight decay 0.1 on 2-D parameters only, grad clip 1.0; nanoGPT reports val loss ~1.88.
Here the model is HF `GPT2LMHeadModel` (GPT2Config n_positions=block_size, n_embd=128, n_layer=4, n_head=4,
vocab 65, dropout 0). Differences from nanoGPT's model: GPT-2 always has biases (nanoGPT's config default
bias=False is not available in GPT2Config) and uses the tanh-approximated GELU ("gelu_new"); weights are
initialised by HF's GPT-2 scheme (normal 0.02, residual projections scaled by 1/sqrt(2 n_layer)), as nanoGPT does.
Data: vocabulary = the 65 distinct characters; first 90% of the text trains, last 10% validates; a training
batch is `batch_size` windows at uniformly random offsets (nanoGPT's get_batch).

Clock: only training steps are timed (batch sampling, forward, backward, clip, optimizer); evaluation time is
EXCLUDED. Val loss = mean next-character cross-entropy over `eval_iters` batches of `batch_size` windows of the
recipe's block_size; the windows are drawn once from a fixed seed and reused at every evaluation, so the curve
is not jittered by eval sampling (nanoGPT draws fresh random windows each time). Note a model with a longer
context is scored on its own (longer) windows, as nanoGPT would; `main` also reports the final candidate scored
on 64-character windows.

Torch uses 2 threads. The machine is shared, so compare the two recipes only within one process, as ratios:
    .venv/bin/python benchmarks/gpt_reference.py --interleave     # both in turns, one eval interval each
    .venv/bin/python benchmarks/gpt_reference.py --order ref      # or one recipe (--order ref,sslab: in sequence)
    .venv/bin/python benchmarks/gpt_reference.py --timing         # seconds per step, interleaved
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# Under load (other jobs on the 2 cores) OpenMP threads that spin-wait cost a lot: measured here with load ~5,
# the reference step took ~1040 ms with 2 spinning threads, ~300 ms with passive waiting, ~210 ms with 1 thread.
# Effective only when this file is run as a script (before torch is first imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

REFERENCE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "max_iters": 2000,
             "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100, "lr_decay_iters": 2000, "betas": (0.9, 0.99),
             "weight_decay": 0.1, "grad_clip": 1.0, "dropout": 0.0}
# sslab's recipe: found by the search recorded at the top of this file.
SSLAB = {**REFERENCE, "batch_size": 8, "max_iters": 3000, "lr_decay_iters": 3000, "lr": 3e-3, "warmup_iters": 30}

REF_TARGET, SSLAB_TARGET = 1.88, 1.80
# Evaluation: the same 600 windows of 64 characters for both (50 x 12 and 75 x 8), every ~77k training characters;
# with windows fixed across evaluations the curve is smooth, and the final whole-val-set figure checks it.
REF_EVAL = {"eval_every": 100, "eval_iters": 50}
SSLAB_EVAL = {"eval_every": 150, "eval_iters": 75}


def load_chars(data_root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Tiny Shakespeare as character ids: (train = first 90%, val = last 10%, vocabulary of 65 characters)."""
    path = Path(data_root) / "tinyshakespeare" / "input.txt"
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    return data[:n], data[n:], chars


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, gen: torch.Generator):
    """`batch_size` windows at random offsets: inputs and next-character targets (nanoGPT's get_batch)."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i:i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix.tolist()])
    return x, y


def lr_at(it: int, lr: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's get_lr: linear warm-up, cosine decay to min_lr at lr_decay_iters, then constant."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def build_gpt(vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int, dropout: float):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                     resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=None,
                     eos_token_id=None, attn_implementation="sdpa")
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def evaluate(model, batches) -> float:
    model.eval()
    losses = []
    for x, y in batches:
        logits = model(input_ids=x).logits
        losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def full_val_batches(val: torch.Tensor, block_size: int, batch_size: int = 64):
    """Every non-overlapping block_size window of the validation text (for an exact final figure)."""
    n = (len(val) - 1) // block_size
    x = val[:n * block_size].view(n, block_size)
    y = val[1:n * block_size + 1].view(n, block_size)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def run_recipe(data_root: str | os.PathLike | None = None, *, time_limit: float | None = None, eval_every: int = 100,
               eval_iters: int = 50, seed: int = 0, stop_at: float | None = None, verbose: bool = False,
               threads: int = 2, final_eval: bool = False, keep: dict | None = None, **hyperparams):
    """Train a character GPT with one recipe (the fields of REFERENCE); return the val curve
    [(train seconds, iter, val loss), ...].

    Evaluates at iteration 0, every `eval_every` iterations and at the end. Stops after max_iters, when the
    training clock passes `time_limit` seconds, or (if `stop_at`) once val loss <= stop_at. With `final_eval`
    the last entry gets a 4th field: the loss over the whole val set at this block size and at block size 64.
    """
    curve = []
    for curve in train_gpt(data_root, time_limit=time_limit, eval_every=eval_every, eval_iters=eval_iters, seed=seed,
                           stop_at=stop_at, verbose=verbose, threads=threads, final_eval=final_eval, keep=keep,
                           **hyperparams):
        pass
    return curve


def run_interleaved(runs: dict[str, dict], data_root=None, threads: int = 2, seed: int = 0, verbose: bool = True):
    """Train several recipes in this process in turns, one evaluation interval each (A, B, A, B, ...), so that a
    shared machine's changing load falls on all of them alike; each keeps its own training clock.
    `runs` maps a name to run_recipe's keyword arguments. Returns {name: curve}."""
    gens = {name: train_gpt(data_root, threads=threads, seed=seed, final_eval=True, **kw) for name, kw in runs.items()}
    curves = {name: [] for name in runs}
    while gens:
        for name in list(gens):
            try:
                curves[name] = next(gens[name])
            except StopIteration:
                del gens[name]
                continue
            if verbose:
                t, it, loss = curves[name][-1][:3]
                print(f"  {name:6s} {t:7.1f}s  iter {it:5d}  val {loss:.4f}", flush=True)
    return curves


def train_gpt(data_root, *, n_layer: int, n_head: int, n_embd: int, block_size: int, batch_size: int,
              max_iters: int, lr: float, min_lr: float, warmup_iters: int, lr_decay_iters: int,
              betas: tuple[float, float], weight_decay: float, grad_clip: float, dropout: float,
              time_limit: float | None = None, eval_every: int = 100, eval_iters: int = 50, seed: int = 0,
              stop_at: float | None = None, verbose: bool = False, threads: int = 2, final_eval: bool = False,
              keep: dict | None = None):
    """run_recipe as a generator: yields the curve so far after each evaluation (`keep["model"]`: the model)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train, val, chars = load_chars(data_root or os.environ.get("SSLAB_DATA_ROOT", "/work/shared/data"))
    model = build_gpt(len(chars), n_layer, n_head, n_embd, block_size, dropout)
    if keep is not None:
        keep["model"] = model
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(1234)
    val_batches = [get_batch(val, block_size, batch_size, eval_gen) for _ in range(eval_iters)]
    curve, clock, it = [], 0.0, 0
    while True:
        if it % eval_every == 0 or it == max_iters or (time_limit is not None and clock >= time_limit):
            loss = evaluate(model, val_batches)
            curve.append((clock, it, loss))
            if verbose:
                print(f"  {clock:7.1f}s  iter {it:5d}  val {loss:.4f}", flush=True)
            done = it >= max_iters or (time_limit is not None and clock >= time_limit) or (stop_at and loss <= stop_at)
            if done and final_eval:
                full = evaluate(model, full_val_batches(val, block_size))
                full64 = evaluate(model, full_val_batches(val, 64)) if block_size != 64 else full
                curve[-1] = (clock, it, loss, (full, full64))
            yield curve
            if done:
                return
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(it, lr, min_lr, warmup_iters, lr_decay_iters)
        x, y = get_batch(train, block_size, batch_size, gen)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        clock += time.perf_counter() - t0
        it += 1


def run_reference(data_root: str | os.PathLike, time_limit: float | None = None, eval_every: int = 100,
                  eval_iters: int = 50, seed: int = 0, verbose: bool = False):
    """nanoGPT's CPU recipe (REFERENCE); returns [(train seconds excluding evaluation, iter, val loss), ...]."""
    return run_recipe(data_root, **REFERENCE, time_limit=time_limit, eval_every=eval_every, eval_iters=eval_iters,
                      seed=seed, verbose=verbose)


def step_seconds(recipes: dict[str, dict], data_root=None, rounds: int = 4, steps: int = 30, threads: int = 2,
                 seed: int = 0) -> dict[str, float]:
    """Median seconds per training step of each recipe, timed in interleaved rounds (A, B, A, B, ...) in this
    process, so a shared machine's load drifts over both alike. Loss-vs-iteration curves do not depend on the
    load, so time to a loss = iterations to it x seconds per step."""
    torch.set_num_threads(threads)
    train, _, chars = load_chars(data_root or os.environ.get("SSLAB_DATA_ROOT", "/work/shared/data"))
    state = {}
    for name, hp in recipes.items():
        torch.manual_seed(seed)
        model = build_gpt(len(chars), hp["n_layer"], hp["n_head"], hp["n_embd"], hp["block_size"], hp["dropout"])
        opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=hp["betas"], weight_decay=hp["weight_decay"])
        state[name] = (model, opt, hp, torch.Generator().manual_seed(seed), [])

    def step(model, opt, hp, gen):
        x, y = get_batch(train, hp["block_size"], hp["batch_size"], gen)
        loss = torch.nn.functional.cross_entropy(model(input_ids=x).logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
        opt.step()

    for r in range(rounds + 1):
        for name, (model, opt, hp, gen, times) in state.items():
            t0 = time.perf_counter()
            for _ in range(steps if r else 3):  # round 0 warms up
                step(model, opt, hp, gen)
            if r:
                times.append((time.perf_counter() - t0) / steps)
    return {name: sorted(st[4])[len(st[4]) // 2] for name, st in state.items()}


def time_to(curve, target: float) -> tuple[float, int] | None:
    """(train seconds, iter) of the first evaluation with val loss <= target, or None."""
    for entry in curve:
        if entry[2] <= target:
            return entry[0], entry[1]
    return None


def report(name: str, curve, target: float) -> str:
    hit = time_to(curve, target)
    t, it, loss = curve[-1][:3]
    full = f"; whole val set {curve[-1][3][0]:.4f} (64-char windows {curve[-1][3][1]:.4f})" if len(curve[-1]) > 3 else ""
    reached = f"val <= {target} at {hit[0]:.1f}s (iter {hit[1]})" if hit else f"never reached val <= {target}"
    return f"{name}: {reached}; final val {loss:.4f}{full} at iter {it}, {t:.1f}s of training"


ENGINE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gpt-char.yaml"


def run_engine(data_root, out: str | os.PathLike, threads: int = 2, config: Path = ENGINE_CONFIG):
    """sslab's own GPT through the public API (`prepare_pretraining` + `sslab.pretrain`: char tokenizer, token
    stream, engine, probes and checkpoints), as `sslab pretrain --data tinyshakespeare --config configs/gpt-char.yaml`
    runs it. Returns (the trained HF model, its tokenizer, the engine's summary, wall seconds of all of it)."""
    from sslab.config import PretrainConfig, load_config
    from sslab.data import load_data
    from sslab.engine import load_method, pretrain
    from sslab.methods import prepare_pretraining
    from sslab.methods.text import run_tokenizer

    torch.set_num_threads(threads)
    cfg = load_config(PretrainConfig, config)
    t0 = time.perf_counter()
    splits = load_data("tinyshakespeare", data_root, kind="text")
    prepared = prepare_pretraining(splits, cfg, out, data_root)
    res = pretrain(prepared.train, cfg, out, data_spec="tinyshakespeare", val_data=prepared.val, show_progress=False)
    wall = time.perf_counter() - t0
    model, info = load_method(out)
    return model.net.eval(), run_tokenizer(info), res, wall, held_out_loss(model, prepared.val)


@torch.no_grad()
def held_out_loss(model, val) -> float:
    """Mean next-token loss of a sslab GPT over every block of its held-out token stream."""
    total, count = 0.0, 0
    for i in range(0, len(val), 64):
        inputs = model.views(val.batch(torch.arange(i, min(i + 64, len(val)))))
        logits = model.net(input_ids=inputs["input_ids"]).logits
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), inputs["targets"].flatten(),
                                                   ignore_index=-100, reduction="sum").item()
        count += int((inputs["targets"] != -100).sum())
    return total / count


def held_out_start(val: torch.Tensor, chars: list[str]) -> int:
    """Offset in `val` (the last 10%) after which no character was in sslab's training text: sslab holds out whole
    speeches, so the speech running across the 90% mark trains; the next one starts after the first blank line."""
    nl = chars.index("\n")
    pairs = ((val[:-1] == nl) & (val[1:] == nl)).nonzero()
    return int(pairs[0]) + 2


def engine_main(args) -> None:
    """nanoGPT's recipe (plain loop, the reference) then sslab's engine, in this process, one after the other."""
    import tempfile

    root = args.data_root
    keep: dict = {}
    print(f"ref: {REFERENCE} {REF_EVAL}", flush=True)
    ref_curve = run_recipe(root, **REFERENCE, **REF_EVAL, seed=args.seed, threads=args.threads, final_eval=True,
                           verbose=True, keep=keep)
    print(report("ref", ref_curve, REF_TARGET), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        net, tok, res, wall, own = run_engine(root, Path(tmp) / "run", threads=args.threads)
    print(f"sslab engine: {res['steps']} steps, {res['epochs']:.3f} epochs, engine clock {res['seconds']:.1f}s "
          f"(probes and checkpoints included), wall {wall:.1f}s (tokenizer and token files included)", flush=True)
    # both models scored on the same windows: the reference's held-out text after the speech sslab trained on
    _, val, chars = load_chars(root)
    lut = torch.tensor([tok.convert_tokens_to_ids(c) for c in chars])
    if (lut == tok.unk_token_id).any():
        print(f"note: {int((lut == tok.unk_token_id).sum())} characters unknown to sslab's tokenizer")
    tail = val[held_out_start(val, chars):]
    gen = torch.Generator().manual_seed(1234)
    windows = [get_batch(tail, 64, 12, gen) for _ in range(50)]
    ref_loss = evaluate(keep["model"], windows)
    ssl_loss = evaluate(net, [(lut[x], lut[y]) for x, y in windows])
    ref_full = evaluate(keep["model"], full_val_batches(tail, 64))
    ssl_full = evaluate(net, [(lut[x], lut[y]) for x, y in full_val_batches(tail, 64)])
    ref_hit = time_to(ref_curve, REF_TARGET)
    ref_t, what = (ref_hit[0], f"ref's time to {REF_TARGET}") if ref_hit else (ref_curve[-1][0], "ref's whole training")
    print(f"held-out text after sslab's last training speech ({len(tail):,} characters), 600 windows of 64 / every "
          f"window: ref {ref_loss:.4f} / {ref_full:.4f}; sslab engine on the same raw text {ssl_loss:.4f} / "
          f"{ssl_full:.4f} (not comparable: sslab trains with one end-of-text token between speeches where the raw "
          f"text has a blank line, so every '\\n\\n' is unseen); sslab engine on its own held-out stream of the same "
          f"speeches {own:.4f}")
    print(f"time ratio: sslab engine wall ({wall:.1f}s, own held-out {own:.3f}) / {what} ({ref_t:.1f}s, "
          f"evaluation excluded) = {wall / ref_t:.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=os.environ.get("SSLAB_DATA_ROOT", "/work/shared/data"))
    ap.add_argument("--order", default="ref,sslab", help="recipes to run, in order (ref, sslab)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--interleave", action="store_true",
                    help="train the recipes in turns, one evaluation interval each, instead of one after the other")
    ap.add_argument("--timing", action="store_true",
                    help="only time steps of both recipes, interleaved, and combine with the iterations to target")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override sslab recipe fields, e.g. --set lr=3e-3 max_iters=600")
    ap.add_argument("--engine", action="store_true",
                    help="the reference recipe, then sslab's GPT through the engine (configs/gpt-char.yaml)")
    args = ap.parse_args(argv)
    if args.engine:
        return engine_main(args)
    recipe = dict(SSLAB)
    for kv in args.set:
        k, v = kv.split("=", 1)
        recipe[k] = eval(v, {})  # benchmark-only convenience: literals such as 3e-3, 128, (0.9, 0.95)
    runs = {"ref": (REFERENCE, REF_EVAL, REF_TARGET), "sslab": (recipe, SSLAB_EVAL, SSLAB_TARGET)}
    if args.timing:
        sec = step_seconds({"ref": REFERENCE, "sslab": recipe}, args.data_root, threads=args.threads, seed=args.seed)
        print(f"seconds/step: ref {sec['ref']:.4f}, sslab {sec['sslab']:.4f}; ratio sslab/ref "
              f"{sec['sslab'] / sec['ref']:.3f}")
        return
    curves = {}
    if args.interleave:
        names = args.order.split(",")
        print({n: (runs[n][0], runs[n][1]) for n in names}, flush=True)
        curves = run_interleaved({n: dict(**runs[n][0], **runs[n][1]) for n in names}, args.data_root,
                                 threads=args.threads, seed=args.seed)
    for name in ([] if args.interleave else args.order.split(",")):
        hp, ev, target = runs[name]
        print(f"{name}: {hp} {ev}", flush=True)
        curves[name] = run_recipe(args.data_root, **hp, **ev, seed=args.seed, threads=args.threads,
                                  final_eval=True, verbose=True)
        print(report(name, curves[name], target), flush=True)
    print("\n".join(report(n, c, runs[n][2]) for n, c in curves.items()))
    hits = {n: time_to(c, runs[n][2]) for n, c in curves.items()}
    if len(hits) == 2 and hits["sslab"]:
        # if the reference never reaches its target, compare with its whole training time (a stricter bound)
        ref_t, what = (hits["ref"][0], f"ref to {REF_TARGET}") if hits["ref"] else (curves["ref"][-1][0], "ref total")
        print(f"time ratio sslab(to {SSLAB_TARGET}) / {what} = {hits['sslab'][0] / ref_t:.2f}")


if __name__ == "__main__":
    sys.exit(main())
