"""T5 (Raffel et al. 2020): an encoder-decoder pretrained by span corruption: 15% of each block's tokens, in spans of
mean length 3, are replaced in the input by sentinel tokens (<extra_id_0>, <extra_id_1>, ...) and the decoder
writes each sentinel followed by the tokens it hid (`sslab.views.text.span_corruption`, the reference's exact input
and target lengths). SentencePiece-style Unigram tokenizer with 100 sentinels; the model is HF's
`T5ForConditionalGeneration` built from a config. Transfer starts from the whole encoder-decoder: the frozen
protocols and the classification head use the encoder's mean-pooled states, text-to-text transfer (`text2text`)
fine-tunes encoder and decoder to write the label's words."""
import torch

from sslab.errors import SslabError
from sslab.methods import register
from sslab.methods.text import TextMethod, lm_loss, masked_accuracy
from sslab.nets.text import Seq2SeqEncoder
from sslab.views.text import span_corruption, t5_lengths

SENTINELS = 100


@register("t5")
class T5(TextMethod):
    arch, tokenizer_kind = "t5", "unigram"
    continues = ("t5",)
    auto_class = "AutoModelForSeq2SeqLM"
    specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    extra_specials = tuple(f"<extra_id_{i}>" for i in range(SENTINELS))
    min_context = 8

    def __init__(self, net, noise_density: float = 0.15, mean_span: float = 3.0, **kw):
        super().__init__(net, **kw)
        if not isinstance(noise_density, (int, float)) or not 0 < noise_density < 1:
            raise SslabError(f"t5 noise_density must be in (0, 1), got {noise_density!r}")
        if not isinstance(mean_span, (int, float)) or mean_span < 1:
            raise SslabError(f"t5 mean_span must be a number >= 1, got {mean_span!r}")
        self.noise_density, self.mean_span = float(noise_density), float(mean_span)

    @classmethod
    def block_len(cls, context: int) -> int:
        """Blocks of as many raw tokens as corrupt into `context` input tokens (568 for 512, as T5 pretrained)."""
        return t5_lengths(context)[0] - 1

    def setup(self, meta, cfg):
        super().setup(meta, cfg)
        self.sentinels = list(meta.get("extra_special_ids") or [])
        if len(self.sentinels) < 1:
            raise SslabError("the tokenizer has no T5 sentinel tokens (<extra_id_0>, ...)")
        self.eos = meta["eos_id"]

    @property
    def backbone(self):
        """The whole encoder-decoder: text-to-text transfer needs the decoder too (backbone.safetensors holds both)."""
        return self.net

    def encoder(self) -> Seq2SeqEncoder:
        return Seq2SeqEncoder(self.net, self.pooling, self.net.config.d_model)

    def views(self, batch, generator=None):
        out = span_corruption(batch["ids"], self.sentinels, self.eos, self.noise_density, self.mean_span, generator)
        return {"input_ids": out["input_ids"], "labels": out["labels"]}

    def forward(self, input_ids, labels):
        logits = self.net(input_ids=input_ids, labels=labels).logits
        return {"loss": lm_loss(logits, labels), "token_acc": masked_accuracy(logits.detach(), labels)}
