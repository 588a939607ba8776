import pytest

from localize.config import EXPORTS, default_pipeline, load_pipeline, pipeline_names
from localize.errors import ConfigError


def test_every_shipped_pipeline_validates():
    names = pipeline_names()
    assert {"psma-salvage-rt", "psma-1007", "fluciclovine", "research"} <= set(names)
    for name in names:
        cfg = load_pipeline(name)
        assert cfg.name == name and set(cfg.exports) <= set(EXPORTS)


def test_tracer_picks_the_default_pipeline():
    assert default_pipeline("psma_f18_hepatobiliary").name == "psma-1007"
    assert default_pipeline("psma_ga68").name == "psma-salvage-rt"
    assert default_pipeline("fluciclovine").name == "fluciclovine"
    with pytest.raises(ConfigError, match="no default pipeline"):
        default_pipeline("unknown")


def test_user_file_extends_and_overrides(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("extends: psma-salvage-rt\nname: mine\nregistration: {refine: affine}\nexports: [findings]\n")
    cfg = load_pipeline(f)
    assert cfg.name == "mine" and cfg.exports == ("findings",)
    assert cfg.registration == {"pelvis_only": False, "refine": "affine", "require_mr": False}
    assert cfg.segmentation == load_pipeline("psma-salvage-rt").segmentation


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nthreshold: 3\n", "unknown key"),
        ("exports: [findings, pdf]\n", "unknown export"),
        ("registration: {refine: demons}\n", "registration.refine"),
        ("registration: {pelvis_only: 'yes'}\n", "pelvis_only must be a bool"),
        ("tracer: fdg-ish\n", "tracer must be one of"),
        ("- a list\n", "must be a YAML mapping"),
        ("a: [unclosed\n", "not valid YAML at line"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_pipeline(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="psma-salvage-rt"):
        load_pipeline("nope")


def test_segmentation_settings_are_checked_when_the_file_is_read(tmp_path):
    f = tmp_path / "seg.yaml"
    f.write_text("segmentation: {detect_suv: 4.0, percent_of_max: 0.5}\n")
    assert load_pipeline(f).segmentation == {"detect_suv": 4.0, "percent_of_max": 0.5}
    for text, message in [("segmentation: {detect_sub: 4}\n", "unknown segmentation setting 'detect_sub'"),
                          ("segmentation: {percent_of_max: 1.5}\n", "percent_of_max"),
                          ("segmentation: {preset: fdg}\n", "segmentation.preset")]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_pipeline(f)
