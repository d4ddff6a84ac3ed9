"""What a text study uses without being told: the local sentence encoder as its foundation model (--from none
leaves it out), SetFit on it, and a Hub id that cannot be had offline ending in one line."""
import pytest

from sslab.config import EvalConfig, StudyConfig, load_config
from sslab.errors import SslabError
from sslab.evaluate import check_names, foundation_protocols
from sslab.methods.text import local_text_encoder
from sslab.studies.job import foundation_spec, load_foundation


@pytest.mark.local_encoder
def test_auto_finds_the_local_sentence_encoder_for_text_only():
    found = local_text_encoder()
    lines = []
    spec = foundation_spec("auto", "text", lines.append)
    if found is None:  # setup.sh installs it; without it a text study has no foundation rows
        assert spec is None and not lines
    else:
        assert spec == str(found) and (found / "config.json").is_file()
        assert "--from none" in lines[0]
    assert foundation_spec("auto", "image") is None and foundation_spec("auto", "pairs") is None
    assert foundation_spec("none", "text") is None and foundation_spec(None, "text") is None
    assert foundation_spec("some/folder", "text") == "some/folder"
    assert StudyConfig().foundation == "auto"


def test_text_recipes_run_setfit_on_the_foundation_model():
    for method in ("gpt", "bert", "roberta", "t5"):
        cfg = load_config(StudyConfig, method)
        assert foundation_protocols(cfg.eval) == ["knn", "linear", "setfit"], method
        check_names(cfg.eval)
    assert foundation_protocols(EvalConfig()) == EvalConfig().protocols  # images: the study's own
    with pytest.raises(SslabError, match="foundation_protocols: unknown name 'nope'"):
        check_names(EvalConfig(foundation_protocols=["nope"]))


def test_a_hub_id_offline_is_one_line(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty Hub cache
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SslabError) as err:
        load_foundation("sentence-transformers/all-MiniLM-L6-v2", "text")
    msg = str(err.value)
    assert "\n" not in msg and "Hugging Face Hub" in msg and msg.startswith("--from sentence-transformers/")
