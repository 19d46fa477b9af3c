"""`sparsim figures`: every figure file opens, is slide-sized and not blank; --lang zh where a CJK font exists."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from simulator.cli import main  # noqa: E402
from simulator.core.errors import SimulatorError  # noqa: E402
from simulator.report.figures import FIGURE_NAMES, HEIGHT_PX, WIDTH_PX, cjk_font, write_figures  # noqa: E402


def _check_png(path):
    img = mpimg.imread(path)
    assert img.shape[:2] == (HEIGHT_PX, WIDTH_PX), (path, img.shape)
    # not blank: a drawn figure has a share of pixels that are not background white, and contrast
    rgb = img[..., :3]
    assert (rgb < 0.9).any(axis=-1).mean() > 0.01, path
    assert float(rgb[::4, ::4].std()) > 0.05, path  # not one flat colour


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures-en")
    assert main(["figures", "--out", str(out)]) == 0
    return out


def test_every_figure_is_written_sized_and_captioned(english):
    for name in FIGURE_NAMES:
        pngs = sorted(english.glob(f"{name}*.png"))
        assert pngs, name
        for png in pngs:
            _check_png(png)
        caption = (english / f"{name}.txt").read_text(encoding="utf-8")
        assert len(caption.splitlines()) == 1 and len(caption) > 40, name


def test_captions_say_when_an_efficiency_is_uncalibrated(english):
    # every GPU spec's sparse efficiencies are spec defaults (no GPU traces fitted yet)
    assert "uncalibrated" in (english / "unstructured-a100.txt").read_text()
    assert "uncalibrated" in (english / "speedup-2to4.txt").read_text()


def test_svg_and_multipage_pdf(tmp_path):
    write_figures(tmp_path, formats="svg,pdf", names=["storage-2to4", "ledger-handout"])
    assert (tmp_path / "storage-2to4.svg").stat().st_size > 10_000
    data = (tmp_path / "ledger-handout.pdf").read_bytes()
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type/Page") >= 2 or \
        data.count(b"/Page") >= 3


def test_bad_format_and_name_are_one_line_errors(tmp_path):
    with pytest.raises(SimulatorError, match="--format"):
        write_figures(tmp_path, formats="bmp")
    with pytest.raises(SimulatorError, match="unknown figure"):
        write_figures(tmp_path, names=["nope"])


def test_chinese_labels(tmp_path):
    if cjk_font() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk); --lang zh refuses without one")
    names = ["roofline-h100", "unstructured-a100", "storage-2to4"]
    write_figures(tmp_path, lang="zh", names=names)
    for name in names:
        _check_png(tmp_path / f"{name}.png")


def test_zh_without_a_cjk_font_is_one_line_naming_the_package(tmp_path, monkeypatch):
    import simulator.report.figures as figures

    monkeypatch.setattr(figures, "cjk_font", lambda: None)
    with pytest.raises(SimulatorError, match="fonts-noto-cjk") as err:
        write_figures(tmp_path, lang="zh", names=["storage-2to4"])
    assert "\n" not in str(err.value) and not list(tmp_path.glob("*.png"))  # nothing drawn with boxes


def test_glyph_check_names_what_a_font_lacks():
    from matplotlib import font_manager

    latin = font_manager.findfont("DejaVu Sans")
    assert figures_missing(latin, "非结构化 abc") == "化构结非"


def figures_missing(path, text):
    from simulator.report.figures import missing_glyphs

    return missing_glyphs(path, text)
