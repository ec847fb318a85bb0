"""The paper profile: every family of the published book at its paper's settings, three seeds,
on a GPU, every setting with its source.

Properties: every model family of the ``mnist`` profile has an entry; every entry has seeds 0,
1 and 2 and no CPU budget; every note is filled (no placeholder left) and names where its
settings come from; ``densitybench plan --profile paper --sources`` prints every entry once
with its seeds and that note.
"""

from __future__ import annotations

import re

import pytest

from densitybench import cli, runs


@pytest.fixture(scope="module")
def paper():
    return runs.load_profile("paper")


def test_every_family_of_the_book_has_three_seeds_on_a_gpu(paper):
    families = {s.model for s in runs.load_profile("mnist").specs() if s.chapter != "beyond"}
    specs = paper.specs()
    assert families <= {s.model for s in specs}, families - {s.model for s in specs}
    by_entry: dict[str, set[int]] = {}
    for s in specs:
        by_entry.setdefault(s.name, set()).add(s.seed)
    assert all(seeds == {0, 1, 2} for seeds in by_entry.values()), by_entry
    assert paper.device == "cuda"


def test_no_paper_run_is_cut_by_a_cpu_budget(paper):
    budgeted = [s.folder for s in paper.specs() if s.train.get("max_seconds") is not None]
    assert budgeted == []


def test_every_note_names_the_source_of_its_settings(paper):
    for s in paper.specs():
        note = s.protocol_note
        assert note, s.name
        assert not re.search(r"\{[a-z_]+(:[^}]*)?\}", note), (s.name, note)  # every placeholder filled
        assert re.search(r"\b(paper|published|assignment|thesis)\b", note, re.I), (s.name, note)


def test_plan_prints_every_entry_with_its_seeds_and_sources(paper, capsys):
    assert cli.main(["plan", "--profile", "paper", "--sources"]) == 0
    out = capsys.readouterr().out
    for name in {s.name for s in paper.specs()}:
        block = re.search(rf"^{re.escape(name)}: .*seeds 0, 1, 2\n(?:  .*\n)*?  sources: ", out, re.M)
        assert block, name
