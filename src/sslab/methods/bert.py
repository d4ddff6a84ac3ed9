"""BERT (Devlin et al. 2019): masked language modelling (15% of tokens, 80/10/10) plus next-sentence prediction
(half the pairs are a segment and its actual continuation, half a segment and text from another document), on a
WordPiece vocabulary trained on the corpus. `whole_word=True` masks whole words."""
import torch

from sslab.methods import register
from sslab.methods.text import TextMethod, lm_loss, masked_accuracy
from sslab.views.text import mask_tokens, next_sentence_pairs


@register("bert")
class BERT(TextMethod):
    arch, tokenizer_kind, pooling = "bert", "wordpiece", "mean"
    continues = ("bert",)
    auto_class = "AutoModelForPreTraining"  # BertForPreTraining: masked-LM and next-sentence heads
    specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                "mask_token": "[MASK]"}
    lowercase = True
    min_context = 7  # [CLS] A [SEP] B [SEP] with 2 tokens in each segment (next_sentence_pairs' min_len)

    def __init__(self, net, mask_rate: float = 0.15, whole_word: bool = False, nsp_weight: float = 1.0, **kw):
        super().__init__(net, **kw)
        self.mask_rate, self.whole_word, self.nsp_weight = mask_rate, whole_word, nsp_weight

    @classmethod
    def block_len(cls, context):
        return context - 4  # [CLS] A [SEP] B [SEP] fits the context

    def setup(self, meta, cfg):
        super().setup(meta, cfg)
        self.continuation = None
        if self.whole_word:
            from sslab.data.tokenizers import continuation_table
            from sslab.methods.text import run_tokenizer

            self.continuation = continuation_table(run_tokenizer(meta))

    def views(self, batch, generator=None):
        m = self.meta
        pairs = next_sentence_pairs(batch["ids"], batch["doc"], cls_id=m["cls_id"], sep_id=m["sep_id"],
                                    pad_id=m["pad_id"], generator=generator, max_len=m["context"])
        cont = None if self.continuation is None else self.continuation.to(batch["ids"].device)
        ids, labels = mask_tokens(pairs["input_ids"], mask_id=m["mask_id"], vocab_size=m["vocab_size"],
                                  special_ids=self.special_ids, generator=generator, rate=self.mask_rate,
                                  continuation=cont, whole_word=self.whole_word,
                                  attention_mask=pairs["attention_mask"])
        return {"input_ids": ids, "attention_mask": pairs["attention_mask"],
                "token_type_ids": pairs["token_type_ids"], "labels": labels,
                "next_sentence_label": pairs["next_sentence_label"]}

    def forward(self, input_ids, attention_mask, token_type_ids, labels, next_sentence_label):
        out = self.net.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        chosen = labels != -100  # the vocabulary projection only where a token is predicted (15% of positions:
        logits = self.net.cls.predictions(out.last_hidden_state[chosen])  # most of a small model's step otherwise)
        nsp_logits = self.net.cls.seq_relationship(out.pooler_output)
        mlm = lm_loss(logits, labels[chosen])
        nsp = torch.nn.functional.cross_entropy(nsp_logits.float(), next_sentence_label)
        with torch.no_grad():
            nsp_acc = (nsp_logits.argmax(-1) == next_sentence_label).float().mean()
            mlm_acc = masked_accuracy(logits, labels[chosen])
        return {"loss": mlm + self.nsp_weight * nsp, "mlm_loss": mlm.detach(), "nsp_loss": nsp.detach(),
                "mlm_acc": mlm_acc, "nsp_acc": nsp_acc}
