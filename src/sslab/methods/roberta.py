"""RoBERTa (Liu et al. 2019): BERT's masked language modelling without next-sentence prediction, a fresh mask
every time a sequence is seen (dynamic masking), full packed blocks of text across document boundaries, on a
byte-level BPE vocabulary trained on the corpus."""
from sslab.methods import register
from sslab.methods.text import TextMethod, lm_loss, masked_accuracy
from sslab.views.text import mask_tokens


@register("roberta")
class RoBERTa(TextMethod):
    arch, tokenizer_kind, pooling = "roberta", "bpe", "mean"
    continues = ("roberta",)
    specials = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}

    def __init__(self, net, mask_rate: float = 0.15, **kw):
        super().__init__(net, **kw)
        self.mask_rate = mask_rate

    def views(self, batch, generator=None):
        m = self.meta
        ids = batch["ids"][:, :-1]
        ids, labels = mask_tokens(ids, mask_id=m["mask_id"], vocab_size=m["vocab_size"],
                                  special_ids=self.special_ids, generator=generator, rate=self.mask_rate)
        return {"input_ids": ids, "labels": labels}

    def forward(self, input_ids, labels):
        hidden = self.net.roberta(input_ids=input_ids).last_hidden_state
        chosen = labels != -100  # the vocabulary projection only where a token is predicted
        logits = self.net.lm_head(hidden[chosen])
        return {"loss": lm_loss(logits, labels[chosen]), "mlm_acc": masked_accuracy(logits.detach(), labels[chosen])}
