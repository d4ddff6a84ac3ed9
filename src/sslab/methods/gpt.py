"""GPT (Radford et al. 2018/2019): a decoder-only Transformer predicts every next token of packed blocks of text
(causal shift), on a byte-level BPE vocabulary, or characters (`configs/gpt-char.yaml`, nanoGPT's
Shakespeare setting). For transfer the representation is the mean of the tokens' hidden states (measured better
than the last token's). `generate` samples with temperature and top-k."""
import math

import torch

from sslab.errors import SslabError
from sslab.methods import register
from sslab.methods.base import Generator
from sslab.methods.text import TextMethod, lm_loss
from sslab.views.text import causal_shift


@register("gpt")
class GPT(TextMethod, Generator):
    # mean of the token states for transfer: on SST-2 the mean-pooled linear probe beat the last token's
    # (56.0 +- 4.2 vs 54.9 +- 3.0 at 1% labels, 60.7 vs 59.0 at 10%; recipes/gpt.yaml)
    arch, tokenizer_kind, pooling = "gpt2", "bpe", "mean"
    continues = ("gpt2",)
    auto_class = "AutoModelForCausalLM"
    specials = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "pad_token": "<|pad|>",
                "unk_token": "<|unk|>"}

    def __init__(self, net, tokenizer: str | None = None, **kw):
        super().__init__(net, **kw)
        if tokenizer is not None and tokenizer not in ("bpe", "char", "wordpiece"):
            raise SslabError(f"unknown tokenizer {tokenizer!r}; choose bpe, char or wordpiece")

    @classmethod
    def block_len(cls, context):
        return context  # block + 1 tokens give `context` inputs and as many targets

    @classmethod
    def after_pretraining(cls, load, info):
        """A few sample generations for the report."""
        from sslab.methods.text import run_tokenizer

        model = load()
        tok = run_tokenizer(info)
        samples = []
        for seed, prompt in enumerate(["\n", "The "]):
            text = model.generate_text(tok, prompt, 200, temperature=0.8, top_k=40, seed=seed)
            samples.append({"prompt": prompt, "text": text, "note": f"seed {seed}, temperature 0.8, top-k 40"})
        return {"samples": samples}

    def views(self, batch, generator=None):
        inputs, targets = causal_shift(batch["ids"])
        return {"input_ids": inputs, "targets": targets}

    def forward(self, input_ids, targets):
        return lm_loss(self.net(input_ids=input_ids).logits, targets)

    @torch.no_grad()
    def probe(self, batch):
        out = super().probe(batch)
        out["perplexity"] = math.exp(min(out["val_loss"], 50.0))
        return out

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample `new_tokens` continuations of `ids` (B, T), cropping the input to the context as it grows."""
        context = self.net.config.n_positions
        for _ in range(new_tokens):
            logits = self.net(input_ids=ids[:, -context:]).logits[:, -1, :].float() / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            ids = torch.cat([ids, nxt], dim=1)
        return ids

    def generate_text(self, tok, prompt: str, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                      seed: int = 0) -> str:
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:
            raise SslabError("the prompt is empty after tokenization")
        if ids.shape[1] > self.net.config.n_positions:
            raise SslabError(f"the prompt is {ids.shape[1]} tokens long, longer than the model's context of "
                             f"{self.net.config.n_positions}")
        self.eval()
        g = torch.Generator().manual_seed(seed)
        out = self.generate(ids, new_tokens, temperature, top_k, g)
        return tok.decode(out[0, ids.shape[1]:].tolist())
