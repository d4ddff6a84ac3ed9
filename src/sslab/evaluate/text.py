"""What the transfer harness needs to know about text: labelled texts tokenized with the run's own tokenizer
(truncated to its context), token-level augmentation for the scratch+aug baseline (token dropout, random deletion,
adjacent swaps; special tokens untouched), and TF-IDF bag-of-words logistic regression as the no-learning
baseline (scikit-learn)."""
from __future__ import annotations

import numpy as np
import torch

RAW_BASELINE = "tfidf"
RAW_NOTE = ("tfidf: logistic regression on TF-IDF bag-of-words features (word unigrams and bigrams, sublinear tf, "
            "fitted on the training texts; scikit-learn, C chosen by 3-fold cross-validation on the labelled subset)")
AUG = {"p_dropout": 0.1, "p_delete": 0.1, "p_swap": 0.1}  # the scratch+aug strength, stated in the report
AUG_NOTE = "10% of the tokens dropped to the unknown token, 10% deleted, 10% swapped with their neighbour"


# SetFit's template for a class's synthetic example (setfit.get_templated_dataset's default)
TEMPLATE = "This sentence is {}"


def labelled(split, info: dict):
    """The split tokenized with the run's tokenizer; `label_ids`: each class's label words as token ids closed by
    the end-of-sequence token (what text-to-text transfer writes); `templates`: one example per class, SetFit's
    TEMPLATE around the class's words, labelled with the class (None where a class name has no letter, as 0/1
    labels: a sentence about "1" says nothing)."""
    from sslab.data.streams import encode_examples
    from sslab.data.text import TextData, label_words
    from sslab.methods.text import run_tokenizer

    tok = run_tokenizer(info)
    ex = encode_examples(tok, split, max_len=info["context"])
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    words = label_words(split.classes)
    ex.label_ids = [tok(w, add_special_tokens=False)["input_ids"] + eos for w in words]
    ex.templates = None
    if words and all(any(ch.isalpha() for ch in w) for w in words):
        ex.templates = encode_examples(tok, TextData([TEMPLATE.format(w) for w in words],
                                                     np.arange(len(words), dtype=np.int64), list(split.classes)),
                                       max_len=info["context"])
    return ex


def text_to_text(encoder, train, idx, test, cfg, seed: int, n_classes: int, augment=None, device="cpu",
                 val=None) -> dict:
    """Text-to-text transfer (T5): a copy of the whole encoder-decoder fine-tuned to write each text's label words,
    on the same schedule as `finetune`; a text's class is the label whose words the decoder finds most likely."""
    import copy

    from sslab.evaluate.protocols import fit_classifier
    from sslab.nets.text import LabelScorer

    torch.manual_seed(seed)
    scorer = LabelScorer(copy.deepcopy(encoder), train.label_ids)
    return fit_classifier(scorer, train, idx, test, cfg, seed, augment, device, loss_fn=scorer.loss, val=val)


def augmenter(info: dict, device, strength: dict = AUG):
    """Token-level augmentation of tokenized batches at `strength` (augment_tokens' probabilities)."""
    from sslab.views.text import augment_tokens

    specials = torch.tensor(info["special_ids"], dtype=torch.long, device=device)
    unk = info.get("mask_id") if info.get("mask_id") is not None else info.get("unk_id")

    def augment(batch: dict, generator: torch.Generator) -> dict:
        ids, mask = augment_tokens(batch["input_ids"], batch["attention_mask"], generator=generator,
                                   special_ids=specials, unk_id=unk, pad_id=info["pad_id"], **strength)
        return {**batch, "input_ids": ids, "attention_mask": mask}

    return augment


STRONG = {"p_dropout": 0.2, "p_delete": 0.1, "p_swap": 0.1}  # the strong view of consistency training


def consistency_views(info: dict, device):
    """(weak, strong) views of tokenized batches for consistency training (`fixmatch`): the text as it is (USB's
    weak view of text), and token-level augmentation heavier than scratch+aug's (STRONG)."""
    return (lambda batch, generator: batch), augmenter(info, device, STRONG)


class TfidfFeatures:
    """Sparse TF-IDF rows of the training and test texts (the vocabulary from the training texts)."""

    def __init__(self, train_texts, test_texts):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
        self.train = vec.fit_transform(train_texts)
        self.test = vec.transform(test_texts)


def raw_features(train, test):
    return TfidfFeatures(train.texts, test.texts)


def raw_probe(feats: TfidfFeatures, idx, y_train, y_test, cfg, seed: int, n_classes: int) -> dict:
    from sslab.evaluate.protocols import logistic_cv

    return logistic_cv(feats.train[idx], y_train, feats.test, y_test, seed, (0.1, 1.0, 10.0, 100.0), default_c=10.0)


def describe(split) -> dict:
    lengths = [len(t.split()) for t in split.texts]
    return {"mean_words": round(float(np.mean(lengths)), 1) if lengths else 0}
