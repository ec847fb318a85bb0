"""Every subset of a split that a page shows or evaluates is a seeded random sample.

The fixed binarized MNIST test file is sorted by digit, so the front of that split is all
zeros: a subset taken from the front of a split is biased. Properties: the chapters' subset
draws every class of a split sorted by class, the same images for the same seed and others
for another; and no notebook or library module takes the front of a split
(``x.split("test")[:n]``, ``ds.test[:n]``, ``ds.valid[0:n]``): the scan finds such a slice
in a sample of code written that way, and none in the repository.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from densitybench import chapter

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("train", "valid", "test")


def sorted_split(n_per_class: int = 100, n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose only pixel is their class, sorted by class (as the binarized MNIST test file)."""
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    return labels.float().reshape(-1, 1, 1, 1), labels


def test_a_subset_of_a_sorted_split_holds_every_class():
    x, labels = sorted_split()
    assert set(x[:20].flatten().tolist()) == {0.0}  # the front: one class only
    drawn = chapter.subset(x, 20, seed=0)
    assert len(set(drawn.flatten().tolist())) >= 6
    assert torch.equal(drawn, chapter.subset(x, 20, seed=0))
    assert not torch.equal(drawn, chapter.subset(x, 20, seed=1))
    idx = chapter.subset_indices(len(x), 20, seed=0)
    assert torch.equal(x[idx], drawn) and len(set(idx.tolist())) == 20


def front_slices(source: str) -> list[str]:
    """The expressions in ``source`` that slice the front of a split: ``<...>.split("<s>")[:n]``
    or ``<...>.<s>[:n]`` (also ``[0:n]``) for a split name ``s``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)):
            continue
        sl = node.slice
        from_front = sl.lower is None or (isinstance(sl.lower, ast.Constant) and sl.lower.value == 0)
        if not from_front or sl.upper is None or sl.step is not None:
            continue
        v = node.value
        is_split_call = (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "split"
                         and v.args and isinstance(v.args[0], ast.Constant) and v.args[0].value in SPLITS)
        is_split_attr = isinstance(v, ast.Attribute) and v.attr in SPLITS
        if is_split_call or is_split_attr:
            found.append(ast.unparse(node))
    return found


def test_the_scan_finds_front_slices_written_any_usual_way():
    code = '''
a = ds.split("test")[:8]
b = ds.test[:500]
c = data.valid[0:20]
d = chapter.subset(ds.split("test"), 8, seed)
e = ds.test[order]
f = x[:4]
g = ds.split("train")[10:20]
'''
    assert front_slices(code) == ["ds.split('test')[:8]", "ds.test[:500]", "data.valid[0:20]"]


@pytest.mark.parametrize("path", sorted([*ROOT.glob("notebooks/*.py"), *ROOT.glob("src/densitybench/**/*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_or_module_takes_the_front_of_a_split(path):
    assert front_slices(path.read_text()) == [], f"{path.relative_to(ROOT)}: use chapter.subset (a seeded random draw)"
